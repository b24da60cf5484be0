package main

import (
	"fmt"
	"io"
	"sort"
	"time"
)

// report is what wiretrace finds in the pcaps of one wire.
type report struct {
	conns int
	// The wire's one-way delays, offered to first copy handed on, of
	// data segments and of the receivers' segments (their ACKs).
	dataDelay, ackDelay []time.Duration
	// The receivers' turnaround: from a segment of new data handed to
	// the receiver to the first ACK it offered that reports it.
	turnaround []time.Duration
	retrans    retransReport
	// With a capture of a kernel at its device: how long its packets
	// waited in the device for the wire to read them, and how long the
	// wire's writes took to reach the kernel; and how the capture
	// matched.
	devQueue, devLag []time.Duration
	dev              *devMatch
}

// retransReport sorts the senders' retransmissions. A retransmission
// is spurious if an earlier copy of its first byte reached the receiver
// before it did (the receiver D-SACKs it); a spurious one is sorted by
// where that copy and the receiver's report of it were when the
// retransmission was sent: as the wire saw it (sent: offered to the
// wire; report had: handed on by it), and, with a capture of the
// sender's kernel at its device, as the kernel did (sent: handed to
// its device; report had: handed to the kernel by the device).
type retransReport struct {
	total    int
	spurious int
	wire     spuriousSort
	// kernel is the sort by the kernel's times, of those spurious
	// retransmissions whose times the capture had (kernelOf).
	kernel   spuriousSort
	kernelOf int
	// A retransmission the wire dropped although an earlier copy had
	// arrived: spurious for the sender, never seen by the receiver.
	lostSpurious int
}

// spuriousSort counts spurious retransmissions by where the earlier
// copy and its report were when the retransmission was sent.
type spuriousSort struct {
	// The earlier copy reached the receiver only after the
	// retransmission was sent (it was reordered or delayed).
	originalLate int
	// The receiver had the data but had not offered an ACK reporting it.
	notReported int
	// The receiver's report had not reached the sender: on the wire
	// (offered, not handed on), or, by the kernel's times, on the wire
	// or in the device.
	reportOnWire int
	// The sender had been handed a report at most 0.1 ms before.
	reportJustIn int
	// The sender had been handed a report more than 0.1 ms before, of
	// which cumulative (rather than SACK) reports.
	reportOld, reportOldCumulative int
}

// view is a sort's clock: when a retransmission was sent, and when a
// report was handed to its sender.
type view struct {
	sent func(*segment) (time.Time, bool)
	had  func(*segment) (time.Time, bool)
}

var (
	wireView   = view{func(s *segment) (time.Time, bool) { return s.offered, true }, (*segment).delivered}
	kernelView = view{func(s *segment) (time.Time, bool) { return s.kSent, !s.kSent.IsZero() }, (*segment).kernelGot}
)

// justIn is the age under which a report handed to the sender counts
// as just arrived: the time a sender may take to process it.
const justIn = 100 * time.Microsecond

// reportWindow bounds the search for the first report of a byte: ACKs
// offered this long after the retransmission are not looked at.
const reportWindow = 50 * time.Millisecond

func analyze(segs []*segment) report {
	var r report
	for _, f := range flows(segs) {
		r.conns++
		for _, s := range f.data {
			if t, ok := s.delivered(); ok {
				r.dataDelay = append(r.dataDelay, t.Sub(s.offered))
			}
		}
		for _, s := range f.acks {
			if t, ok := s.delivered(); ok {
				r.ackDelay = append(r.ackDelay, t.Sub(s.offered))
			}
		}
		r.turnaround = append(r.turnaround, f.turnarounds()...)
		for _, ss := range [][]*segment{f.data, f.acks} {
			for _, s := range ss {
				if !s.kSent.IsZero() {
					r.devQueue = append(r.devQueue, s.offered.Sub(s.kSent))
				}
				for i, t := range s.kGot {
					if !t.IsZero() {
						r.devLag = append(r.devLag, t.Sub(s.handed[i]))
					}
				}
			}
		}
		f.sortRetransmissions(&r.retrans)
	}
	return r
}

// turnarounds returns, for each segment that brought the receiver new
// data, the time from its arrival to the first ACK the receiver offered
// that reported its last byte.
func (f *flow) turnarounds() []time.Duration {
	// The segments in the order they reached the receiver.
	type arrival struct {
		at       time.Time
		from, to int64
	}
	var arr []arrival
	for _, s := range f.data {
		for _, t := range s.handed {
			from := f.rel(s.seq)
			arr = append(arr, arrival{t, from, from + int64(s.payload)})
		}
	}
	sort.Slice(arr, func(i, j int) bool { return arr[i].at.Before(arr[j].at) })
	var out []time.Duration
	got := map[int64]bool{} // the first bytes of the segments received
	for _, a := range arr {
		if got[a.from] {
			continue // a copy: not new data
		}
		got[a.from] = true
		for i := f.firstAckAfter(a.at); i < len(f.acks); i++ {
			ack := f.acks[i]
			if ack.offered.Sub(a.at) > reportWindow {
				break
			}
			if ok, _ := f.covers(ack, a.to-1); ok {
				out = append(out, ack.offered.Sub(a.at))
				break
			}
		}
	}
	return out
}

// sortRetransmissions adds the flow's retransmissions to rr.
func (f *flow) sortRetransmissions(rr *retransReport) {
	var maxEnd int64
	for i, s := range f.data {
		from := f.rel(s.seq)
		end := from + int64(s.payload)
		if i == 0 || from >= maxEnd {
			maxEnd = max(maxEnd, end)
			continue
		}
		maxEnd = max(maxEnd, end)
		rr.total++
		// The first arrival of an earlier copy of the first byte.
		var first time.Time
		for _, e := range f.data[:i] {
			ef := f.rel(e.seq)
			if ef > from || from >= ef+int64(e.payload) {
				continue
			}
			if t, ok := e.delivered(); ok && (first.IsZero() || t.Before(first)) {
				first = t
			}
		}
		if first.IsZero() {
			continue // needed: no earlier copy arrived
		}
		arrived, ok := s.delivered()
		switch {
		case !ok:
			rr.lostSpurious++
			continue
		case !first.Before(arrived):
			continue // this copy was the first to arrive
		}
		rr.spurious++
		f.sortSpurious(s, first, from, wireView, &rr.wire)
		if _, ok := kernelView.sent(s); ok {
			rr.kernelOf++
			f.sortSpurious(s, first, from, kernelView, &rr.kernel)
		}
	}
}

// sortSpurious adds to ss the spurious retransmission s of byte from,
// whose earlier copy reached the receiver at first, by the clock v.
func (f *flow) sortSpurious(s *segment, first time.Time, from int64, v view, ss *spuriousSort) {
	sent, _ := v.sent(s)
	if first.After(sent) {
		ss.originalLate++
		return
	}
	// The receiver's reports of the byte, offered after the first copy
	// arrived: the first offered and the first the sender had.
	var offered, had time.Time
	cumulative := false
	for j := f.firstAckAfter(first); j < len(f.acks); j++ {
		a := f.acks[j]
		if a.offered.Sub(sent) > reportWindow {
			break
		}
		ok, cum := f.covers(a, from)
		if !ok {
			continue
		}
		if offered.IsZero() {
			offered = a.offered
		}
		if t, ok := v.had(a); ok && (had.IsZero() || t.Before(had)) {
			had, cumulative = t, cum
		}
	}
	switch {
	case offered.IsZero() || offered.After(sent):
		ss.notReported++
	case had.IsZero() || had.After(sent):
		ss.reportOnWire++
	case sent.Sub(had) <= justIn:
		ss.reportJustIn++
	default:
		ss.reportOld++
		if cumulative {
			ss.reportOldCumulative++
		}
	}
}

// percentile returns the p-th percentile (0 to 100) of d, sorted in
// place, by the nearest rank.
func percentile(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	i := int(p/100*float64(len(d))+0.5) - 1
	return d[min(max(i, 0), len(d)-1)]
}

func micros(d time.Duration) string {
	return fmt.Sprintf("%.0f µs", float64(d)/float64(time.Microsecond))
}

func (r *report) write(w io.Writer, name string) {
	fmt.Fprintf(w, "%s: %d connections\n", name, r.conns)
	dist := func(label string, d []time.Duration, ps ...float64) {
		fmt.Fprintf(w, "  %s (%d):", label, len(d))
		for _, p := range ps {
			fmt.Fprintf(w, " p%g %s", p, micros(percentile(d, p)))
		}
		fmt.Fprintln(w)
	}
	dist("one-way delay, data", r.dataDelay, 50, 99, 99.9)
	dist("one-way delay, ACKs", r.ackDelay, 50, 99, 99.9)
	dist("receiver turnaround", r.turnaround, 10, 50, 90)
	if r.dev != nil {
		d := r.dev
		fmt.Fprintf(w, "  device capture: %d sent matched (%d not), %d received matched (%d not)\n", d.sent, d.sentUnmatched, d.got, d.gotUnmatched)
		dist("in the device, kernel to wire", r.devQueue, 50, 99, 99.9)
		dist("wire to kernel", r.devLag, 50, 99, 99.9)
	}
	rr := r.retrans
	fmt.Fprintf(w, "  retransmissions %d, spurious %d (and %d lost on the wire); of the spurious, when the retransmission was sent:\n", rr.total, rr.spurious, rr.lostSpurious)
	rr.wire.write(w)
	if r.dev != nil {
		fmt.Fprintf(w, "  by the kernel's times (%d of them):\n", rr.kernelOf)
		rr.kernel.write(w)
	}
}

func (ss *spuriousSort) write(w io.Writer) {
	fmt.Fprintf(w, "    the earlier copy had not reached the receiver: %d\n", ss.originalLate)
	fmt.Fprintf(w, "    the receiver had it and had not reported it:   %d\n", ss.notReported)
	fmt.Fprintf(w, "    its report had not reached the sender:        %d\n", ss.reportOnWire)
	fmt.Fprintf(w, "    the sender had had its report <= 0.1 ms:       %d\n", ss.reportJustIn)
	fmt.Fprintf(w, "    the sender had had its report > 0.1 ms:        %d (%d cumulative)\n", ss.reportOld, ss.reportOldCumulative)
}

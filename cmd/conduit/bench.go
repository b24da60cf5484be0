package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/conduit-go/conduit/conduit"
)

// benchResult is the outcome of conduit bench (--json prints it).
type benchResult struct {
	URI            string  `json:"uri"`
	Seconds        float64 `json:"seconds"`
	BytesEchoed    int64   `json:"bytes_echoed"`
	ThroughputMBps float64 `json:"throughput_mb_per_s"`
	RoundTrips     int     `json:"round_trips"`
	LatencyP50us   float64 `json:"latency_p50_us"`
	LatencyP90us   float64 `json:"latency_p90_us"`
	LatencyP99us   float64 `json:"latency_p99_us"`
	LatencyMaxus   float64 `json:"latency_max_us"`
}

func runBench(ctx context.Context, o *options, args []string, s *stdio) int {
	cmd := s.cmd
	uri := args[0]
	c, _, err := o.build("", uri)
	if err != nil {
		return fail(s.log, cmd, err)
	}
	defer o.close()
	dial := func() (conduit.Flow, error) {
		dctx, cancel := o.withTimeout(ctx)
		defer cancel()
		return c.Dial(o.traceContext(dctx, s.log), uri)
	}
	// deadline bounds a phase: its duration plus --timeout for the echo
	// of the last bytes (none with --timeout 0). A signal ends it at once.
	deadline := func(f conduit.Flow, d time.Duration) func() bool {
		if o.timeout > 0 {
			f.SetDeadline(time.Now().Add(d + o.timeout))
		}
		return context.AfterFunc(ctx, func() { f.SetDeadline(time.Now()) })
	}
	interrupted := func() int {
		s.log.printf("conduit: bench %s: interrupted\n", uri)
		return 1
	}
	res := benchResult{URI: uri, Seconds: o.duration.Seconds()}

	// Throughput.
	f, err := dial()
	if err != nil {
		return fail(s.log, cmd, err)
	}
	stop := deadline(f, o.duration)
	var echoed, sent counter
	readDone := make(chan error, 1)
	go func() {
		_, err := io.Copy(countingWriter{io.Discard, &echoed}, f)
		readDone <- err
	}()
	buf := make([]byte, o.size)
	start := time.Now()
	var werr error
	for time.Since(start) < o.duration && ctx.Err() == nil {
		var n int
		n, werr = f.Write(buf)
		sent.add(n)
		if werr != nil {
			break
		}
	}
	if werr == nil {
		werr = f.CloseWrite()
	}
	rerr := <-readDone
	elapsed := time.Since(start)
	stop()
	f.Close()
	res.BytesEchoed = echoed.n.Load()
	res.ThroughputMBps = float64(res.BytesEchoed) / elapsed.Seconds() / 1e6
	if ctx.Err() != nil {
		s.printBench(o, res, elapsed)
		return interrupted()
	}
	if res.BytesEchoed == 0 {
		why := "it sent nothing back"
		if e := firstErr(werr, rerr); e != nil {
			why += " (" + plain(e) + ")"
		}
		s.log.printf("conduit: bench %s: peer does not echo: %d bytes sent in %.2fs, %s\n", uri, sent.n.Load(), elapsed.Seconds(), why)
		return 1
	}
	if werr != nil || rerr != nil {
		s.log.printf("conduit: bench %s: throughput phase failed after %d bytes sent and %d echoed: %s\n", uri, sent.n.Load(), res.BytesEchoed, plain(firstErr(werr, rerr)))
		return 1
	}
	if res.BytesEchoed != sent.n.Load() {
		s.log.printf("conduit: bench %s: the peer echoed %d of the %d bytes sent\n", uri, res.BytesEchoed, sent.n.Load())
		return 1
	}

	// Latency.
	f, err = dial()
	if err != nil {
		return fail(s.log, cmd, err)
	}
	defer f.Close()
	stopL := context.AfterFunc(ctx, func() { f.SetDeadline(time.Now()) })
	defer stopL()
	m := make([]byte, o.msg)
	var rtts []time.Duration
	start = time.Now()
	for time.Since(start) < o.duration && ctx.Err() == nil {
		t0 := time.Now()
		if o.timeout > 0 {
			f.SetDeadline(t0.Add(o.timeout))
		}
		_, err := writeNodelay(f, m)
		if err == nil {
			_, err = io.ReadFull(f, m)
		}
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			if len(rtts) == 0 && isTimeout(err) {
				s.log.printf("conduit: bench %s: peer does not echo: no answer to a %d-byte message in %v\n", uri, o.msg, o.timeout)
				return 1
			}
			s.log.printf("conduit: bench %s: latency phase failed after %d round trips: %s\n", uri, len(rtts), plain(err))
			return 1
		}
		rtts = append(rtts, time.Since(t0))
	}
	slices.Sort(rtts)
	pct := func(p float64) float64 {
		if len(rtts) == 0 {
			return 0
		}
		return float64(rtts[min(len(rtts)-1, int(p*float64(len(rtts))))].Nanoseconds()) / 1e3
	}
	res.RoundTrips = len(rtts)
	res.LatencyP50us, res.LatencyP90us, res.LatencyP99us = pct(0.50), pct(0.90), pct(0.99)
	if len(rtts) > 0 {
		res.LatencyMaxus = float64(rtts[len(rtts)-1].Nanoseconds()) / 1e3
	}
	s.printBench(o, res, elapsed)
	if ctx.Err() != nil {
		return interrupted()
	}
	return 0
}

// printBench prints the result, as JSON with --json.
func (s *stdio) printBench(o *options, res benchResult, elapsed time.Duration) {
	if o.json {
		enc := json.NewEncoder(s.out)
		enc.SetIndent("", "  ")
		enc.Encode(res)
		return
	}
	fmt.Fprintf(s.out, "%s\n  throughput  %.1f MB/s (%s echoed in %.2fs, %d-byte writes)\n  latency     p50 %.1fµs  p90 %.1fµs  p99 %.1fµs  max %.1fµs (%d round trips of %d bytes)\n",
		res.URI, res.ThroughputMBps, human(res.BytesEchoed), elapsed.Seconds(), o.size,
		res.LatencyP50us, res.LatencyP90us, res.LatencyP99us, res.LatencyMaxus, res.RoundTrips, o.msg)
}

// writeNodelay pushes b at once when the flow can.
func writeNodelay(f conduit.Flow, b []byte) (int, error) {
	if nd, ok := f.(interface{ WriteNodelay([]byte) (int, error) }); ok {
		return nd.WriteNodelay(b)
	}
	return f.Write(b)
}

func firstErr(errs ...error) error {
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	return nil
}

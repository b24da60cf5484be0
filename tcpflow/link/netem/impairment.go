package netem

import (
	"errors"
	"fmt"
	"time"

	"github.com/conduit-go/conduit/clock"
)

// Defaults for the zero values of Impairment's limits.
const (
	// DefaultQueueLimit is the rate limiter's queue, in packets, when
	// Impairment.QueueLimit is zero: Linux's default txqueuelen.
	DefaultQueueLimit = 1000
	// DefaultLimit is the packets one direction holds in all (queued
	// and delayed) when Impairment.Limit is zero.
	DefaultLimit = 20000
)

// Rates for Impairment.Rate, in bits per second.
const (
	Kbps int64 = 1000
	Mbps       = 1000 * Kbps
	Gbps       = 1000 * Mbps
)

// Impairment is what one direction of a wire does to its packets. The
// zero value carries every packet at once, in order. Probabilities are
// in [0, 1] and apply to each packet.
type Impairment struct {
	// Loss is the probability that a packet is dropped, independently
	// of the others.
	Loss float64
	// Bursts drops packets in bursts besides Loss (a packet is lost if
	// either drops it); its zero value drops none.
	Bursts GilbertElliott
	// Duplicate is the probability that a packet is carried twice: the
	// copy follows the original through the rate limiter and takes the
	// same delay.
	Duplicate float64
	// Rate, if not zero, limits the direction to Rate bits per second of
	// IP packets, by a token bucket of RateBurst bytes; packets that
	// find no tokens wait in a queue of QueueLimit packets, and packets
	// that find it full are dropped (QueueDrops).
	Rate int64
	// RateBurst is the token bucket's depth in bytes; less than a
	// packet (zero, say) lets one packet through at a time, as a link
	// that serializes them would.
	RateBurst int
	// QueueLimit bounds the rate limiter's queue, in packets; zero
	// means DefaultQueueLimit. The packet being let through is not in
	// the queue.
	QueueLimit int
	// Delay is added to every packet once it leaves the rate limiter.
	Delay time.Duration
	// Jitter spreads each packet's delay uniformly over
	// [Delay-Jitter, Delay+Jitter] (none below zero). As with netem,
	// packets whose delays differ by more than their spacing arrive out
	// of order.
	Jitter time.Duration
	// Reorder is the probability that a packet skips Delay and Jitter,
	// so that it overtakes the packets sent during the Delay before it
	// (netem's "delay D reorder P"). Without a Delay it does nothing.
	Reorder float64
	// Latency is added to every packet after the rest, the ones Reorder
	// sends ahead too: the floor of the path, which reordering cannot
	// beat (a slower host at one end, say).
	Latency time.Duration
	// Limit bounds the packets the direction holds in all, queued and
	// delayed; more are dropped (Overflow). Zero means DefaultLimit.
	Limit int
}

// GilbertElliott is a two-state Markov model of burst loss (Gilbert
// 1960, Elliott 1963; netem's "loss gemodel"). Before each packet the
// state moves from good to bad with probability P, or from bad to good
// with probability R; the packet is then lost with probability LossGood
// or LossBad of the state it is in. The zero value loses nothing. In the
// long run the state is bad P/(P+R) of the time, and bad periods last
// 1/R packets on average.
type GilbertElliott struct {
	P, R              float64
	LossGood, LossBad float64
}

// Bursts returns a model that loses every packet in the bad state and
// none in the good one, with a long-run loss rate of loss and bursts of
// meanBurst packets on average (meanBurst >= 1, loss < 1).
func Bursts(loss, meanBurst float64) GilbertElliott {
	r := 1 / meanBurst
	return GilbertElliott{P: loss * r / (1 - loss), R: r, LossBad: 1}
}

// LossRate returns the model's long-run probability of loss.
func (g GilbertElliott) LossRate() float64 {
	if g.P == 0 {
		return g.LossGood
	}
	bad := g.P / (g.P + g.R)
	return bad*g.LossBad + (1-bad)*g.LossGood
}

func (g GilbertElliott) enabled() bool {
	return g.P != 0 || g.LossGood != 0
}

// ErrInvalid is wrapped by the errors of Bridge and Wrap for an
// impairment that cannot be applied.
var ErrInvalid = errors.New("netem: invalid impairment")

func (im *Impairment) validate(dir string) error {
	probs := []struct {
		name string
		v    float64
	}{
		{"Loss", im.Loss}, {"Duplicate", im.Duplicate}, {"Reorder", im.Reorder},
		{"Bursts.P", im.Bursts.P}, {"Bursts.R", im.Bursts.R},
		{"Bursts.LossGood", im.Bursts.LossGood}, {"Bursts.LossBad", im.Bursts.LossBad},
	}
	for _, p := range probs {
		if !(p.v >= 0 && p.v <= 1) {
			return fmt.Errorf("%w: %s.%s %v outside [0, 1]", ErrInvalid, dir, p.name, p.v)
		}
	}
	if im.Bursts.P > 0 && im.Bursts.R == 0 {
		return fmt.Errorf("%w: %s.Bursts.R is zero: the bad state would never end", ErrInvalid, dir)
	}
	switch {
	case im.Delay < 0, im.Jitter < 0, im.Latency < 0:
		return fmt.Errorf("%w: %s: negative delay, jitter or latency", ErrInvalid, dir)
	case im.Rate < 0, im.RateBurst < 0, im.QueueLimit < 0, im.Limit < 0:
		return fmt.Errorf("%w: %s: negative rate, burst or limit", ErrInvalid, dir)
	}
	return nil
}

// Config configures a wire. Its zero value is a perfect wire in both
// directions, in real time.
type Config struct {
	// Seed seeds the decisions; each direction draws from a stream of
	// its own.
	Seed uint64
	// AtoB and BtoA impair the two directions. For Bridge(a, b, …) AtoB
	// is what a receives and b is sent; for Wrap(inner, …) AtoB is what
	// the wrapping endpoint is given to send to inner.
	AtoB, BtoA Impairment
	// Clock, if not nil, times the wire instead of the real clock; with
	// a clock.Manual, packets are delivered by the goroutine calling
	// Advance.
	Clock clock.Clock
	// Tap, if not nil, is called with every packet offered to the wire,
	// before its fate is decided, from the goroutine offering it (one at
	// a time per direction). It must not keep pkt or block; Pcap.Tap
	// records the packets.
	Tap func(dir Dir, at time.Time, pkt []byte)
	// DeliverTap, if not nil, is called with every packet the wire
	// hands on, just before, from the goroutine delivering it (one at a
	// time per direction), with the time it is handed on: with Tap, a
	// packet's fate and its time on the wire. The same rules as Tap's.
	DeliverTap func(dir Dir, at time.Time, pkt []byte)
}

// Dir names a direction of a wire.
type Dir uint8

// The directions of a wire; see Config.AtoB.
const (
	DirAtoB Dir = iota
	DirBtoA
)

func (d Dir) String() string {
	if d == DirAtoB {
		return "AtoB"
	}
	return "BtoA"
}

// Counters are what one direction of a wire did. Every packet offered
// (and every copy made by Duplicate) ends in exactly one of Delivered,
// Lost, BurstLost, QueueDrops, Overflow, WriteErrors and Discarded, or
// is still InFlight.
type Counters struct {
	Packets, Bytes         uint64 // offered to the wire
	Delivered, DeliveredB  uint64 // handed on (packets, bytes)
	Lost                   uint64 // dropped by Loss
	BurstLost              uint64 // dropped by Bursts (and not by Loss)
	Duplicated             uint64 // copies made
	Reordered              uint64 // packets (copies included) that skipped the delay
	QueueDrops             uint64 // dropped at the rate limiter's full queue
	Overflow               uint64 // dropped: Limit packets were held
	WriteErrors            uint64 // refused by the endpoint they were handed to
	Discarded              uint64 // offered after Close, or held when it came
	InFlight               uint64 // held now (a gauge)
	MaxQueue               uint64 // the rate limiter's longest queue, in packets
	MaxInFlight            uint64 // the most packets held at once
	BadPeriods, BadPackets uint64 // Gilbert-Elliott bad periods entered, packets offered in them
	// Late counts the packets handed on more than LateBound after they
	// were due, and LateMax is the most any was: the wire's own timing
	// error (a busy process or machine, or a receiver slow to take a
	// batch), an impairment nobody asked for.
	Late    uint64
	LateMax time.Duration
}

// LateBound is how far past its time a packet may be handed on before
// Counters.Late counts it.
const LateBound = 200 * time.Microsecond

// Stats are the counters of both directions of a wire.
type Stats struct {
	AtoB, BtoA Counters
}

// Package netem is a userspace network emulator: a wire between two
// link endpoints that imposes seeded, reproducible impairments on the
// IPv4 packets it carries, in each direction separately, and counts what
// it did. It is what conduit's tests and benchmarks use where Linux's
// netem qdisc would be used, on machines whose kernel has none.
//
// Each direction applies, in this order: loss (independent, and in
// bursts by a Gilbert-Elliott model), duplication, a rate limit (a token
// bucket in front of a queue of bounded length, dropping at the tail),
// then a propagation delay with jitter, from which a share of the
// packets is exempt (netem's "reorder"), then a fixed latency that no
// packet is exempt from. Which packets are lost,
// duplicated, reordered and how much jitter each gets depends only on
// the seed and on the packet's position in its direction; when the
// packets were offered matters only to the rate limiter's queue.
//
// Bridge joins two endpoints, such as the TUN devices of two network
// namespaces; Wrap puts the wire in front of one endpoint, such as a TUN
// device, and hands the other side to a userspace stack:
//
//	imp := netem.Impairment{Delay: time.Millisecond, Loss: 0.02, Reorder: 0.25}
//	w, err := netem.Bridge(tunA, tunB, netem.Config{Seed: 1, AtoB: imp, BtoA: imp})
//	if err != nil {
//		return err
//	}
//	defer w.Close() // before closing tunA and tunB
//	...
//	fmt.Printf("%+v\n", w.Stats().AtoB)
//
// With Config.Clock nil the wire keeps real time; on Linux each
// direction then waits on a timerfd of its own, so that a delay of a
// millisecond is kept to a few microseconds rather than rounded to the
// millisecond resolution of the Go runtime's idle poller. Tests pass a
// manual clock and advance it: deliveries then happen inside Advance.
package netem

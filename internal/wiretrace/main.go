// Command wiretrace reads the two pcaps that BenchmarkKernelWire and
// TestKernelWire write for a wire with -wire.pcap — NAME.pcap, every
// packet as it was offered to the wire, and NAME.out.pcap, every copy
// as the wire handed it on, each with its time — matches them packet by
// packet and reports, over the TCP connections on the wire:
//
//   - the wire's one-way delays, of data and of ACKs (p50, p99, p99.9);
//
//   - the receiver's turnaround, from a segment of new data handed to it
//     to the first ACK it offered that reports it (p10, p50, p90);
//
//   - the sender's retransmissions, and of those that were spurious (an
//     earlier copy reached the receiver first) where that copy and the
//     receiver's report of it were when the retransmission was sent:
//     not yet at the receiver, not yet reported, the report on the wire,
//     or the report handed to the sender at most or more than 0.1 ms
//     before.
//
// With -wire.devpcap as well, the test also captures kernel B at its
// TUN device with the kernel's timestamps (NAME.dev.sent.pcap, what the
// kernel handed to the device; NAME.dev.got.pcap, what the device
// handed it); wiretrace then also reports how long B's packets waited
// in the device for the wire to read them and how long the wire's
// writes took to reach B, and sorts the spurious retransmissions a
// second time by the kernel's times: sent when the kernel handed it to
// its device, the report had when the device handed it to the kernel.
//
//	go test -c -o /tmp/wire.test ./tcpflow/stack && cd tcpflow/stack
//	/tmp/wire.test -test.run '^$' -test.bench 'KernelWire/loss=2%,reorder=25%/recv' -test.benchtime 10x -wire.pcap /tmp/pcap
//	go run ./internal/wiretrace /tmp/pcap/*recv*.out.pcap
//
// Each argument names a wire's files by any of them or by their common
// prefix.
package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: wiretrace NAME[.pcap|.out.pcap]...")
		os.Exit(2)
	}
	if err := run(os.Stdout, os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "wiretrace:", err)
		os.Exit(1)
	}
}

func run(w io.Writer, args []string) error {
	seen := map[string]bool{}
	for _, a := range args {
		name := strings.TrimSuffix(a, ".pcap")
		for _, suf := range []string{".out", ".dev.sent", ".dev.got"} {
			name = strings.TrimSuffix(name, suf)
		}
		if seen[name] {
			continue
		}
		seen[name] = true
		if err := traceOne(w, name); err != nil {
			return err
		}
	}
	return nil
}

// device is a capture of a kernel at its device: NAME.dev.sent.pcap and
// NAME.dev.got.pcap, which -wire.devpcap writes.
type device struct {
	sent, got []record
	m         *devMatch
}

// readDevice reads name's device capture; it returns nil if there is
// none.
func readDevice(name string) (*device, error) {
	sent, err := readPcap(name + ".dev.sent.pcap")
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	got, err := readPcap(name + ".dev.got.pcap")
	if err != nil {
		return nil, err
	}
	return &device{sent: sent, got: got}, nil
}

func traceOne(w io.Writer, name string) error {
	offered, err := readPcap(name + ".pcap")
	if err != nil {
		return err
	}
	handed, err := readPcap(name + ".out.pcap")
	if err != nil {
		return err
	}
	segs, err := match(offered, handed)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	if len(segs) == 0 {
		return errors.New(name + ": no TCP segments")
	}
	dev, err := readDevice(name)
	if err != nil {
		return err
	}
	if dev != nil {
		m := matchDevice(segs, dev.sent, dev.got)
		dev.m = &m
	}
	r := analyze(segs)
	if dev != nil {
		r.dev = dev.m
	}
	r.write(w, name)
	return nil
}

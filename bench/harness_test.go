package bench

import (
	"context"
	"flag"
	"fmt"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// The harness: a netStack is two stacks of one kind, a client and a
// server, joined by an in-memory link. Every benchmark and test runs the
// same code against each kind listed in stackKinds, as sibling
// sub-benchmarks named stack=conduit and stack=gvisor (ours first, which
// is what internal/benchratio expects).

// bufferSize is the send and the receive buffer of every connection of
// both stacks: 4 MiB, gVisor's largest (tcp.MaxBufferSize), four times
// both stacks' default of 1 MiB.
const bufferSize = 4 << 20

// queueLen is the packets each direction of a link may hold (conduit's
// FaultOptions.QueueLimit, the capacity of gVisor's channel endpoint);
// more are dropped. It is above a full window of bufferSize at MTU 1500
// (about 2900 segments), so that a lossless link loses nothing: with
// channel.DefaultQueueLimit (1024) both stacks overflow it in bulk
// transfers at MTU 1500 (gVisor's data segments, conduit's ACKs).
const queueLen = 4096

var stallTimeout = flag.Duration("stall", 60*time.Second,
	"fail a transfer that makes no progress for this long (instead of hanging)")

// pairConfig describes a pair of stacks and the link between them.
type pairConfig struct {
	mtu  int
	loss float64 // probability that a packet is dropped, each direction
	seed uint64  // seeds the loss decisions
	// conns is how many connections each stack must hold at once; zero
	// leaves the stacks' defaults.
	conns int
	// swChecksum makes both stacks compute and check TCP checksums;
	// by default the link offers checksum offload to both (conduit's
	// link.ChecksumOffloader, gVisor's RX and TX checksum offload
	// capabilities), as an in-memory link may.
	swChecksum bool
}

// conn is one end of a TCP connection. Both stacks' connections are
// net.Conns with a half-close.
type conn interface {
	net.Conn
	CloseWrite() error
	// WriteNodelay writes p and sends it at once, not held back by
	// Nagle's algorithm.
	WriteNodelay(p []byte) (int, error)
}

// listener accepts the connections to one port of the server stack.
type listener interface {
	accept() (conn, error)
	// close stops accepting and makes a blocked accept return an error.
	close() error
}

// netStack is a client stack (10.0.0.1) and a server stack (10.0.0.2)
// joined by an in-memory link. Its methods may be called from several
// goroutines at once.
type netStack interface {
	// listen listens on port of the server stack.
	listen(port uint16) (listener, error)
	// dial connects the client stack to port of the server stack; ctx
	// governs the connection setup only.
	dial(ctx context.Context, port uint16) (conn, error)
	// stats describes the stacks' and the link's counters, for failure
	// messages.
	stats() string
	// close closes both stacks (aborting their connections) and the
	// link, and waits for every goroutine they own.
	close()
}

// stackKind makes pairs of one kind of stack.
type stackKind struct {
	name string
	// newPair returns a pair; it is closed when tb ends.
	newPair func(tb testing.TB, cfg pairConfig) netStack
}

var stackKinds = []stackKind{
	{"conduit", newConduitPair},
	{"gvisor", newGvisorPair},
}

// connect returns the client and the server end of one new connection
// to port; both are closed when tb ends.
func connect(tb testing.TB, ns netStack, port uint16) (client, server conn) {
	tb.Helper()
	ln, err := ns.listen(port)
	if err != nil {
		tb.Fatalf("listen: %v", err)
	}
	defer ln.close()
	type accepted struct {
		c   conn
		err error
	}
	ch := make(chan accepted, 1)
	go func() {
		c, err := ln.accept()
		ch <- accepted{c, err}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	client, err = ns.dial(ctx, port)
	if err != nil {
		ln.close() // unblocks the accept
		<-ch
		tb.Fatalf("dial: %v", err)
	}
	a := <-ch
	if a.err != nil {
		client.Close()
		tb.Fatalf("accept: %v", a.err)
	}
	tb.Cleanup(func() {
		client.Close()
		a.c.Close()
	})
	return client, a.c
}

// watchdog turns a hang into a failure: when progress has not changed
// for -stall, it reports the stacks' counters on stderr, sets the
// returned flag and calls abort (which should close the connections, so
// that blocked calls return). It stops when tb ends.
func watchdog(tb testing.TB, ns netStack, what string, progress func() int64, abort func()) *atomic.Bool {
	var stalled atomic.Bool
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		last, since := progress(), time.Now()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			if p := progress(); p != last {
				last, since = p, time.Now()
				continue
			}
			if time.Since(since) >= *stallTimeout {
				stalled.Store(true)
				fmt.Fprintf(os.Stderr, "STALL %s: %s made no progress for %v (at %d)\n%s\n",
					tb.Name(), what, *stallTimeout, last, ns.stats())
				abort()
				return
			}
		}
	}()
	tb.Cleanup(func() { close(stop); wg.Wait() })
	return &stalled
}

// reader reads everything from c into a 64 KiB buffer, counting the
// bytes, until an error (io.EOF after the peer's CloseWrite).
type reader struct {
	n    atomic.Int64
	err  error // valid once done is closed
	done chan struct{}
}

func startReader(tb testing.TB, c conn) *reader {
	r := &reader{done: make(chan struct{})}
	go func() {
		defer close(r.done)
		buf := make([]byte, 64<<10)
		for {
			n, err := c.Read(buf)
			r.n.Add(int64(n))
			if err != nil {
				r.err = err
				return
			}
		}
	}()
	tb.Cleanup(func() {
		c.Close()
		<-r.done
	})
	return r
}

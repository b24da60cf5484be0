package netem_test

import (
	"fmt"
	"time"

	"github.com/conduit-go/conduit/clock"
	"github.com/conduit-go/conduit/tcpflow/link/netem"
)

// port is a link endpoint that prints what it is sent and can play
// packets as received.
type port struct {
	name string
	clk  *clock.Manual
	recv func([]byte)
}

func (p *port) MTU() int                   { return 1500 }
func (p *port) SetReceiver(f func([]byte)) { p.recv = f }
func (p *port) Close() error               { return nil }
func (p *port) receive(pkt []byte)         { p.recv(pkt) }
func (p *port) WritePacket(pkt []byte) error {
	fmt.Printf("%s got %q at +%v\n", p.name, pkt, p.clk.Now().Sub(start))
	return nil
}

var start = time.Unix(0, 0)

func ExampleBridge() {
	clk := clock.NewManual(start)
	a, b := &port{name: "a", clk: clk}, &port{name: "b", clk: clk}
	w, err := netem.Bridge(a, b, netem.Config{
		Seed:  1,
		Clock: clk, // nil: real time
		AtoB:  netem.Impairment{Delay: 5 * time.Millisecond, Rate: 8 * netem.Kbps},
		BtoA:  netem.Impairment{Loss: 1},
	})
	if err != nil {
		panic(err)
	}
	defer w.Close()
	a.receive([]byte("one")) // 3 bytes at 8 kbit/s: 3 ms each
	a.receive([]byte("two"))
	b.receive([]byte("lost"))
	clk.Advance(time.Second)
	st := w.Stats()
	fmt.Printf("a to b: %d delivered; b to a: %d lost\n", st.AtoB.Delivered, st.BtoA.Lost)
	// Output:
	// b got "one" at +5ms
	// b got "two" at +8ms
	// a to b: 2 delivered; b to a: 1 lost
}

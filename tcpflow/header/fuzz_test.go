package header

import (
	"bytes"
	"testing"
)

func FuzzIPv4(f *testing.F) {
	f.Add(mustHex(f, linuxSYNHex))
	f.Add(mustHex(f, linuxSYNACKHex))
	f.Add([]byte{0x46, 0, 0, 24, 0, 0, 0, 0, 64, 6, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 1, 0, 0, 0})
	f.Add([]byte{0x4f})
	f.Fuzz(func(t *testing.T, b []byte) {
		ip := IPv4(b)
		if err := ip.IsValid(len(b)); err != nil {
			return
		}
		// Every accessor is safe on a valid header.
		_, _, _, _, _ = ip.TOS(), ip.ID(), ip.DF(), ip.IsFragment(), ip.TTL()
		if len(ip.Payload()) != int(ip.TotalLength())-ip.HeaderLength() {
			t.Fatalf("payload %d bytes, want %d", len(ip.Payload()), int(ip.TotalLength())-ip.HeaderLength())
		}
		// encode(parse(x)) == x for the header.
		fl := ip.Fields()
		out := make(IPv4, fl.EncodedLen())
		out.Encode(&fl)
		if !bytes.Equal(out, b[:ip.HeaderLength()]) {
			t.Fatalf("re-encoded header %x, want %x", out, b[:ip.HeaderLength()])
		}
		if err := append(out, ip.Payload()...).IsValid(int(ip.TotalLength())); err != nil {
			t.Fatalf("re-encoded packet invalid: %v", err)
		}
	})
}

func FuzzTCP(f *testing.F) {
	syn := IPv4(mustHex(f, linuxSYNHex)).Payload()
	f.Add([]byte(syn))
	f.Add([]byte(IPv4(mustHex(f, linuxSYNACKHex)).Payload()))
	f.Add(make([]byte, 20))
	f.Fuzz(func(t *testing.T, b []byte) {
		tcp := TCP(b)
		if err := tcp.IsValid(); err != nil {
			return
		}
		_, _ = tcp.Flags().String(), tcp.IsChecksumValid(ourAddr, kernelAddr)
		opts, optErr := ParseTCPOptions(tcp.Options())
		fl := tcp.Fields()
		out := make(TCP, fl.EncodedLen(), fl.EncodedLen()+len(tcp.Payload()))
		out.Encode(&fl)
		out = append(out, tcp.Payload()...)
		want := append([]byte(nil), b...)
		want[12] &= 0xf0 // Encode writes the reserved bits as zero
		if !bytes.Equal(out, want) {
			t.Fatalf("re-encoded segment %x, want %x", out, want)
		}
		out.SetChecksumFor(ourAddr, kernelAddr)
		if !out.IsChecksumValid(ourAddr, kernelAddr) {
			t.Fatal("checksum set by SetChecksumFor is not valid")
		}
		if optErr == nil {
			checkOptionsRoundTrip(t, opts)
		}
	})
}

func FuzzTCPOptions(f *testing.F) {
	f.Add(TCP(IPv4(mustHex(f, linuxSYNHex)).Payload()).Options())
	f.Add([]byte{1, 1, 5, 18, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 4})
	f.Add([]byte{8, 10, 0, 0, 0, 0, 0, 0, 0, 0, 3, 3, 1, 5, 26, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0})
	f.Add([]byte{2})
	f.Add([]byte{99, 1})
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) > TCPMaxOptionsSize {
			b = b[:TCPMaxOptionsSize]
		}
		opts, err := ParseTCPOptions(b)
		if err != nil {
			if opts != (TCPOptions{}) {
				t.Fatalf("options %+v returned with error %v", opts, err)
			}
			return
		}
		checkOptionsRoundTrip(t, opts)
	})
}

// checkOptionsRoundTrip checks parse(encode(o)) == o for options parsed
// from at most 40 bytes, which must always encode within 40 bytes.
func checkOptionsRoundTrip(t *testing.T, opts TCPOptions) {
	t.Helper()
	buf := make([]byte, TCPMaxOptionsSize)
	n, err := opts.Marshal(buf)
	if err != nil {
		t.Fatalf("marshal %+v: %v", opts, err)
	}
	if n%4 != 0 || n != opts.Len() {
		t.Fatalf("marshal wrote %d bytes, Len %d", n, opts.Len())
	}
	back, err := ParseTCPOptions(buf[:n])
	if err != nil {
		t.Fatalf("parse %x: %v", buf[:n], err)
	}
	if back != opts {
		t.Fatalf("round trip %+v -> %x -> %+v", opts, buf[:n], back)
	}
}

func FuzzICMPv4(f *testing.F) {
	f.Add(AppendEcho(nil, 1, 2, []byte("ping")))
	f.Add(AppendDestUnreachable(nil, ICMPv4PortUnreachable, 0, mustHex(f, linuxSYNHex)))
	f.Add([]byte{3, 3, 0, 0, 0, 0, 0, 0, 0x4f})
	f.Fuzz(func(t *testing.T, b []byte) {
		m := ICMPv4(b)
		if err := m.IsValid(); err != nil {
			return
		}
		_, _, _, _, _ = m.Type().String(), m.Code(), m.Ident(), m.Sequence(), m.MTU()
		if o, err := m.Original(); err == nil {
			_, _, _ = o.Src(), o.Dst(), o.Payload()
			if p := o.Payload(); len(p) >= 4 {
				_ = TCP(p).SrcPort()
			}
			again := ICMPv4(AppendDestUnreachable(nil, m.Code(), m.MTU(), o))
			if err := again.IsValid(); err != nil {
				t.Fatalf("dest unreachable invalid: %v", err)
			}
		}
		if m.Type() == ICMPv4Echo && m.Code() == 0 {
			rep, err := AppendEchoReply(nil, m)
			if err != nil {
				t.Fatalf("echo reply: %v", err)
			}
			if err := ICMPv4(rep).IsValid(); err != nil {
				t.Fatalf("echo reply invalid: %v", err)
			}
			// encode(parse(x)) == x
			again := AppendEcho(nil, m.Ident(), m.Sequence(), m.Payload())
			if m.Checksum() == 0xffff && ICMPv4(again).Checksum() == 0 {
				// Both zeros of ones'-complement arithmetic are valid.
				ICMPv4(again).SetChecksum(0xffff)
			}
			if !bytes.Equal(again, b) {
				t.Fatalf("re-encoded echo %x, want %x", again, b)
			}
		}
	})
}

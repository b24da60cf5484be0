// Package tcpflow is conduit's TCP flow provider: the TCPv4 API of
// MirageOS (write, writev, write_nodelay, writev_nodelay, close, dst,
// create_connection with keepalive, listeners with per-listener
// keepalive, input) in Go idiom.
//
// A Stack creates and accepts Flows. NewKernel returns the stack backed
// by the kernel's TCP; a userspace stack that parses packets itself
// implements the same interfaces.
//
//	k := tcpflow.NewKernel(nil)
//	defer k.Close()
//	f, err := k.CreateConnection(ctx, netip.MustParseAddrPort("127.0.0.1:8080"),
//		tcpflow.DialOptions{Keepalive: &tcpflow.Keepalive{After: time.Minute, Interval: 10 * time.Second, Probes: 5}})
//	if err != nil {
//		return err // errors.Is(err, tcpflow.ErrRefused), errors.Is(err, tcpflow.ErrTimeout)
//	}
//	defer f.Close()
//	f.Writev(net.Buffers{header, body}) // one writev(2), may be coalesced (Nagle)
//	f.WriteNodelay(flush)               // pushed at once
//
// Unlike Go's net package, flows keep Nagle's algorithm on for Write and
// Writev, as MirageOS does; WriteNodelay and WritevNodelay are the way to
// push latency-sensitive data.
package tcpflow

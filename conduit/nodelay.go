package conduit

import "net"

// Nodelay returns f with every Write pushed at once, for protocols that
// expect Go's default of TCP_NODELAY: conduit's TCP flows run Nagle's
// algorithm for plain writes (MirageOS's Write), which holds a small
// write back while earlier data is unacknowledged, and a request-response
// protocol (HTTP/2 frames, gRPC) then waits on the peer's delayed ACK.
// A flow without a WriteNodelay method is returned as it is. DialContext
// returns its flows this way.
func Nodelay(f Flow) Flow {
	if _, ok := f.(*nodelayFlow); ok {
		return f
	}
	nd, ok := f.(nodelayWriter)
	if !ok {
		return f
	}
	return &nodelayFlow{Flow: f, nd: nd}
}

type nodelayWriter interface {
	WriteNodelay(b []byte) (int, error)
}

// nodelayFlow is a flow whose writes are pushed at once.
type nodelayFlow struct {
	Flow
	nd nodelayWriter
}

func (f *nodelayFlow) Write(b []byte) (int, error) { return f.nd.WriteNodelay(b) }

// WriteNodelay is Write.
func (f *nodelayFlow) WriteNodelay(b []byte) (int, error) { return f.nd.WriteNodelay(b) }

// Writev pushes the buffers too, with the flow's WritevNodelay when it
// has one.
func (f *nodelayFlow) Writev(bufs net.Buffers) (int64, error) {
	if v, ok := f.Flow.(interface {
		WritevNodelay(net.Buffers) (int64, error)
	}); ok {
		return v.WritevNodelay(bufs)
	}
	return f.Flow.Writev(bufs)
}

// NetConn returns the flow.
func (f *nodelayFlow) NetConn() net.Conn { return f.Flow }

// Unwrap returns the flow, for type assertions to tcpflow.Flow.
func (f *nodelayFlow) Unwrap() Flow { return f.Flow }

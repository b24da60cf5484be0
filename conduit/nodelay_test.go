package conduit

import (
	"context"
	"net"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/conduit-go/conduit/endpoint"
)

// nagleFlow counts the writes it was asked to push and those it may
// hold back.
type nagleFlow struct {
	Flow
	plain, pushed, vpushed atomic.Int32
}

func (f *nagleFlow) Write(b []byte) (int, error) { f.plain.Add(1); return len(b), nil }
func (f *nagleFlow) WriteNodelay(b []byte) (int, error) {
	f.pushed.Add(1)
	return len(b), nil
}
func (f *nagleFlow) WritevNodelay(bufs net.Buffers) (int64, error) {
	f.vpushed.Add(1)
	return 0, nil
}

// nagleTransport hands out one nagleFlow.
type nagleTransport struct{ f *nagleFlow }

func (t nagleTransport) Dial(context.Context, endpoint.Endpoint, DialOptions) (net.Conn, error) {
	return t.f, nil
}
func (nagleTransport) Listen(context.Context, endpoint.Endpoint, ListenOptions) (net.Listener, error) {
	return nil, errRefusedMem
}

// TestDialContextPushesWrites: DialContext stands in for net.Dialer, whose
// connections have TCP_NODELAY; its flows' writes are pushed at once.
func TestDialContextPushesWrites(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	f := &nagleFlow{Flow: AsFlow(a)}
	reg := NewRegistry()
	require.NoError(t, reg.Register(endpoint.KindTCP, nagleTransport{f}))
	c := New(&Config{Registry: reg})
	defer c.Close()
	conn, err := c.DialContext(context.Background(), "tcp", "127.0.0.1:9")
	require.NoError(t, err)
	_, err = conn.Write([]byte("x"))
	require.NoError(t, err)
	_, err = conn.(Flow).Writev(net.Buffers{[]byte("y")})
	require.NoError(t, err)
	assert.Equal(t, int32(0), f.plain.Load())
	assert.Equal(t, int32(1), f.pushed.Load())
	assert.Equal(t, int32(1), f.vpushed.Load())
	assert.Same(t, Flow(f), conn.(interface{ Unwrap() Flow }).Unwrap())
	assert.Equal(t, Nodelay(conn.(Flow)), conn, "Nodelay of a Nodelay flow is the same flow")
}

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

// countedEndpoint counts the calls of its Validate method.
type countedEndpoint struct{ n *atomic.Int32 }

func (countedEndpoint) Kind() string      { return "counted" }
func (countedEndpoint) String() string    { return "counted://x" }
func (e countedEndpoint) Validate() error { e.n.Add(1); return nil }

// refusingTransport refuses every dial.
type refusingTransport struct{}

func (refusingTransport) Dial(context.Context, endpoint.Endpoint, DialOptions) (net.Conn, error) {
	return nil, errRefusedMem
}
func (refusingTransport) Listen(context.Context, endpoint.Endpoint, ListenOptions) (net.Listener, error) {
	return nil, errRefusedMem
}

// TestDialValidatesOnce: an endpoint and the endpoints it wraps are
// validated once per dial, not again when the wrapping transport dials
// the inner one.
func TestDialValidatesOnce(t *testing.T) {
	c := New(nil)
	defer c.Close()
	require.NoError(t, c.Registry().Register("counted", refusingTransport{}))
	var n atomic.Int32
	_, err := c.DialEndpoints(context.Background(), []endpoint.Endpoint{
		endpoint.TLS{ServerName: "x", Inner: countedEndpoint{&n}},
	})
	require.Error(t, err)
	assert.Equal(t, int32(1), n.Load())
}

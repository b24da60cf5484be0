package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/url"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/conduit-go/conduit/conduit"
	"github.com/conduit-go/conduit/endpoint"
)

// ringEndpoint is a kind no file of conduit knows: everything about it
// is on the kind (its URI, family, validation, the bound address written
// back, its JSON form) or on its transport below.
type ringEndpoint struct {
	Name string
	Slot int // 0 to listen: the listener picks one
}

func (ringEndpoint) Kind() string     { return "ring" }
func (e ringEndpoint) String() string { return fmt.Sprintf("ring://%s/%d", e.Name, e.Slot) }
func (e ringEndpoint) URI() string    { return e.String() }
func (ringEndpoint) Family() string   { return "ring" }
func (e ringEndpoint) MarshalJSON() ([]byte, error) {
	return []byte(fmt.Sprintf(`{"transport":"ring","address":%q,"slot":%d}`, e.Name, e.Slot)), nil
}
func (e ringEndpoint) Validate() error {
	if e.Slot <= 0 {
		return fmt.Errorf("ring: %s: slot 0 is only valid to listen on", e)
	}
	return nil
}
func (e ringEndpoint) Bind(a net.Addr) endpoint.Endpoint {
	if r, ok := a.(ringAddr); ok {
		e.Slot = int(r)
	}
	return e
}

type ringAddr int

func (ringAddr) Network() string  { return "ring" }
func (r ringAddr) String() string { return fmt.Sprint(int(r)) }

// ringTransport connects dialers to listeners by slot with net.Pipe.
type ringTransport struct {
	mu    sync.Mutex
	slots map[int]chan net.Conn
}

func (t *ringTransport) Dial(ctx context.Context, ep endpoint.Endpoint, _ conduit.DialOptions) (net.Conn, error) {
	t.mu.Lock()
	ch := t.slots[ep.(ringEndpoint).Slot]
	t.mu.Unlock()
	if ch == nil {
		return nil, fmt.Errorf("ring: %s: nobody listens", ep)
	}
	a, b := net.Pipe()
	select {
	case ch <- b:
		return a, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (t *ringTransport) Listen(context.Context, endpoint.Endpoint, conduit.ListenOptions) (net.Listener, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.slots == nil {
		t.slots = map[int]chan net.Conn{}
	}
	slot := len(t.slots) + 1
	l := &ringListener{slot: slot, conns: make(chan net.Conn), done: make(chan struct{})}
	t.slots[slot] = l.conns
	return l, nil
}

type ringListener struct {
	slot  int
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
}

func (l *ringListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}
func (l *ringListener) Close() error   { l.once.Do(func() { close(l.done) }); return nil }
func (l *ringListener) Addr() net.Addr { return ringAddr(l.slot) }

// TestCustomKind registers a kind and its transport, then listens, dials,
// resolves and prints it through the command's printer, without any
// change to conduit's own files.
func TestCustomKind(t *testing.T) {
	c := conduit.New(nil)
	defer c.Close()
	require.NoError(t, c.Registry().Register("ring", &ringTransport{}))
	require.NoError(t, c.Registry().RegisterScheme("ring", func(_ context.Context, u *url.URL) ([]endpoint.Endpoint, error) {
		var slot int
		if _, err := fmt.Sscanf(u.Path, "/%d", &slot); err != nil {
			return nil, fmt.Errorf("ring URI %q: want ring://NAME/SLOT", u)
		}
		return []endpoint.Endpoint{ringEndpoint{Name: u.Host, Slot: slot}}, nil
	}))
	ctx := context.Background()

	ln, err := c.Listen(ctx, "ring://a/0")
	require.NoError(t, err)
	defer ln.Close()
	assert.Equal(t, ringEndpoint{Name: "a", Slot: 1}, ln.Endpoint(), "the bound address is written back by the kind")
	assert.Equal(t, "ring://a/1", ln.URI())

	served := make(chan error, 1)
	go func() {
		f, err := ln.AcceptFlow()
		if err == nil {
			_, err = io.Copy(f, f)
			f.Close()
		}
		served <- err
	}()
	f, err := c.Dial(ctx, ln.URI())
	require.NoError(t, err)
	_, err = f.Write([]byte("hello"))
	require.NoError(t, err)
	got := make([]byte, 5)
	_, err = io.ReadFull(f, got)
	require.NoError(t, err)
	assert.Equal(t, "hello", string(got))
	f.Close()
	require.NoError(t, <-served)

	_, err = c.Dial(ctx, "ring://a/0")
	assert.ErrorContains(t, err, "slot 0 is only valid to listen on", "the kind validates itself")

	eps, err := c.Resolve(ctx, "ring://b/7")
	require.NoError(t, err)
	var text, js bytes.Buffer
	require.NoError(t, printEndpoints(&text, eps, false))
	require.NoError(t, printEndpoints(&js, append(eps, endpoint.TLS{ServerName: "b", Inner: eps[0]}), true))
	assert.Equal(t, "ring://b/7\n", text.String())
	assert.JSONEq(t, `[{"transport":"ring","address":"b","slot":7},
		{"transport":"tls","address":"b","server_name":"b","inner":{"transport":"ring","address":"b","slot":7}}]`, js.String())
	assert.Equal(t, "ring", endpoint.Family(endpoint.TLS{ServerName: "b", Inner: eps[0]}))
}

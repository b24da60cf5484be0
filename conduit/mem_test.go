package conduit

import (
	"context"
	"errors"
	"io"
	"net"
	"net/url"
	"sync"
	"time"

	"github.com/conduit-go/conduit/endpoint"
)

// memEndpoint is the endpoint of the in-memory test transport.
type memEndpoint struct{ Name string }

func (memEndpoint) Kind() string     { return "mem" }
func (e memEndpoint) String() string { return "mem://" + e.Name }

func parseMem(_ context.Context, u *url.URL) ([]endpoint.Endpoint, error) {
	if u.Host == "" {
		return nil, errorf("mem URI %q has no name", u)
	}
	return []endpoint.Endpoint{memEndpoint{u.Host}}, nil
}

// memTransport connects dialers to listeners by name through net.Pipe.
type memTransport struct {
	mu        sync.Mutex
	listeners map[string]*memListener
}

func (t *memTransport) Dial(ctx context.Context, ep endpoint.Endpoint, _ DialOptions) (net.Conn, error) {
	t.mu.Lock()
	l := t.listeners[ep.(memEndpoint).Name]
	t.mu.Unlock()
	if l == nil {
		return nil, &net.OpError{Op: "dial", Net: "mem", Err: errRefusedMem}
	}
	a, b := memPipe(ep.String())
	select {
	case l.conns <- b:
		return a, nil
	case <-l.done:
		return nil, &net.OpError{Op: "dial", Net: "mem", Err: errRefusedMem}
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (t *memTransport) Listen(_ context.Context, ep endpoint.Endpoint, _ ListenOptions) (net.Listener, error) {
	name := ep.(memEndpoint).Name
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.listeners == nil {
		t.listeners = map[string]*memListener{}
	}
	if t.listeners[name] != nil {
		return nil, errorf("mem %q: address in use", name)
	}
	l := &memListener{t: t, name: name, conns: make(chan net.Conn), done: make(chan struct{})}
	t.listeners[name] = l
	return l, nil
}

var errRefusedMem = refusedError{}

// refusedError matches ErrRefused through syscall-independent means: it
// is how a custom transport reports refusal.
type refusedError struct{}

func (refusedError) Error() string { return "mem: connection refused" }
func (refusedError) Is(target error) bool {
	return target == ErrRefused
}

type memListener struct {
	t     *memTransport
	name  string
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
}

func (l *memListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *memListener) Close() error {
	l.once.Do(func() {
		close(l.done)
		l.t.mu.Lock()
		delete(l.t.listeners, l.name)
		l.t.mu.Unlock()
	})
	return nil
}

func (l *memListener) Addr() net.Addr { return memAddr(l.name) }

type memAddr string

func (memAddr) Network() string  { return "mem" }
func (a memAddr) String() string { return string(a) }

// memConn is one end of an in-memory connection that can half-close.
type memConn struct {
	r      *io.PipeReader
	w      *io.PipeWriter
	local  memAddr
	remote memAddr
}

func memPipe(name string) (*memConn, *memConn) {
	r1, w1 := io.Pipe()
	r2, w2 := io.Pipe()
	return &memConn{r: r1, w: w2, local: "client", remote: memAddr(name)},
		&memConn{r: r2, w: w1, local: memAddr(name), remote: "client"}
}

func (c *memConn) Read(b []byte) (int, error)  { return c.r.Read(b) }
func (c *memConn) Write(b []byte) (int, error) { return c.w.Write(b) }
func (c *memConn) CloseWrite() error           { return c.w.Close() }
func (c *memConn) Close() error {
	c.w.Close()
	return c.r.Close()
}
func (c *memConn) LocalAddr() net.Addr              { return c.local }
func (c *memConn) RemoteAddr() net.Addr             { return c.remote }
func (c *memConn) SetDeadline(time.Time) error      { return errors.ErrUnsupported }
func (c *memConn) SetReadDeadline(time.Time) error  { return errors.ErrUnsupported }
func (c *memConn) SetWriteDeadline(time.Time) error { return errors.ErrUnsupported }

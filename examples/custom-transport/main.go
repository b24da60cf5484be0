// Command custom-transport registers a new URI scheme, "pipe://NAME", with
// a transport that connects dialers to listeners of the same name inside
// the process, then serves and dials it through conduit like any other
// URI.
package main

import (
	"context"
	"fmt"
	"io"
	"log"
	"net"
	"net/url"
	"os"
	"strings"
	"sync"

	"github.com/conduit-go/conduit/conduit"
	"github.com/conduit-go/conduit/endpoint"
)

// pipeEndpoint is the endpoint of the new transport. Any type with Kind
// and String is an endpoint.
type pipeEndpoint struct{ Name string }

func (pipeEndpoint) Kind() string     { return "pipe" }
func (e pipeEndpoint) String() string { return "pipe://" + e.Name }

// parsePipe turns "pipe://NAME" into a pipeEndpoint.
func parsePipe(_ context.Context, u *url.URL) ([]endpoint.Endpoint, error) {
	if u.Host == "" {
		return nil, fmt.Errorf("pipe URI %q has no name", u)
	}
	return []endpoint.Endpoint{pipeEndpoint{u.Host}}, nil
}

// pipeTransport implements conduit.Transport with net.Pipe.
type pipeTransport struct {
	mu        sync.Mutex
	listeners map[string]chan net.Conn
}

func (t *pipeTransport) Dial(ctx context.Context, ep endpoint.Endpoint, _ conduit.DialOptions) (net.Conn, error) {
	t.mu.Lock()
	accept := t.listeners[ep.(pipeEndpoint).Name]
	t.mu.Unlock()
	if accept == nil {
		return nil, fmt.Errorf("pipe %s: nobody listens", ep)
	}
	client, server := net.Pipe()
	select {
	case accept <- server:
		return client, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (t *pipeTransport) Listen(_ context.Context, ep endpoint.Endpoint, _ conduit.ListenOptions) (net.Listener, error) {
	name := ep.(pipeEndpoint).Name
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.listeners == nil {
		t.listeners = map[string]chan net.Conn{}
	}
	if t.listeners[name] != nil {
		return nil, fmt.Errorf("pipe %s: already listening", ep)
	}
	l := &pipeListener{t: t, name: name, conns: make(chan net.Conn), done: make(chan struct{})}
	t.listeners[name] = l.conns
	return l, nil
}

type pipeListener struct {
	t     *pipeTransport
	name  string
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
}

func (l *pipeListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *pipeListener) Close() error {
	l.once.Do(func() {
		close(l.done)
		l.t.mu.Lock()
		delete(l.t.listeners, l.name)
		l.t.mu.Unlock()
	})
	return nil
}

func (l *pipeListener) Addr() net.Addr { return &net.UnixAddr{Name: l.name, Net: "pipe"} }

// run registers the transport, serves an upper-casing handler on
// pipe://shout and dials it.
func run(ctx context.Context, w io.Writer) error {
	reg := conduit.NewDefaultRegistry(nil) // tcp, unix, tls
	if err := reg.Register("pipe", &pipeTransport{}); err != nil {
		return err
	}
	if err := reg.RegisterScheme("pipe", parsePipe); err != nil {
		return err
	}
	c := conduit.New(&conduit.Config{Registry: reg})
	defer c.Close()

	ln, err := c.Listen(ctx, "pipe://shout")
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	served := make(chan error, 1)
	go func() {
		served <- conduit.ServeListener(ctx, ln, conduit.HandlerFunc(func(_ context.Context, f conduit.Flow) {
			buf := make([]byte, 64)
			n, _ := f.Read(buf)
			f.Write([]byte(strings.ToUpper(string(buf[:n]))))
		}), conduit.DefaultGracePeriod)
	}()
	defer func() { cancel(); <-served }()

	f, err := c.Dial(ctx, "pipe://shout")
	if err != nil {
		return err
	}
	defer f.Close()
	if _, err := f.Write([]byte("hello over a custom transport")); err != nil {
		return err
	}
	reply, err := io.ReadAll(f)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "%s -> %s\n", ln.URI(), reply)
	return nil
}

func main() {
	if err := run(context.Background(), os.Stdout); err != nil {
		log.Fatal(err)
	}
}

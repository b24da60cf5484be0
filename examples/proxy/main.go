// Command proxy runs a SOCKS5 proxy and an HTTP CONNECT proxy of
// conduit's own, then dials an echo server through both of them, chained,
// with one URI: the first proxy is reached over a Unix socket, the second
// through the first, and the destination through the second.
//
//	tcp://127.0.0.1:PORT?proxy=socks5h+unix:///DIR/socks.sock&proxy=http://127.0.0.1:PORT
//
// The same URI works with `conduit dial`, and every proxy may be a real
// one (danted, squid, …) instead.
package main

import (
	"context"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"path/filepath"

	"github.com/conduit-go/conduit/conduit"
	"github.com/conduit-go/conduit/endpoint"
	"github.com/conduit-go/conduit/proxy"
)

func run(ctx context.Context, dir string, w io.Writer) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	c := conduit.New(nil)
	defer c.Close()

	// An echo server: the destination.
	echo, err := c.Listen(ctx, "tcp://127.0.0.1:0")
	if err != nil {
		return err
	}
	served := make(chan error, 3)
	go func() {
		served <- conduit.ServeListener(ctx, echo, conduit.HandlerFunc(func(_ context.Context, f conduit.Flow) {
			io.Copy(f, f)
			f.CloseWrite()
		}), 0)
	}()

	// A SOCKS5 proxy on a Unix socket, and an HTTP CONNECT proxy on
	// loopback that requires a password.
	socksLn, err := c.Listen(ctx, "unix://"+filepath.Join(dir, "socks.sock"))
	if err != nil {
		return err
	}
	go func() { served <- c.ServeProxy(ctx, socksLn, conduit.ProxySchemeSOCKS5, &proxy.Server{}, 0) }()
	connectLn, err := c.Listen(ctx, "tcp://127.0.0.1:0")
	if err != nil {
		return err
	}
	auth := &proxy.Auth{Username: "demo", Password: "s3cret"}
	go func() {
		served <- c.ServeProxy(ctx, connectLn, conduit.ProxySchemeConnect, &proxy.Server{Auth: auth}, 0)
	}()

	uri := fmt.Sprintf("%s?proxy=socks5h+unix://%s&proxy=http://demo:s3cret@%s",
		echo.URI(), filepath.Join(dir, "socks.sock"), connectLn.Addr())
	eps, err := c.Resolve(ctx, uri)
	if err != nil {
		return err
	}
	for _, ep := range eps {
		fmt.Fprintln(w, "endpoint:", hops(ep))
	}
	f, err := c.Dial(ctx, uri)
	if err != nil {
		return err
	}
	defer f.Close()
	if _, err := io.WriteString(f, "hello through two proxies\n"); err != nil {
		return err
	}
	f.CloseWrite()
	reply, err := io.ReadAll(f)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "echo: %s", reply)
	cancel()
	for range 3 {
		if err := <-served; err != nil {
			return err
		}
	}
	return nil
}

// hops describes a chain from the nearest proxy to the destination.
func hops(ep endpoint.Endpoint) string {
	var parts []string
	for ep != nil {
		if p, ok := ep.(endpoint.Proxy); ok {
			parts = append([]string{p.Protocol + " → " + anonymous(p.Target)}, parts...)
		} else if endpoint.Unwrap(ep) == nil {
			parts = append([]string{ep.Kind()}, parts...)
		}
		ep = endpoint.Unwrap(ep)
	}
	return fmt.Sprint(parts)
}

// anonymous hides a loopback port, which changes on every run.
func anonymous(hostport string) string {
	host, _, err := net.SplitHostPort(hostport)
	if err != nil {
		return hostport
	}
	return host + ":PORT"
}

func main() {
	dir, err := os.MkdirTemp("", "conduit-proxy-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	if err := run(context.Background(), dir, os.Stdout); err != nil {
		log.Fatal(err)
	}
}

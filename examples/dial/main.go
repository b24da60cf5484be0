// Command dial dials by URI: it starts a small echo server with the
// standard library, dials it with conduit (Happy Eyeballs across the
// addresses of "localhost"), uses the flow API (Writev, CloseWrite,
// WriteNodelay on TCP) and shows the typed errors of a refused dial.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"strings"
	"time"

	"github.com/conduit-go/conduit/conduit"
	"github.com/conduit-go/conduit/tcpflow"
)

func run(ctx context.Context, w io.Writer) error {
	// A plain echo server from package net: conduit talks to any peer.
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		return err
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() { io.Copy(c, c); c.Close() }()
		}
	}()
	port := l.Addr().(*net.TCPAddr).Port

	c := conduit.New(&conduit.Config{Keepalive: &tcpflow.Keepalive{After: time.Minute, Interval: 10 * time.Second, Probes: 5}})
	defer c.Close()
	dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	f, err := c.Dial(dctx, fmt.Sprintf("tcp://localhost:%d", port))
	if err != nil {
		return err
	}
	defer f.Close()
	if tf, ok := f.(tcpflow.Flow); ok {
		fmt.Fprintf(w, "connected to %s\n", tf.Dst())
		tf.WriteNodelay([]byte("ping "))
	}
	f.Writev(net.Buffers{[]byte("over "), []byte("vectors")})
	f.CloseWrite()
	reply, err := io.ReadAll(f)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "echo: %s\n", reply)

	// Nothing listens on the port any more: a refused dial, with the URI
	// and the cause in the message.
	l.Close()
	_, err = c.Dial(dctx, fmt.Sprintf("tcp://127.0.0.1:%d", port))
	fmt.Fprintf(w, "refused: %v\n", errors.Is(err, conduit.ErrRefused))
	fmt.Fprintf(w, "message names the URI: %v\n", strings.Contains(err.Error(), fmt.Sprintf("tcp://127.0.0.1:%d", port)))
	return nil
}

func main() {
	if err := run(context.Background(), os.Stdout); err != nil {
		log.Fatal(err)
	}
}

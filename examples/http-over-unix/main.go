// Command http-over-unix runs an http.Server and an http.Client whose
// connections go through conduit: the server serves on a conduit Listener
// for a Unix socket, the client's transport dials with
// Conduit.DialContext, so "http://app/" reaches the socket whatever the
// host name says.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"path/filepath"

	"github.com/conduit-go/conduit/conduit"
)

func run(ctx context.Context, dir string, w io.Writer) error {
	c := conduit.New(nil)
	defer c.Close()
	sock := "unix://" + filepath.Join(dir, "app.sock")

	ln, err := c.Listen(ctx, sock)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(rw, "hello from %s over %s\n", r.URL.Path, ln.Addr().Network())
	})}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()

	client := &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return c.DialContext(ctx, "tcp", sock) // a URI address is dialed as it is
		},
	}}
	defer client.CloseIdleConnections()
	resp, err := client.Get("http://app/status")
	if err != nil {
		return err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "%s %s", resp.Status, body)

	if err := srv.Shutdown(ctx); err != nil {
		return err
	}
	if err := <-served; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

func main() {
	dir, err := os.MkdirTemp("", "conduit-http-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	if err := run(context.Background(), dir, os.Stdout); err != nil {
		log.Fatal(err)
	}
}

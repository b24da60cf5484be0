package conduithttp_test

import (
	"context"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/url"
	"os"
	"path/filepath"

	"github.com/conduit-go/conduit/conduit"
	"github.com/conduit-go/conduit/conduithttp"
)

// A server on a Unix socket, and a client that reaches it with an
// http+unix URL.
func Example() {
	dir, err := os.MkdirTemp("", "conduithttp-example-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	c := conduit.New(nil)
	defer c.Close()

	sock := filepath.Join(dir, "app.sock")
	ln, err := c.Listen(context.Background(), "unix://"+sock)
	if err != nil {
		log.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%s for %s", r.URL.Path, r.Host)
	})}
	served := make(chan error, 1)
	go func() { served <- conduithttp.ServeListener(srv, ln) }()

	client := conduithttp.NewClient(c, nil)
	resp, err := client.Get("http+unix://" + url.PathEscape(sock) + "/health")
	if err != nil {
		log.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	fmt.Println(resp.Status, string(body))

	client.CloseIdleConnections()
	srv.Close()
	<-served
	// Output: 200 OK /health for localhost
}

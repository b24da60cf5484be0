package conduithttp_test

import (
	"io"
	"net"
	"net/http"
	"testing"

	"github.com/conduit-go/conduit/conduit"
	"github.com/conduit-go/conduit/conduithttp"
)

// Sequential GETs on a kept-alive connection to a net/http server on
// loopback: ours through the conduit Transport, the peer through a plain
// http.Transport. Compare with internal/benchratio:
//
//	go test -run '^$' -bench HTTPGet -count 5 ./conduithttp | go run ./internal/benchratio
func BenchmarkHTTPGet(b *testing.B) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "hello, world\n")
	})}
	done := make(chan struct{})
	go func() { defer close(done); srv.Serve(ln) }()
	defer func() { srv.Close(); <-done }()
	url := "http://" + ln.Addr().String() + "/"

	b.Run("ours", func(b *testing.B) {
		c := conduit.New(nil)
		defer c.Close()
		t := conduithttp.NewTransport(c, nil)
		defer t.CloseIdleConnections()
		benchGets(b, &http.Client{Transport: t}, url)
	})
	b.Run("peer", func(b *testing.B) {
		t := &http.Transport{MaxIdleConns: 100, ForceAttemptHTTP2: true}
		defer t.CloseIdleConnections()
		benchGets(b, &http.Client{Transport: t}, url)
	})
}

func benchGets(b *testing.B, client *http.Client, url string) {
	get := func() {
		resp, err := client.Get(url)
		if err != nil {
			b.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	get()
	b.ReportAllocs()
	for b.Loop() {
		get()
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
}

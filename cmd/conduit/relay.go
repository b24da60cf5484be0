package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/conduit-go/conduit/conduit"
)

func runRelay(ctx context.Context, args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("relay", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var com common
	com.register(fs)
	maxConns := fs.Int("max-conns", 0, "relay at most `N` connections at once (0: no limit)")
	grace := fs.Duration("grace", 5*time.Second, "on SIGINT/SIGTERM, wait this long for open connections")
	fs.Usage = func() {
		fmt.Fprintln(stderr, `usage: conduit relay [flags] LISTEN_URI DIAL_URI

Accepts connections on LISTEN_URI and forwards each to a fresh dial of
DIAL_URI, both directions, passing half-closes through.

Examples:
  conduit relay tcp://127.0.0.1:8080 unix:///run/app.sock
  conduit relay --cert srv.pem --key srv.key tls://0.0.0.0:443 tcp://127.0.0.1:8080

Flags:`)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return exitParse(err)
	}
	if fs.NArg() != 2 {
		fs.Usage()
		return 2
	}
	listenURI, dialURI := fs.Arg(0), fs.Arg(1)
	c, ka, err := com.build()
	if err != nil {
		return fail(stderr, err)
	}
	defer func() { c.Close(); com.close() }()
	ln, err := com.listen(ctx, c, listenURI, ka, *maxConns, *grace)
	if err != nil {
		return fail(stderr, err)
	}
	log := newLockedWriter(stderr)
	log.printf("listening on %s\n", ln.URI())
	h := conduit.HandlerFunc(func(ctx context.Context, in conduit.Flow) {
		dctx, cancel := context.WithTimeout(ctx, com.timeout)
		out, err := c.Dial(traceContext(dctx, com.trace, stderr), dialURI)
		cancel()
		if err != nil {
			log.printf("%s: %v\n", in.RemoteAddr(), plain(err))
			return
		}
		defer out.Close()
		var up, down counter
		errc := make(chan error, 1)
		go func() { errc <- pipe(out, in, &up) }()
		err = pipe(in, out, &down)
		err = errors.Join(err, <-errc)
		if err != nil && ctx.Err() == nil {
			log.printf("relay %s -> %s cut short after %d bytes up, %d down: %v\n", in.RemoteAddr(), dialURI, up.n.Load(), down.n.Load(), plain(err))
			return
		}
		log.printf("relay %s -> %s: %d bytes up, %d down\n", in.RemoteAddr(), dialURI, up.n.Load(), down.n.Load())
	})
	if err := conduit.ServeListener(ctx, ln, h, *grace); err != nil && ctx.Err() == nil {
		return fail(stderr, err)
	}
	return 0
}

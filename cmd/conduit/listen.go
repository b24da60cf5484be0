package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/conduit-go/conduit/conduit"
)

func runListen(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("listen", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var com common
	com.register(fs)
	echo := fs.Bool("echo", false, "send every byte back")
	discard := fs.Bool("discard", false, "drop what is received")
	maxConns := fs.Int("max-conns", 0, "accept at most `N` connections at once (0: no limit)")
	grace := fs.Duration("grace", 5*time.Second, "on SIGINT/SIGTERM, wait this long for open connections")
	fs.Usage = func() {
		fmt.Fprintln(stderr, `usage: conduit listen [flags] URI

Accepts connections on URI. By default what they send is printed on
standard output; --echo sends it back, --discard drops it. The first line
on standard error is "listening on URI" with the bound address (port 0
replaced by the real port). SIGINT or SIGTERM stops it gracefully.

Examples:
  conduit listen --echo tcp://127.0.0.1:7000
  conduit listen --discard --max-conns 100 tcp://[::1]:0
  conduit listen --cert srv.pem --key srv.key tls://127.0.0.1:8443
  conduit listen unix:///tmp/app.sock > received

Flags:`)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return exitParse(err)
	}
	if fs.NArg() != 1 || (*echo && *discard) {
		fs.Usage()
		return 2
	}
	uri := fs.Arg(0)
	c, ka, err := com.build()
	if err != nil {
		return fail(stderr, err)
	}
	defer func() { c.Close(); com.close() }()
	ln, err := com.listen(ctx, c, uri, ka, *maxConns, *grace)
	if err != nil {
		return fail(stderr, err)
	}
	log := newLockedWriter(stderr)
	log.printf("listening on %s\n", ln.URI())
	out := newLockedWriter(stdout)
	h := conduit.HandlerFunc(func(ctx context.Context, f conduit.Flow) {
		log.printf("accepted %s\n", f.RemoteAddr())
		var in, back counter
		var err error
		switch {
		case *echo:
			err = pipe(f, countingReader{f, &in}, &back)
		case *discard:
			_, err = io.Copy(io.Discard, countingReader{f, &in})
		default:
			_, err = io.Copy(out, countingReader{f, &in})
		}
		if err != nil && ctx.Err() == nil {
			log.printf("closed %s after %d bytes received, %d sent: %v\n", f.RemoteAddr(), in.n.Load(), back.n.Load(), plain(err))
			return
		}
		log.printf("closed %s: %d bytes received, %d sent\n", f.RemoteAddr(), in.n.Load(), back.n.Load())
	})
	if err := conduit.ServeListener(ctx, ln, h, *grace); err != nil && ctx.Err() == nil {
		return fail(stderr, err)
	}
	return 0
}

type countingReader struct {
	r io.Reader
	c *counter
}

func (cr countingReader) Read(p []byte) (int, error) {
	n, err := cr.r.Read(p)
	cr.c.n.Add(int64(n))
	return n, err
}

package main

import (
	"context"
	"fmt"

	"github.com/conduit-go/conduit/conduit"
)

func runRelay(ctx context.Context, o *options, args []string, s *stdio) int {
	cmd := s.cmd
	listenURI, dialURI := args[0], args[1]
	c, ka, err := o.build(listenURI, dialURI)
	if err != nil {
		return fail(s.log, cmd, err)
	}
	defer o.close()
	ln, err := o.listen(ctx, c, listenURI, ka, o.maxConns)
	if err != nil {
		return fail(s.log, cmd, err)
	}
	log := s.log
	log.printf("listening on %s\n", ln.URI())
	h := conduit.HandlerFunc(func(ctx context.Context, in conduit.Flow) {
		remote := in.RemoteAddr().String()
		log.printf("accepted %s\n", remote)
		dctx, cancel := o.withTimeout(ctx)
		out, err := c.Dial(o.traceContext(dctx, log), dialURI)
		cancel()
		if err != nil {
			log.printf("closed %s: cut by an error: %s\n", remote, plain(err))
			return
		}
		defer out.Close()
		// The flows are closed by the server at the end of the grace
		// period, not when the shutdown begins.
		run := context.WithoutCancel(ctx)
		// One transfer: in's bytes go up to out (then out is half-closed),
		// out's come down to in (then in is half-closed).
		up := &transfer{f: out, in: in, out: flowWriter{in}}
		var cwErr error
		up.outDone = func() { cwErr = in.CloseWrite() }
		res := up.run(run)
		if res.clean() {
			res.recvErr = cwErr
		}
		counts := fmt.Sprintf("%d bytes up, %d down", up.sent.n.Load(), up.received.n.Load())
		if res.clean() {
			log.printf("closed %s: ended cleanly, %s (relayed to %s)\n", remote, counts, dialURI)
			return
		}
		in.Close()
		log.printf("closed %s: %s after %s (relayed to %s): %s\n", remote, howCut(ctx, res, o), counts, dialURI, res.cause())
	})
	if err := conduit.ServeListener(ctx, ln, h, o.grace); err != nil && ctx.Err() == nil {
		return fail(s.log, cmd, err)
	}
	return 0
}

// flowWriter writes to a flow, hiding its other methods from io.Copy.
type flowWriter struct{ f conduit.Flow }

func (w flowWriter) Write(p []byte) (int, error) { return w.f.Write(p) }

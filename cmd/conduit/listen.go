package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/conduit-go/conduit/conduit"
	"github.com/conduit-go/conduit/endpoint"
	"github.com/conduit-go/conduit/tlsflow"
)

func runListen(ctx context.Context, o *options, args []string, s *stdio) int {
	cmd := s.cmd
	uri := args[0]
	if conduit.IsProxyListenURI(uri) {
		return runProxyListen(ctx, o, uri, s)
	}
	if o.given["allow"] || o.given["proxy-auth"] {
		return fail(s.log, cmd, usagef("--allow and --proxy-auth go with a proxy listener (socks5://… or connect://…)"))
	}
	modes := 0
	for _, on := range []bool{o.echo, o.discard, o.exec != ""} {
		if on {
			modes++
		}
	}
	if modes > 1 {
		return fail(s.log, cmd, usagef("--echo, --discard and --exec exclude each other"))
	}
	c, ka, err := o.build(uri)
	if err != nil {
		return fail(s.log, cmd, err)
	}
	defer o.close()
	ln, err := o.listen(ctx, c, uri, ka, o.maxConns)
	if err != nil {
		return fail(s.log, cmd, err)
	}
	s.log.printf("listening on %s\n", ln.URI())
	sv := &server{o: o, s: s, stdinTTY: isTerminal(s.in), outMu: new(sync.Mutex)}
	if o.keepOpen || o.echo || o.discard {
		sv.concurrent = true
		h := conduit.HandlerFunc(func(hctx context.Context, f conduit.Flow) { sv.serve(hctx, f) })
		if err := conduit.ServeListener(ctx, ln, h, o.grace); err != nil && ctx.Err() == nil {
			return fail(s.log, cmd, err)
		}
		return 0
	}
	// One connection, then exit (ncat's default).
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	f, err := ln.AcceptFlow()
	stop()
	ln.Close()
	if err != nil {
		if ctx.Err() != nil {
			return 0 // stopped before a client came
		}
		return fail(s.log, cmd, err)
	}
	hctx, cancel := graceContext(ctx, o.grace)
	defer cancel()
	defer f.Close()
	if !sv.serve(hctx, f) {
		return 1
	}
	return 0
}

// graceContext is ctx, except that a cancellation of ctx reaches it grace
// later. Its Err is nil before that.
func graceContext(ctx context.Context, grace time.Duration) (context.Context, context.CancelFunc) {
	gctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	stop := context.AfterFunc(ctx, func() {
		t := time.AfterFunc(grace, cancel)
		context.AfterFunc(gctx, func() { t.Stop() })
	})
	return gctx, func() { stop(); cancel() }
}

// server serves the connections of listen.
type server struct {
	o          *options
	s          *stdio
	concurrent bool
	stdinTTY   bool
	stdinTaken atomic.Bool
	outMu      *sync.Mutex // whole lines of concurrent connections
}

// serve handles one connection and logs its end. ctx ends when the
// listener shuts down (the flow itself is closed at the end of the grace
// period). It reports whether the connection ended cleanly.
func (sv *server) serve(ctx context.Context, f conduit.Flow) bool {
	o, log := sv.o, sv.s.log
	remote := f.RemoteAddr().String()
	log.printf("accepted %s\n", remote)
	if o.verbose > 0 {
		logTLS(ctx, log, f, remote)
	}
	// The flow is closed by the server at the end of the grace period,
	// not at once when the shutdown begins.
	t := &transfer{f: f}
	run := context.WithoutCancel(ctx)
	var res result
	var execErr error
	switch {
	case o.echo:
		t.out = flowWriter{f}
		res = t.run(run)
		if res.clean() {
			res.sendErr = f.CloseWrite()
		}
		t.sent.n.Store(t.received.n.Load())
	case o.discard:
		t.out = io.Discard
		res = t.run(run)
	case o.exec != "":
		e, err := startExec(run, o.exec, log)
		if err != nil {
			log.printf("closed %s: cut by an error: %v\n", remote, err)
			return false
		}
		res, execErr = transferExec(run, t, e)
	default:
		var lw *lineWriter
		if sv.concurrent {
			lw = &lineWriter{mu: sv.outMu, w: sv.s.out}
			t.out = lw
		} else {
			t.out = sv.s.out
		}
		switch {
		case sv.stdinTTY:
			// Nothing to send: the connection ends when the peer closes.
		case sv.stdinTaken.CompareAndSwap(false, true):
			t.in = sv.s.in
		default:
			t.in = strings.NewReader("") // standard input went to the first client
		}
		res = t.run(run)
		if lw != nil {
			if err := lw.Flush(); err != nil && res.recvErr == nil {
				res.recvErr = err
			}
		}
	}
	counts := fmt.Sprintf("%d bytes received, %d sent", t.received.n.Load(), t.sent.n.Load())
	status := ""
	if execErr != nil {
		status = "; " + execErr.Error()
	} else if o.exec != "" {
		status = fmt.Sprintf("; exec %q: exit status 0", o.exec)
	}
	if res.clean() {
		log.printf("closed %s: ended cleanly, %s%s\n", remote, counts, status)
		return execErr == nil
	}
	log.printf("closed %s: %s after %s: %s%s\n", remote, howCut(ctx, res, o), counts, res.cause(), status)
	return false
}

// howCut says who or what cut a connection short.
func howCut(ctx context.Context, res result, o *options) string {
	err := res.err()
	switch {
	case ctx.Err() != nil:
		return fmt.Sprintf("cut by shutdown at the end of the %v grace period", o.grace)
	case isIdle(err, o.idle):
		return fmt.Sprintf("cut after %v idle (--idle-timeout)", o.idle)
	case byPeer(err):
		return "cut by the peer"
	}
	return "cut by an error"
}

// byPeer reports whether err is the peer's doing: a reset, an end
// without close_notify, a peer that died.
func byPeer(err error) bool {
	// A reset of any transport (vchan's peer closing or dying too), a
	// stream cut short (tlsflow.ErrTruncated is an io.ErrUnexpectedEOF)
	// or the peer's TLS alert.
	return endpoint.HasCause(err, endpoint.ErrReset) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, tlsflow.ErrPeerAlert)
}

// logTLS handshakes a TLS flow and logs its state (-v).
func logTLS(ctx context.Context, log *logWriter, f conduit.Flow, remote string) {
	var inner any = f
	for {
		u, ok := inner.(interface{ Unwrap() conduit.Flow })
		if !ok {
			break
		}
		inner = u.Unwrap()
	}
	tc, ok := inner.(interface {
		Handshake(context.Context) error
		ConnectionState() tls.ConnectionState
	})
	if !ok {
		return
	}
	if err := tc.Handshake(ctx); err != nil {
		log.printf("%s: %s\n", remote, plain(err))
		return
	}
	log.printf("%s: tls %s\n", remote, tlsState(tc.ConnectionState()))
}

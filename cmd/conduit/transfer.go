package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync/atomic"
	"time"

	"github.com/conduit-go/conduit/conduit"
)

// transfer is one connection's copy both ways: in to the flow (then a
// half-close), the flow to out. Its result says how it ended.
type transfer struct {
	f    conduit.Flow
	in   io.Reader // nil: nothing to send, and no half-close
	out  io.Writer
	idle time.Duration // 0: no idle timeout
	// outDone, if set, is called when the flow's read side has ended
	// (an --exec command's standard input is closed then).
	outDone func()

	sent, received counter
	act            *activity
	sendFailed     atomic.Bool // send closed the flow on an error
}

// result is how a transfer ended. It is clean when both errors are nil.
type result struct {
	sendErr, recvErr error
	interrupted      bool // by a signal (the context)
}

func (r result) clean() bool { return r.sendErr == nil && r.recvErr == nil && !r.interrupted }

// cause is the reason of an unclean end, in one line.
func (r result) cause() string {
	switch {
	case r.interrupted:
		return "interrupted"
	case r.sendErr != nil && r.recvErr != nil && r.sendErr.Error() != r.recvErr.Error():
		return "receiving: " + plain(r.recvErr) + "; sending: " + plain(r.sendErr)
	case r.recvErr != nil:
		return plain(r.recvErr)
	case r.sendErr != nil:
		return plain(r.sendErr)
	}
	return ""
}

// err is the first error of the result.
func (r result) err() error {
	if r.recvErr != nil {
		return r.recvErr
	}
	return r.sendErr
}

// run copies until both directions have ended, the connection fails, it
// is idle for t.idle, or ctx ends. When the peer half-closes first, what
// is left of the input is still sent (a half-closed peer can still read)
// and the transfer waits for its end. A failed receive side ends it at
// once: the connection is broken and the input (a terminal, a pipe) may
// never end.
func (t *transfer) run(ctx context.Context) result {
	t.act = newActivity()
	t.sent.last, t.received.last = t.act, t.act
	stop := context.AfterFunc(ctx, func() { t.f.Close() })
	defer stop()

	sendc := make(chan error, 1)
	if t.in != nil {
		go func() { sendc <- t.send() }()
	}
	recvErr := t.receive()
	if t.outDone != nil {
		t.outDone()
	}
	var res result
	res.recvErr = recvErr
	if t.sendFailed.Load() {
		// The send side failed and closed the flow to end this side: its
		// error is the cause.
		res.sendErr = <-sendc
		if errors.Is(recvErr, net.ErrClosed) {
			res.recvErr = nil
		}
		return t.finish(ctx, res)
	}
	if t.in == nil {
		return t.finish(ctx, res)
	}
	if recvErr != nil {
		// Broken: stop the sender if it is writing; do not wait for an
		// input that may never end.
		t.f.Close()
		select {
		case res.sendErr = <-sendc:
		default:
		}
		return t.finish(ctx, res)
	}
	var tick <-chan time.Time
	if t.idle > 0 {
		tk := time.NewTicker(max(t.idle/4, 10*time.Millisecond))
		defer tk.Stop()
		tick = tk.C
	}
	for {
		select {
		case res.sendErr = <-sendc:
			return t.finish(ctx, res)
		case <-ctx.Done():
			res.interrupted = true
			return res
		case <-tick:
			if t.act.idleFor(t.idle) {
				t.f.Close()
				res.sendErr = errIdle{t.idle}
				return res
			}
		}
	}
}

func (t *transfer) finish(ctx context.Context, res result) result {
	if !res.clean() && ctx.Err() != nil {
		res.interrupted = true
	}
	return res
}

// send copies the input to the flow and half-closes it.
func (t *transfer) send() error {
	var w io.Writer = t.f
	if t.idle > 0 {
		w = &idleWriter{t: t}
	}
	_, err := io.Copy(countingWriter{w, &t.sent}, onlyReader{t.in})
	if err == nil {
		err = t.f.CloseWrite()
	}
	if err != nil {
		// What the peer sends can no longer be answered: end the receive
		// side too.
		t.sendFailed.Store(true)
		t.f.Close()
	}
	return err
}

// receive copies the flow to the output until the peer's clean end.
func (t *transfer) receive() error {
	var r io.Reader = t.f
	if t.idle > 0 {
		r = &idleReader{t: t}
	}
	_, err := io.Copy(t.out, countingReader{r, &t.received})
	return err
}

// onlyReader hides the WriterTo of a reader, so io.Copy reads in its own
// buffers through the counting writer.
type onlyReader struct{ r io.Reader }

func (o onlyReader) Read(p []byte) (int, error) { return o.r.Read(p) }

// idleReader reads the flow with a read deadline of the idle timeout
// after the last byte moved either way.
type idleReader struct{ t *transfer }

func (r *idleReader) Read(p []byte) (int, error) {
	t := r.t
	for {
		t.f.SetReadDeadline(time.Now().Add(t.idle - t.act.since()))
		n, err := t.f.Read(p)
		if n > 0 || err == nil || !isTimeout(err) {
			return n, err
		}
		if t.act.idleFor(t.idle) {
			return 0, errIdle{t.idle}
		}
		// Bytes moved the other way meanwhile: wait on.
	}
}

// idleWriter writes the flow with a write deadline of the idle timeout.
type idleWriter struct{ t *transfer }

func (w *idleWriter) Write(p []byte) (int, error) {
	w.t.f.SetWriteDeadline(time.Now().Add(w.t.idle))
	n, err := w.t.f.Write(p)
	if err != nil && isTimeout(err) {
		return n, errIdle{w.t.idle}
	}
	return n, err
}

// cutShort is the line of a transfer that did not end cleanly.
func cutShort(what string, t *transfer, res result) string {
	return fmt.Sprintf("conduit: %s: transfer cut short after %d bytes sent and %d received: %s",
		what, t.sent.n.Load(), t.received.n.Load(), res.cause())
}

// isIdle reports whether err is an idle timeout's (ours, or the
// listener's WithIdleTimeout).
func isIdle(err error, idle time.Duration) bool {
	var ie errIdle
	return errors.As(err, &ie) || (idle > 0 && isTimeout(err))
}

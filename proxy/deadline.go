package proxy

import (
	"context"
	"errors"
	"net"
	"time"
)

// pastDeadline is a deadline in the past: setting it interrupts blocked
// reads and writes at once.
var pastDeadline = time.Unix(1, 0)

// bindContext makes ctx govern conn's I/O for a client handshake: ctx's
// deadline is set on conn, and ctx's end sets a past deadline that
// interrupts blocked reads and writes. release undoes it: it clears
// conn's deadline (after an interrupt that fired has set its past
// deadline, never before) and reports whether ctx interrupted.
func bindContext(ctx context.Context, conn net.Conn) (release func() (interrupted bool)) {
	if d, ok := ctx.Deadline(); ok {
		conn.SetDeadline(d)
	}
	if ctx.Done() == nil {
		return func() bool { conn.SetDeadline(time.Time{}); return false }
	}
	fired := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		conn.SetDeadline(pastDeadline)
		close(fired)
	})
	return func() bool {
		interrupted := !stop()
		if interrupted {
			<-fired
		}
		conn.SetDeadline(time.Time{})
		return interrupted
	}
}

// contextError returns ctx's error when ctx ended the operation that
// failed with err: ctx.Err(), or context.DeadlineExceeded for a timeout
// at ctx's deadline (which the connection's deadline, set to it, may
// report a moment before ctx's own timer fires).
func contextError(ctx context.Context, err error) error {
	if cerr := ctx.Err(); cerr != nil {
		return cerr
	}
	var te interface{ Timeout() bool }
	if d, ok := ctx.Deadline(); ok && !time.Now().Before(d) && errors.As(err, &te) && te.Timeout() {
		return context.DeadlineExceeded
	}
	return nil
}

package proxy

import (
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
)

// halfCloser is a connection that can end its write side alone
// (*net.TCPConn, conduit's flows, *tls.Conn).
type halfCloser interface{ CloseWrite() error }

// closeWrite ends c's write side, or all of c when it cannot half-close,
// setting fully first when it must close all of c.
func closeWrite(c net.Conn, fully *atomic.Bool) {
	if h, ok := c.(halfCloser); ok {
		if h.CloseWrite() == nil {
			return
		}
	}
	if fully != nil {
		fully.Store(true)
	}
	c.Close()
}

// relay copies client → dest and dest → client until both directions
// end, passing each side's half-close on to the other (as danted does),
// then closes both. up is the bytes client → dest, down dest → client;
// err is the first error of a copy that did not end at EOF. ctx ending
// closes both connections and ends the relay.
func relay(ctx context.Context, client, dest net.Conn) (up, down int64, err error) {
	stop := context.AfterFunc(ctx, func() {
		client.Close()
		dest.Close()
	})
	defer stop()
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
		// fullyClosed: a side that could not half-close was closed
		// at the end of its direction; the other direction's copy then
		// ends on the closed connection, which is no error.
		fullyClosed atomic.Bool
	)
	keep := func(e error) {
		if e == nil || errors.Is(e, io.EOF) {
			return
		}
		if fullyClosed.Load() && (errors.Is(e, net.ErrClosed) || errors.Is(e, io.ErrClosedPipe)) {
			return
		}
		mu.Lock()
		if firstErr == nil {
			firstErr = e
		}
		mu.Unlock()
	}
	wg.Add(1)
	go func() { // owned by relay: waited for below
		defer wg.Done()
		n, e := io.Copy(dest, client)
		up = n
		keep(e)
		if e != nil {
			dest.Close()
			client.Close()
			return
		}
		closeWrite(dest, &fullyClosed)
	}()
	n, e := io.Copy(client, dest)
	down = n
	keep(e)
	if e != nil {
		dest.Close()
		client.Close()
	} else {
		closeWrite(client, &fullyClosed)
	}
	wg.Wait()
	client.Close()
	dest.Close()
	if ctx.Err() != nil && firstErr != nil {
		return up, down, ctx.Err()
	}
	return up, down, firstErr
}

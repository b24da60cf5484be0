package main

import (
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"
)

// lockedWriter serialises writes of several goroutines to one writer.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func newLockedWriter(w io.Writer) *lockedWriter { return &lockedWriter{w: w} }

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func (l *lockedWriter) printf(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	fmt.Fprintf(l.w, format, args...)
}

// counter counts the bytes going through a reader or writer.
type counter struct{ n atomic.Int64 }

type countingWriter struct {
	w io.Writer
	c *counter
}

func (cw countingWriter) Write(p []byte) (int, error) {
	n, err := cw.w.Write(p)
	cw.c.n.Add(int64(n))
	return n, err
}

// progress prints a live byte count and rate on w until stop is called.
type progress struct {
	stopc chan struct{}
	done  chan struct{}
}

func startProgress(w io.Writer, sent, received *counter) *progress {
	p := &progress{stopc: make(chan struct{}), done: make(chan struct{})}
	start := time.Now()
	line := func() {
		el := time.Since(start).Seconds()
		s, r := sent.n.Load(), received.n.Load()
		fmt.Fprintf(w, "\rsent %s  received %s  %s/s   ", human(s), human(r), human(int64(float64(s+r)/max(el, 1e-3))))
	}
	go func() {
		defer close(p.done)
		t := time.NewTicker(500 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				line()
			case <-p.stopc:
				line()
				fmt.Fprintln(w)
				return
			}
		}
	}()
	return p
}

func (p *progress) stop() {
	if p == nil {
		return
	}
	close(p.stopc)
	<-p.done
}

// human formats a byte count.
func human(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.2f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.2f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

// halfCloser is what a flow offers to half-close.
type halfCloser interface{ CloseWrite() error }

// pipe copies src to dst and then half-closes dst, returning the bytes
// copied and the first error.
func pipe(dst io.Writer, src io.Reader, c *counter) error {
	_, err := io.Copy(countingWriter{dst, c}, src)
	if hc, ok := dst.(halfCloser); ok {
		if cerr := hc.CloseWrite(); err == nil {
			err = cerr
		}
	}
	return err
}

package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// logWriter is standard error shared by several goroutines: log lines
// and the progress line. A log line first erases the progress line, which
// the next tick draws again, so the two never mix. Safe for concurrent
// use.
type logWriter struct {
	mu       sync.Mutex
	w        io.Writer
	progress bool // a progress line is on the screen
}

func newLogWriter(w io.Writer) *logWriter { return &logWriter{w: w} }

func (l *logWriter) eraseLocked() {
	if l.progress {
		io.WriteString(l.w, "\r\033[K")
		l.progress = false
	}
}

func (l *logWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.eraseLocked()
	return l.w.Write(p)
}

func (l *logWriter) printf(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.eraseLocked()
	fmt.Fprintf(l.w, format, args...)
}

// drawProgress replaces the progress line with s.
func (l *logWriter) drawProgress(s string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	io.WriteString(l.w, "\r\033[K"+s)
	l.progress = true
}

// erase removes the progress line.
func (l *logWriter) erase() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.eraseLocked()
}

// counter counts the bytes going one way, and when the last moved.
type counter struct {
	n    atomic.Int64
	last *activity // may be nil
}

func (c *counter) add(n int) {
	if n > 0 {
		c.n.Add(int64(n))
		if c.last != nil {
			c.last.touch()
		}
	}
}

// activity is when bytes last moved either way (for --idle-timeout).
type activity struct{ t atomic.Int64 }

func newActivity() *activity { a := &activity{}; a.touch(); return a }

func (a *activity) touch()                       { a.t.Store(time.Now().UnixNano()) }
func (a *activity) since() time.Duration         { return time.Since(time.Unix(0, a.t.Load())) }
func (a *activity) idleFor(d time.Duration) bool { return d > 0 && a.since() >= d }

type countingWriter struct {
	w io.Writer
	c *counter
}

func (cw countingWriter) Write(p []byte) (int, error) {
	n, err := cw.w.Write(p)
	cw.c.add(n)
	return n, err
}

type countingReader struct {
	r io.Reader
	c *counter
}

func (cr countingReader) Read(p []byte) (int, error) {
	n, err := cr.r.Read(p)
	cr.c.add(n)
	return n, err
}

// progress draws a live line on standard error: the bytes and rate of
// each direction, twice a second, until stop, which erases it.
type progress struct {
	stopc chan struct{}
	done  chan struct{}
}

func startProgress(log *logWriter, sent, received *counter) *progress {
	p := &progress{stopc: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(p.done)
		const every = 500 * time.Millisecond
		t := time.NewTicker(every)
		defer t.Stop()
		prevS, prevR, prevT := int64(0), int64(0), time.Now()
		for {
			select {
			case now := <-t.C:
				s, r := sent.n.Load(), received.n.Load()
				el := max(now.Sub(prevT).Seconds(), 1e-3)
				log.drawProgress(fmt.Sprintf("sent %s (%s/s)  received %s (%s/s)",
					human(s), human(int64(float64(s-prevS)/el)), human(r), human(int64(float64(r-prevR)/el))))
				prevS, prevR, prevT = s, r, now
			case <-p.stopc:
				log.erase()
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

// isTerminal reports whether w is a terminal.
func isTerminal(w any) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

// sameFile reports whether a and b are open files on the same device
// node (the same terminal).
func sameFile(a, b any) bool {
	fa, ok1 := a.(*os.File)
	fb, ok2 := b.(*os.File)
	if !ok1 || !ok2 {
		return false
	}
	var sa, sb unix.Stat_t
	if unix.Fstat(int(fa.Fd()), &sa) != nil || unix.Fstat(int(fb.Fd()), &sb) != nil {
		return false
	}
	return sa.Dev == sb.Dev && sa.Ino == sb.Ino && sa.Rdev == sb.Rdev
}

// showProgress decides --progress: auto shows it when standard error is
// a terminal and standard output is not that same terminal (so what the
// peer sends is never mixed with it).
func showProgress(mode string, stdout, stderr any) bool {
	switch mode {
	case "on":
		return true
	case "off":
		return false
	}
	return isTerminal(stderr) && !(isTerminal(stdout) && sameFile(stdout, stderr))
}

// halfCloser is what a flow offers to half-close.
type halfCloser interface{ CloseWrite() error }

// pipe copies src to dst and then half-closes dst, returning the first
// error.
func pipe(dst io.Writer, src io.Reader, c *counter) error {
	_, err := io.Copy(countingWriter{dst, c}, src)
	if hc, ok := dst.(halfCloser); ok {
		if cerr := hc.CloseWrite(); err == nil {
			err = cerr
		}
	}
	return err
}

// lineWriter writes what one connection sends to a writer shared with
// other connections, whole lines at a time, so that lines of concurrent
// connections never interleave mid-line. A line longer than maxLine goes
// out in pieces. Flush writes what is left at the end.
type lineWriter struct {
	mu  *sync.Mutex // shared by the connections
	w   io.Writer
	buf []byte
}

const maxLine = 64 << 10

func (lw *lineWriter) Write(p []byte) (int, error) {
	lw.buf = append(lw.buf, p...)
	end := bytes.LastIndexByte(lw.buf, '\n') + 1
	if end == 0 && len(lw.buf) >= maxLine {
		end = len(lw.buf)
	}
	if end > 0 {
		if err := lw.out(lw.buf[:end]); err != nil {
			return 0, err
		}
		lw.buf = append(lw.buf[:0], lw.buf[end:]...)
	}
	return len(p), nil
}

func (lw *lineWriter) out(b []byte) error {
	lw.mu.Lock()
	defer lw.mu.Unlock()
	_, err := lw.w.Write(b)
	return err
}

// Flush writes a last partial line.
func (lw *lineWriter) Flush() error {
	if len(lw.buf) == 0 {
		return nil
	}
	err := lw.out(lw.buf)
	lw.buf = lw.buf[:0]
	return err
}

// errIdle is the error of a connection closed by --idle-timeout.
type errIdle struct{ d time.Duration }

func (e errIdle) Error() string { return fmt.Sprintf("idle for %v (--idle-timeout)", e.d) }

// isTimeout reports whether err is a deadline's.
func isTimeout(err error) bool {
	var te interface{ Timeout() bool }
	return errors.Is(err, os.ErrDeadlineExceeded) || (errors.As(err, &te) && te.Timeout())
}

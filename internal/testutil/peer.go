package testutil

import (
	"bufio"
	"io"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// Process is a peer program started by a test.
type Process struct {
	cmd    *exec.Cmd
	exited chan struct{}

	mu     sync.Mutex
	stderr strings.Builder
	lines  chan string
}

// Stderr returns what the process has written to standard error so far.
func (p *Process) Stderr() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stderr.String()
}

// Signal sends sig to the process.
func (p *Process) Signal(sig os.Signal) error { return p.cmd.Process.Signal(sig) }

// ExitCode is the exit status once Exited is closed (-1 if killed by a
// signal).
func (p *Process) ExitCode() int {
	<-p.exited
	return p.cmd.ProcessState.ExitCode()
}

// Exited is closed when the process has exited.
func (p *Process) Exited() <-chan struct{} { return p.exited }

// StartProcess starts a program and registers a cleanup that kills it and
// waits for it. Its standard error is collected and offered line by line
// to WaitLine.
func StartProcess(t testing.TB, path string, args ...string) *Process {
	t.Helper()
	p := &Process{cmd: exec.Command(path, args...), exited: make(chan struct{}), lines: make(chan string, 64)}
	stderr, err := p.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", path, err)
	}
	drained := make(chan struct{})
	go func() {
		defer close(drained)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			line := sc.Text()
			p.mu.Lock()
			p.stderr.WriteString(line + "\n")
			p.mu.Unlock()
			select {
			case p.lines <- line:
			default: // nobody is waiting for lines any more
			}
		}
		io.Copy(io.Discard, stderr)
	}()
	go func() {
		<-drained
		p.cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		p.cmd.Process.Kill()
		<-p.exited
	})
	return p
}

// WaitLine waits up to timeout for a line of standard error matching re
// and returns its submatches.
func (p *Process) WaitLine(t testing.TB, re *regexp.Regexp, timeout time.Duration) []string {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		select {
		case line := <-p.lines:
			if m := re.FindStringSubmatch(line); m != nil {
				return m
			}
		case <-p.exited:
			// Lines printed just before exiting may still be queued.
			for {
				select {
				case line := <-p.lines:
					if m := re.FindStringSubmatch(line); m != nil {
						return m
					}
					continue
				default:
				}
				break
			}
			t.Fatalf("%s exited before printing a line matching %q: %s", p.cmd.Path, re, p.Stderr())
		case <-deadline.C:
			t.Fatalf("%s printed no line matching %q within %v: %s", p.cmd.Path, re, timeout, p.Stderr())
		}
	}
}

var socatListening = regexp.MustCompile(`listening on AF=\d+ (\S+)`)

// Socat starts socat listening on listen (an address with port 0, such as
// "TCP4-LISTEN:0,bind=127.0.0.1,fork") and connecting each client to
// target (such as "EXEC:cat" for an echo server; not "PIPE", with which
// socat can deadlock on itself under bulk transfers). It returns the address
// socat bound, read from its log, so no port is ever guessed.
// It skips (or fails in CI) when socat is not installed.
func Socat(t testing.TB, listen, target string) string {
	t.Helper()
	path := RequirePeer(t, "socat", "socat")
	p := StartProcess(t, path, "-d", "-d", "-T", "60", listen, target)
	m := p.WaitLine(t, socatListening, 30*time.Second)
	return m[1]
}

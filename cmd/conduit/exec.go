package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"syscall"
	"time"
)

// execCmd is the command of --exec: /bin/sh -c CMD with its standard
// input fed from the flow and its standard output sent to it (ncat's
// --sh-exec, socat's SYSTEM:). Its standard error is ours.
type execCmd struct {
	line   string
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	stdout io.ReadCloser
}

// startExec starts line. A signal (ctx) sends it SIGTERM, and SIGKILL
// five seconds later if it is still running.
func startExec(ctx context.Context, line string, stderr io.Writer) (*execCmd, error) {
	cmd := exec.CommandContext(ctx, "/bin/sh", "-c", line)
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 5 * time.Second
	cmd.Stderr = stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		stdin.Close()
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("exec %q: %w", line, err)
	}
	return &execCmd{line: line, cmd: cmd, stdin: stdin, stdout: stdout}, nil
}

// wait waits for the command and describes how it ended: nil for exit
// status 0.
func (e *execCmd) wait() error {
	err := e.cmd.Wait()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return fmt.Errorf("exec %q: killed by signal %v", e.line, ws.Signal())
		}
		return fmt.Errorf("exec %q: exit status %d", e.line, ee.ExitCode())
	}
	if err != nil && !errors.Is(err, exec.ErrWaitDelay) {
		return fmt.Errorf("exec %q: %w", e.line, err)
	}
	return nil
}

// transferExec runs a transfer between f's flow and the command: the
// flow's data to its standard input (closed when the peer's stream
// ends), its standard output to the flow. It returns the transfer's
// result and how the command ended.
func transferExec(ctx context.Context, t *transfer, e *execCmd) (result, error) {
	t.in, t.out = e.stdout, &commandInput{w: e.stdin}
	t.outDone = func() { e.stdin.Close() }
	res := t.run(ctx)
	if !res.clean() {
		// The connection is gone: the command's input is closed; its
		// output has nowhere to go.
		e.stdout.Close()
	}
	return res, e.wait()
}

// commandInput is a command's standard input. A command may exit, or
// close its input, without reading all the peer sends (printf ok): what
// is left is dropped, as socat's EXEC: does, instead of failing the
// transfer. How the command ended is reported apart.
type commandInput struct {
	w      io.Writer
	closed bool
}

func (c *commandInput) Write(p []byte) (int, error) {
	if c.closed {
		return len(p), nil
	}
	n, err := c.w.Write(p)
	if errors.Is(err, syscall.EPIPE) || errors.Is(err, os.ErrClosed) {
		c.closed = true
		return len(p), nil
	}
	return n, err
}

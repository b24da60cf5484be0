package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"golang.org/x/sys/unix"
)

func runDial(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("dial", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var com common
	com.register(fs)
	fs.Usage = func() {
		fmt.Fprintln(stderr, `usage: conduit dial [flags] URI

Connects to URI, copies standard input to it and what it sends to standard
output. At the end of standard input the write side is half-closed and
the output keeps flowing until the peer closes; then the exit status is 0.

Examples:
  echo hello | conduit dial tcp://127.0.0.1:7000
  conduit dial --ca ca.pem tls://example.test:8443 < request
  conduit dial unix:///run/app.sock
  conduit dial --trace https://localhost:8443 < /dev/null

Flags:`)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return exitParse(err)
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return 2
	}
	uri := fs.Arg(0)
	c, _, err := com.build()
	if err != nil {
		return fail(stderr, err)
	}
	defer func() { c.Close(); com.close() }()

	dctx, cancel := context.WithTimeout(ctx, com.timeout)
	f, err := c.Dial(traceContext(dctx, com.trace, stderr), uri)
	cancel()
	if err != nil {
		return fail(stderr, err)
	}
	defer f.Close()

	var sent, received counter
	var prog *progress
	if showProgress(com.progress, stderr) {
		prog = startProgress(stderr, &sent, &received)
	}
	// Closing the flow when ctx ends (a signal) unblocks both copies.
	stopClose := context.AfterFunc(ctx, func() { f.Close() })
	defer stopClose()

	werr := make(chan error, 1)
	go func() { werr <- pipe(f, stdin, &sent) }()
	_, rerr := io.Copy(countingWriter{stdout, &received}, f)
	var err2 error
	select {
	case err2 = <-werr:
	default:
		// The peer closed first; what is left of standard input is not
		// sent. A terminal or pipe cannot be interrupted, so do not wait.
	}
	prog.stop()
	if err := errors.Join(rerr, err2); err != nil {
		if ctx.Err() != nil {
			err = ctx.Err()
		}
		fmt.Fprintf(stderr, "conduit: dial %s: transfer cut short after %d bytes sent and %d received: %v\n",
			uri, sent.n.Load(), received.n.Load(), plain(err))
		return 1
	}
	return 0
}

// showProgress decides --progress.
func showProgress(mode string, stderr io.Writer) bool {
	switch mode {
	case "on", "true", "1":
		return true
	case "off", "false", "0":
		return false
	}
	f, ok := stderr.(*os.File)
	if !ok {
		return false
	}
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

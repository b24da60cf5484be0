// Command conduit resolves, dials, listens on, relays and benchmarks any
// URI conduit understands, like a netcat that speaks every transport.
//
//	conduit demo                      # every transport on loopback, a table of what worked
//	conduit resolve https://example.com
//	conduit listen --echo tcp://127.0.0.1:7000
//	conduit dial tcp://127.0.0.1:7000 < file
//	conduit relay tcp://127.0.0.1:8080 unix:///run/app.sock
//
// See docs/cli.md.

package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/conduit-go/conduit/resolver"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

const usage = `usage: conduit COMMAND [flags] [URI...]

Commands:
  demo        listen on and dial every transport on loopback and print what worked
  resolve     print the endpoints a URI resolves to, in dial order
  dial        connect to a URI and copy standard input and output through it
  listen      accept connections on a URI (print, --echo or --discard)
  relay       forward every connection accepted on one URI to a dial of another
  bench       measure throughput and latency against a "listen --echo" peer
  completion  print a bash or zsh completion script

Run "conduit COMMAND --help" for the flags of a command.
`

// run is main without the process: tests call it directly.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "demo":
		return runDemo(ctx, rest, stdout, stderr)
	case "resolve":
		return runResolve(ctx, rest, stdout, stderr)
	case "dial":
		return runDial(ctx, rest, stdin, stdout, stderr)
	case "listen":
		return runListen(ctx, rest, stdout, stderr)
	case "relay":
		return runRelay(ctx, rest, stderr)
	case "bench":
		return runBench(ctx, rest, stdout, stderr)
	case "completion":
		return runCompletion(rest, stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	}
	fmt.Fprintf(stderr, "conduit: unknown command %q\n%s", cmd, usage)
	return 2
}

func haveIPv6Loopback() bool {
	l, err := net.Listen("tcp6", "[::1]:0")
	if err != nil {
		return false
	}
	l.Close()
	return true
}

// errorsIsUsage reports whether err is the user's mistake in writing a
// URI (exit status 2) rather than a failure to reach it (1).
func errorsIsUsage(err error) bool {
	return errors.Is(err, resolver.ErrMalformedURI) || errors.Is(err, resolver.ErrUnknownScheme)
}

// printError prints err as one line starting with "conduit:".
func printError(w io.Writer, err error) {
	msg := err.Error()
	if !strings.HasPrefix(msg, "conduit: ") {
		msg = "conduit: " + msg
	}
	fmt.Fprintln(w, msg)
}

// fail prints err and returns the exit status: 2 for a usage error (a
// bad flag value, a malformed URI), 1 otherwise.
func fail(w io.Writer, err error) int {
	printError(w, err)
	var ue *usageError
	if errors.As(err, &ue) || errorsIsUsage(err) {
		fmt.Fprintln(w, "conduit: run with --help for the usage")
		return 2
	}
	return 1
}

// exitParse is the exit status after a flag parsing error: --help is
// not an error.
func exitParse(err error) int {
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	return 2
}

// plain is err's message without the package prefix.
func plain(err error) string { return strings.TrimPrefix(err.Error(), "conduit: ") }

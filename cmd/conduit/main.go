// Command conduit resolves, dials, listens on, relays and benchmarks any
// URI conduit understands, like a netcat that speaks every transport.
//
//	conduit demo                      # every transport on loopback, a table of what worked
//	conduit resolve https://example.com

package main

import (
	"context"
	"errors"
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
  demo      listen on and dial every transport on loopback and print what worked
  resolve   print the endpoints a URI resolves to, in dial order

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

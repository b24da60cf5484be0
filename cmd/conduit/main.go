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
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"runtime/debug"
	"slices"
	"strings"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// stdio is a subcommand's standard input and output.
type stdio struct {
	in  io.Reader
	out io.Writer
	// err is standard error as given (for terminal checks); log writes
	// to it, erasing the progress line first.
	err any
	log *logWriter
	cmd *command   // the subcommand running
	all []*command // every subcommand (for completion)
}

// command is a subcommand: its help, its flags (the one table --help and
// the completion scripts are made from) and what it does.
type command struct {
	name     string
	args     string // positional arguments in the usage line
	minArgs  int
	maxArgs  int
	summary  string // one line, for conduit --help and completion
	about    string // paragraphs of --help
	examples []string
	flags    []*flagDef
	run      func(ctx context.Context, o *options, args []string, s *stdio) int
}

var commands = []*command{
	{name: "demo", args: "", summary: "listen on and dial every transport on loopback and print what worked",
		about: `Starts listeners on loopback for every transport conduit has, dials each by
URI, echoes a random payload through it and prints a table of what worked.
Everything runs inside this process and a temporary directory; nothing
leaves the machine.`,
		examples: []string{"conduit demo", "conduit demo --size 65536"},
		flags:    []*flagDef{&fDemoSize},
		run:      runDemo},
	{name: "resolve", args: "URI", minArgs: 1, maxArgs: 1, summary: "print the endpoints a URI resolves to, in dial order",
		about: `Prints the endpoints URI resolves to, in dial order, one per line.`,
		examples: []string{"conduit resolve tcp://localhost:8080", "conduit resolve https://example.com",
			"conduit resolve --json tls+unix:///run/app.sock?sni=app",
			"conduit resolve --nameserver 127.0.0.1:5353 https+srv://svc.test",
			"conduit resolve --proxy socks5h://127.0.0.1:1080 --proxy http://proxy.test:3128 tls://example.com:443"},
		flags: join(resolveFlags, proxyFlags, []*flagDef{&fTimeout, &fJSON, &fVerbose, &fTrace}),
		run:   runResolve},
	{name: "dial", args: "URI", minArgs: 1, maxArgs: 1, summary: "connect to a URI and copy standard input and output through it",
		about: `Connects to URI, copies standard input to it and what it sends to standard
output. Standard input is sent to its end even when the peer has already
half-closed (it can still read); then the write side is half-closed and
the output keeps flowing until the peer closes. The exit status is 0 only
when every byte of standard input was written and the peer's stream ended
cleanly (for TLS: with close_notify); otherwise the last line on standard
error says "transfer cut short after N bytes sent and M received" and the
exit status is 1.`,
		examples: []string{"echo hello | conduit dial tcp://127.0.0.1:7000",
			"conduit dial --ca ca.pem tls://example.test:8443 < request",
			"conduit dial unix:///run/app.sock",
			"conduit dial -v https://localhost:8443 < /dev/null",
			"conduit dial --exec 'cat > received' tcp://127.0.0.1:7000",
			"conduit dial --proxy socks5h://127.0.0.1:1080 tls://example.com:443",
			"conduit dial 'tls://example.com:443?proxy=socks5://10.0.0.1:1080&proxy=http://proxy.test:3128'"},
		flags: join(resolveFlags, proxyFlags, tlsClient, []*flagDef{&fKeepalive, &fTimeout, &fIdle, &fExec, &fProgress, &fVerbose, &fTrace, &fVchanDir}, stackGroup),
		run:   runDial},
	{name: "listen", args: "URI", minArgs: 1, maxArgs: 1, summary: "accept connections on a URI (print, --echo, --discard or --exec)",
		about: `Accepts connections on URI. By default it serves one connection and exits,
as ncat does: what the client sends is printed on standard output and,
unless standard input is a terminal, standard input is sent to it (the
"nc -l < file" idiom). --keep-open (-k) keeps accepting; later clients are
served concurrently, their output interleaved by whole lines, and get
nothing from standard input. --echo sends every byte back and --discard
drops it; these keep accepting. --exec runs a command for the connection
(for each, with -k).

The first line on standard error is "listening on URI" with the bound
address (port 0 replaced by the real port); then one line per accepted
connection and one when it ends, saying how it ended and the bytes each
way. SIGINT or SIGTERM stops it gracefully.

socks5://[USER:PASS@]HOST:PORT serves a SOCKS5 proxy and
connect://[USER:PASS@]HOST:PORT an HTTP CONNECT proxy (socks5+unix:///PATH
and the like over other transports). A proxy keeps accepting until it is
stopped, passes half-closes through and logs each connection with its
destination; destinations are dialed through conduit (its resolver, hosts
and rewrites). A proxy reachable from other machines needs
authentication or --allow, or it refuses to start.`,
		examples: []string{"conduit listen --echo tcp://127.0.0.1:7000",
			"conduit listen tcp://127.0.0.1:7000 < file",
			"conduit listen -k --discard --max-conns 100 tcp://[::1]:0",
			"conduit listen --cert srv.pem --key srv.key tls://127.0.0.1:8443",
			"conduit listen --exec 'tr a-z A-Z' unix:///tmp/upper.sock",
			"conduit listen socks5://user:secret@127.0.0.1:1080",
			"conduit listen --allow 10.0.0.0/8 connect://0.0.0.0:3128"},
		flags: join(resolveFlags, tlsServer, []*flagDef{&fHandshake, &fKeepalive, &fTimeout, &fIdleServer, &fEcho, &fDiscard, &fKeepOpen,
			&fExec, &fMaxConns, &fGrace, &fVerbose, &fVchanDir, &fAllow, &fProxyAuth}, stackGroup),
		run: runListen},
	{name: "relay", args: "LISTEN_URI DIAL_URI", minArgs: 2, maxArgs: 2, summary: "forward every connection accepted on one URI to a dial of another",
		about: `Accepts connections on LISTEN_URI and forwards each to a fresh dial of
DIAL_URI, both directions, passing half-closes through. One line is logged
when a connection is accepted and one when it ends, with the bytes each
way and how it ended.`,
		examples: []string{"conduit relay tcp://127.0.0.1:8080 unix:///run/app.sock",
			"conduit relay --cert srv.pem --key srv.key tls://0.0.0.0:443 tcp://127.0.0.1:8080"},
		flags: join(resolveFlags, proxyFlags, tlsServer, []*flagDef{&fInsecure, &fHandshake, &fKeepalive, &fTimeout, &fIdleServer, &fMaxConns, &fGrace,
			&fVerbose, &fTrace, &fVchanDir}, stackGroup),
		run: runRelay},
	{name: "bench", args: "URI", minArgs: 1, maxArgs: 1, summary: `measure throughput and latency against a "listen --echo" peer`,
		about: `Measures an echo peer ("conduit listen --echo URI"): throughput (one flow
writing --size chunks for --duration while reading the echo back) and
round-trip latency percentiles (--msg byte messages, one at a time).
Every phase has a deadline: --duration plus --timeout. A peer that sends
nothing back is reported as "peer does not echo" (exit 1). SIGINT or
SIGTERM ends the run and prints what was measured (exit 1).`,
		examples: []string{"conduit listen --echo tcp://127.0.0.1:7000 &", "conduit bench tcp://127.0.0.1:7000",
			"conduit bench --json --duration 1s unix:///tmp/echo.sock"},
		flags: join(resolveFlags, proxyFlags, tlsClient, []*flagDef{&fKeepalive, &fTimeout, &fDuration, &fBenchSize, &fMsg, &fJSON, &fVerbose, &fTrace, &fVchanDir}, stackGroup),
		run:   runBench},
	{name: "completion", args: "SHELL", minArgs: 1, maxArgs: 1, summary: "print a bash, zsh or fish completion script",
		about: `Prints a completion script for SHELL (bash, zsh or fish), made from the
same table of flags as --help.`,
		examples: []string{"source <(conduit completion bash)", "source <(conduit completion zsh)",
			"conduit completion fish > ~/.config/fish/completions/conduit.fish"},
		run: runCompletion},
	{name: "version", summary: "print the version of conduit",
		about: `Prints the module version and the revision it was built from.`,
		run: func(_ context.Context, _ *options, _ []string, s *stdio) int {
			fmt.Fprintln(s.out, version())
			return 0
		}},
}

func lookup(name string) *command {
	for _, c := range commands {
		if c.name == name {
			return c
		}
	}
	return nil
}

// usage is the help of the command itself.
func usage() string {
	var b strings.Builder
	b.WriteString("usage: conduit COMMAND [flags] [URI...]\n       conduit -l [flags] URI   (as conduit listen)\n\nCommands:\n")
	for _, c := range commands {
		fmt.Fprintf(&b, "  %-11s %s\n", c.name, c.summary)
	}
	b.WriteString("\nRun \"conduit COMMAND --help\" for the flags of a command; \"conduit --version\" for the version.\n")
	return b.String()
}

// version is the module version from the build information.
func version() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "conduit (no build information)"
	}
	s := "conduit " + bi.Main.Version
	var rev, modified string
	for _, kv := range bi.Settings {
		switch kv.Key {
		case "vcs.revision":
			rev = kv.Value
		case "vcs.modified":
			if kv.Value == "true" {
				modified = "+modified"
			}
		}
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	if rev != "" {
		s += " rev " + rev + modified
	}
	return s + " " + bi.GoVersion
}

// run is main without the process: tests call it directly.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage())
		return 2
	}
	name, rest := args[0], args[1:]
	switch name {
	case "help", "-h", "--help":
		if len(rest) == 1 && lookup(rest[0]) != nil {
			fmt.Fprint(stdout, help(lookup(rest[0])))
			return 0
		}
		fmt.Fprint(stdout, usage())
		return 0
	case "--version", "-version":
		fmt.Fprintln(stdout, version())
		return 0
	case "-l", "--listen":
		name = "listen"
	}
	cmd := lookup(name)
	if cmd == nil {
		if strings.HasPrefix(name, "-") {
			fmt.Fprintf(stderr, "conduit: unknown flag %s before the command (see conduit --help)\n", name)
		} else {
			fmt.Fprintf(stderr, "conduit: unknown command %q (see conduit --help)\n", name)
		}
		return 2
	}
	s := &stdio{in: stdin, out: stdout, err: stderr, log: newLogWriter(stderr), cmd: cmd, all: commands}
	o, pos, err := parse(cmd, rest)
	if err == errHelp {
		fmt.Fprint(stderr, help(cmd))
		return 0
	}
	if err == nil {
		switch {
		case len(pos) < cmd.minArgs:
			err = usagef("missing %s", strings.Fields(cmd.args)[len(pos)])
		case len(pos) > cmd.maxArgs:
			err = usagef("unexpected argument %q", pos[cmd.maxArgs])
		}
	}
	if err != nil {
		return fail(s.log, cmd, err)
	}
	o.dialsOut = slices.Contains(cmd.flags, &fProxy)
	return cmd.run(ctx, o, pos, s)
}

// help is a subcommand's --help, made from its table of flags.
func help(cmd *command) string {
	var b strings.Builder
	fmt.Fprintf(&b, "usage: conduit %s", cmd.name)
	if len(cmd.flags) > 0 {
		b.WriteString(" [flags]")
	}
	if cmd.args != "" {
		b.WriteString(" " + cmd.args)
	}
	b.WriteString("\n\n" + cmd.about + "\n")
	if len(cmd.examples) > 0 {
		b.WriteString("\nExamples:\n")
		for _, e := range cmd.examples {
			b.WriteString("  " + e + "\n")
		}
	}
	b.WriteString("\nFlags:\n")
	rows := make([][2]string, 0, len(cmd.flags)+1)
	width := 0
	for _, f := range append(cmd.flags, &helpFlag) {
		left := "    "
		if f.short != "" {
			left = "-" + f.short + ", "
		}
		left += "--" + f.name
		if f.arg != "" {
			left += " " + f.arg
		}
		right := f.help
		if f.def != "" && f.def != "0" {
			right += " (default " + f.def + ")"
		}
		if f.choices != nil {
			right += " [" + strings.Join(f.choices, "|") + "]"
		}
		rows = append(rows, [2]string{left, right})
		width = max(width, len(left))
	}
	for _, r := range rows {
		fmt.Fprintf(&b, "  %-*s  %s\n", width, r[0], r[1])
	}
	b.WriteString("\nFlags may come before or after the URI; -- ends them.\n")
	return b.String()
}

// fail prints err as one line and returns the exit status: 2, with a
// hint to the subcommand's --help, for a usage error (a bad flag or
// value, a malformed URI, an unknown scheme), 1 otherwise.
func fail(log *logWriter, cmd *command, err error) int {
	msg := err.Error()
	if ue, ok := err.(*usageError); ok {
		msg = cmd.name + ": " + ue.msg
	}
	msg = "conduit: " + strings.TrimPrefix(strings.ReplaceAll(msg, "\n", "; "), "conduit: ")
	if errorsIsUsage(err) {
		log.printf("%s (see conduit %s --help)\n", msg, cmd.name)
		return 2
	}
	log.printf("%s\n", msg)
	return 1
}

func haveIPv6Loopback() bool {
	l, err := net.Listen("tcp6", "[::1]:0")
	if err != nil {
		return false
	}
	l.Close()
	return true
}

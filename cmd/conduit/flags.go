package main

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// The flags of every subcommand are rows of one table (flagDef values,
// listed per subcommand in commands). The parser, --help and the shell
// completion scripts are all made from it, so they cannot drift.

// usageError is a mistake in the command line: exit status 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return &usageError{fmt.Sprintf(format, args...)} }

// flagDef is one flag.
type flagDef struct {
	name  string // long name, without "--"
	short string // one letter, or ""
	arg   string // the value's placeholder in --help; "" for a flag without value
	def   string // default, set before parsing and shown in --help ("" shows none)
	help  string
	// choices are the values the flag accepts (and completion offers).
	choices []string
	// file: completion offers file names.
	file bool
	// count: a flag without value that adds one each time (-v, -vv).
	count bool
	set   func(o *options, v string) error
}

// takesValue reports whether the flag is followed by a value.
func (d *flagDef) takesValue() bool { return d.arg != "" }

// withDefault returns a copy of d with the default def.
func (d flagDef) withDefault(def string) flagDef { d.def = def; return d }

// options holds every flag's value; each subcommand reads the fields of
// the flags it lists.
type options struct {
	nameservers nameservers
	hosts       string
	ca          string
	cert        string
	key         string
	clientAuth  string
	insecure    bool
	keepalive   string
	timeout     time.Duration
	idle        time.Duration
	handshake   time.Duration
	trace       bool
	verbose     int
	stack       string
	tun         string
	addr        string
	vchanDir    string
	progress    string

	echo     bool
	discard  bool
	keepOpen bool
	exec     string
	maxConns int
	grace    time.Duration

	json     bool
	duration time.Duration
	size     int
	msg      int

	proxies   []string // --proxy, the chain nearest first
	noproxy   string
	allow     []string
	proxyAuth string
	// dialsOut: the command dials destinations, so --proxy and the
	// environment's proxies apply (dial, relay, bench, resolve).
	dialsOut bool

	given map[string]bool // the flags on the command line

	closeConduit  func() error // of the Conduit build made
	closeResolver func() error // of the resolver build made, if any
	closeStack    func()       // of the userspace stack and its device
}

// traceOn reports whether the dial phases are printed: --trace or -vv.
func (o *options) traceOn() bool { return o.trace || o.verbose >= 2 }

// nameservers is the repeatable --nameserver flag.
type nameservers []netip.AddrPort

func (n *nameservers) add(v string) error {
	ap, err := netip.ParseAddrPort(v)
	if err != nil {
		a, err2 := netip.ParseAddr(v)
		if err2 != nil {
			return errors.New("want an IP address and port such as 127.0.0.1:53 or [::1]:5353")
		}
		ap = netip.AddrPortFrom(a, 53)
	}
	*n = append(*n, ap)
	return nil
}

// Value parsers.

func boolFlag(p func(*options) *bool) func(*options, string) error {
	return func(o *options, v string) error {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return errors.New("want true or false")
		}
		*p(o) = b
		return nil
	}
}

func stringFlag(p func(*options) *string) func(*options, string) error {
	return func(o *options, v string) error { *p(o) = v; return nil }
}

// durationFlag accepts a duration of zero or more ("0" alone too).
func durationFlag(p func(*options) *time.Duration) func(*options, string) error {
	return func(o *options, v string) error {
		d, err := time.ParseDuration(v)
		if v == "0" {
			d, err = 0, nil
		}
		if err != nil {
			return errors.New("want a duration such as 500ms, 10s or 2m")
		}
		if d < 0 {
			return errors.New("must not be negative (0 means none)")
		}
		*p(o) = d
		return nil
	}
}

func intFlag(p func(*options) *int, min int) func(*options, string) error {
	return func(o *options, v string) error {
		n, err := strconv.Atoi(v)
		if err != nil {
			return errors.New("want a whole number")
		}
		if n < min {
			return fmt.Errorf("must be at least %d", min)
		}
		*p(o) = n
		return nil
	}
}

// choice completes d with a setter that accepts only d.choices.
func choice(d flagDef, p func(*options) *string) flagDef {
	d.set = func(o *options, v string) error {
		if !contains(d.choices, v) {
			return errors.New("want " + strings.Join(d.choices, ", "))
		}
		*p(o) = v
		return nil
	}
	return d
}

// The flags. Subcommands pick from these in commands (main.go).
var (
	fNameserver = flagDef{name: "nameserver", arg: "HOST:PORT", help: "ask this DNS server instead of resolv.conf's (repeatable)",
		set: func(o *options, v string) error { return o.nameservers.add(v) }}
	fHosts = flagDef{name: "hosts", arg: "FILE", file: true, help: "a hosts file consulted before /etc/hosts",
		set: stringFlag(func(o *options) *string { return &o.hosts })}
	fCA = flagDef{name: "ca", arg: "FILE", file: true, help: "trust only the CA certificates of this PEM file (TLS); a listener requires client certificates signed by them (see --client-auth)",
		set: stringFlag(func(o *options) *string { return &o.ca })}
	fCert = flagDef{name: "cert", arg: "FILE", file: true, help: "certificate chain PEM file: the server's, or the client's for mTLS (TLS URIs only)",
		set: stringFlag(func(o *options) *string { return &o.cert })}
	fKey = flagDef{name: "key", arg: "FILE", file: true, help: "private key PEM file of --cert",
		set: stringFlag(func(o *options) *string { return &o.key })}
	fClientAuth = choice(flagDef{name: "client-auth", arg: "MODE", choices: []string{"require", "optional"},
		help: "with --ca on a TLS listener: require a client certificate signed by --ca (the default), or verify one only if given"},
		func(o *options) *string { return &o.clientAuth })
	fInsecure = flagDef{name: "insecure-skip-verify", help: "DANGEROUS: accept any server certificate",
		set: boolFlag(func(o *options) *bool { return &o.insecure })}
	fKeepalive = flagDef{name: "keepalive", arg: "AFTER,INTERVAL,PROBES", help: "TCP keepalive, for example 30s,10s,5",
		set: stringFlag(func(o *options) *string { return &o.keepalive })}
	fTimeout = flagDef{name: "timeout", arg: "DURATION", def: "10s", help: "give up resolving, connecting and handshaking after this long (0: never)",
		set: durationFlag(func(o *options) *time.Duration { return &o.timeout })}
	fTrace = flagDef{name: "trace", help: "print the dial phases with timings on standard error (as -vv)",
		set: boolFlag(func(o *options) *bool { return &o.trace })}
	fVerbose = flagDef{name: "verbose", short: "v", count: true, help: "more detail on standard error: endpoints, connections, TLS state; -vv adds the timed trace",
		set: func(o *options, _ string) error { o.verbose++; return nil }}
	fStack = choice(flagDef{name: "stack", arg: "STACK", def: "kernel", choices: []string{"kernel", "direct"},
		help: "TCP stack: kernel, or direct (the userspace stack on --tun)"},
		func(o *options) *string { return &o.stack })
	fTun = flagDef{name: "tun", arg: "NAME", help: "with --stack direct: the TUN device to attach to",
		set: stringFlag(func(o *options) *string { return &o.tun })}
	fAddr = flagDef{name: "addr", arg: "CIDR", help: "with --stack direct: our IPv4 address and subnet on the TUN device, such as 10.0.0.2/24",
		set: stringFlag(func(o *options) *string { return &o.addr })}
	fVchanDir = flagDef{name: "vchan-dir", arg: "DIR", file: true, help: "vchan rendezvous store (default $CONDUIT_VCHAN_DIR, else $XDG_RUNTIME_DIR/conduit-vchan)",
		set: stringFlag(func(o *options) *string { return &o.vchanDir })}
	fProgress = choice(flagDef{name: "progress", arg: "WHEN", def: "auto", choices: []string{"auto", "on", "off"},
		help: "a live byte count and rate each way on standard error; auto: when standard error is a terminal and standard output is not that terminal"},
		func(o *options) *string { return &o.progress })
	fIdle = flagDef{name: "idle-timeout", short: "w", arg: "DURATION",
		help: "close a connection when no byte has moved either way for this long (0: never)",
		set:  durationFlag(func(o *options) *time.Duration { return &o.idle })}
	// fIdleServer is --idle-timeout of listen and relay: a server keeps
	// no connection open forever by default.
	fIdleServer = fIdle.withDefault("5m")
	fHandshake  = flagDef{name: "handshake-timeout", arg: "DURATION", def: "10s",
		help: "close a client that has not finished the TLS handshake in this long (0: never)",
		set:  durationFlag(func(o *options) *time.Duration { return &o.handshake })}
	fExec = flagDef{name: "exec", arg: "CMD",
		help: "connect the flow to the standard input and output of CMD (run by /bin/sh -c) instead of ours; its exit status is reported",
		set:  stringFlag(func(o *options) *string { return &o.exec })}

	fEcho = flagDef{name: "echo", help: "send every byte back (keeps accepting)",
		set: boolFlag(func(o *options) *bool { return &o.echo })}
	fDiscard = flagDef{name: "discard", help: "drop what is received (keeps accepting)",
		set: boolFlag(func(o *options) *bool { return &o.discard })}
	fKeepOpen = flagDef{name: "keep-open", short: "k", help: "keep accepting connections after the first (default: serve one, then exit)",
		set: boolFlag(func(o *options) *bool { return &o.keepOpen })}
	fMaxConns = flagDef{name: "max-conns", arg: "N", def: "0", help: "serve at most N connections at once (0: no limit)",
		set: intFlag(func(o *options) *int { return &o.maxConns }, 0)}
	fGrace = flagDef{name: "grace", arg: "DURATION", def: "5s", help: "on SIGINT/SIGTERM, wait this long for open connections",
		set: durationFlag(func(o *options) *time.Duration { return &o.grace })}

	fJSON = flagDef{name: "json", help: "print the result as JSON",
		set: boolFlag(func(o *options) *bool { return &o.json })}
	fDuration = flagDef{name: "duration", arg: "DURATION", def: "3s", help: "how long each phase runs",
		set: func(o *options, v string) error {
			if err := durationFlag(func(o *options) *time.Duration { return &o.duration })(o, v); err != nil {
				return err
			}
			if o.duration == 0 {
				return errors.New("must be more than 0")
			}
			return nil
		}}
	fBenchSize = flagDef{name: "size", arg: "BYTES", def: "65536", help: "bytes per write in the throughput phase",
		set: intFlag(func(o *options) *int { return &o.size }, 1)}
	fMsg = flagDef{name: "msg", arg: "BYTES", def: "1", help: "bytes per message in the latency phase",
		set: intFlag(func(o *options) *int { return &o.msg }, 1)}
	fDemoSize = flagDef{name: "size", arg: "BYTES", def: "1048576", help: "bytes to echo through each transport",
		set: intFlag(func(o *options) *int { return &o.size }, 0)}
)

// helpFlag is accepted by every subcommand.
var helpFlag = flagDef{name: "help", short: "h", help: "print this help"}

// Flag groups.
var (
	resolveFlags = []*flagDef{&fNameserver, &fHosts}
	stackGroup   = []*flagDef{&fStack, &fTun, &fAddr}
	tlsClient    = []*flagDef{&fCA, &fCert, &fKey, &fInsecure}
	tlsServer    = []*flagDef{&fCA, &fCert, &fKey, &fClientAuth}
)

func join(groups ...[]*flagDef) []*flagDef {
	var all []*flagDef
	seen := map[string]bool{}
	for _, g := range groups {
		for _, f := range g {
			if !seen[f.name] {
				seen[f.name] = true
				all = append(all, f)
			}
		}
	}
	return all
}

// errHelp is returned by parse for -h and --help.
var errHelp = errors.New("help requested")

// parse parses args against the flags of cmd. Flags may come before,
// between or after the positional arguments; "--" ends the flags. Long
// flags are --name, --name=value or --name value (one dash works too);
// short ones are -k, -vv, -w 5s or -w5s.
func parse(cmd *command, args []string) (*options, []string, error) {
	o := &options{given: map[string]bool{}}
	for _, f := range cmd.flags {
		if f.def != "" {
			if err := f.set(o, f.def); err != nil {
				panic("conduit: default of --" + f.name + ": " + err.Error())
			}
		}
	}
	byName := map[string]*flagDef{"help": &helpFlag}
	byShort := map[string]*flagDef{"h": &helpFlag}
	for _, f := range cmd.flags {
		byName[f.name] = f
		if f.short != "" {
			byShort[f.short] = f
		}
	}
	apply := func(f *flagDef, shown, v string) error {
		if f == &helpFlag {
			return errHelp
		}
		o.given[f.name] = true
		if err := f.set(o, v); err != nil {
			return usagef("%s %q: %v", shown, v, err)
		}
		return nil
	}
	var pos []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			pos = append(pos, args[i+1:]...)
			break
		}
		if len(a) < 2 || a[0] != '-' {
			pos = append(pos, a)
			continue
		}
		name, value, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		f := byName[name]
		if f == nil && !strings.HasPrefix(a, "--") {
			// A cluster of short flags: -k, -vv, -kv, -w5s.
			if err := parseShort(a[1:], byShort, args, &i, apply); err != nil {
				return nil, nil, err
			}
			continue
		}
		if f == nil {
			return nil, nil, usagef("unknown flag --%s", name)
		}
		shown := "--" + f.name
		switch {
		case hasValue:
			if !f.takesValue() && f.count {
				return nil, nil, usagef("%s takes no value", shown)
			}
		case f.takesValue():
			if i+1 >= len(args) {
				return nil, nil, usagef("%s needs a value (%s)", shown, f.arg)
			}
			i++
			value = args[i]
		default:
			value = "true"
		}
		if err := apply(f, shown, value); err != nil {
			return nil, nil, err
		}
	}
	return o, pos, nil
}

// parseShort parses a cluster of short flags (the text after "-").
func parseShort(cluster string, byShort map[string]*flagDef, args []string, i *int, apply func(*flagDef, string, string) error) error {
	for j := 0; j < len(cluster); j++ {
		c := cluster[j : j+1]
		f := byShort[c]
		if f == nil {
			if j == 0 {
				return usagef("unknown flag -%s", cluster)
			}
			return usagef("unknown flag -%s in -%s", c, cluster)
		}
		shown := "-" + c
		if !f.takesValue() {
			if err := apply(f, shown, "true"); err != nil {
				return err
			}
			continue
		}
		value := strings.TrimPrefix(cluster[j+1:], "=")
		if value == "" {
			if *i+1 >= len(args) {
				return usagef("%s needs a value (%s)", shown, f.arg)
			}
			*i++
			value = args[*i]
		}
		return apply(f, shown, value)
	}
	return nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

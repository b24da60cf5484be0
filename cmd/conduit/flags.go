package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/conduit-go/conduit/conduit"
	"github.com/conduit-go/conduit/resolver"
	"github.com/conduit-go/conduit/resolver/dnsstub"
	"github.com/conduit-go/conduit/tcpflow"
	"github.com/conduit-go/conduit/tcpflow/link/tun"
	"github.com/conduit-go/conduit/tcpflow/stack"
	"github.com/conduit-go/conduit/tlsflow"
	"github.com/conduit-go/conduit/vchan"
)

// usageError is a mistake in the command line: exit status 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return &usageError{fmt.Sprintf(format, args...)} }

// common holds the flags every subcommand that dials or listens takes.
type common struct {
	nameservers nameservers
	hosts       string
	ca          string
	cert        string
	key         string
	insecure    bool
	keepalive   string
	timeout     time.Duration
	trace       bool
	stack       string
	progress    string
	vchanDir    string
	tun         string
	addr        string

	closeResolver func() error // of the resolver build made, if any
	closeStack    func()       // of the userspace stack and its device
}

// close releases what build made besides the Conduit.
func (c *common) close() {
	if c.closeResolver != nil {
		c.closeResolver()
	}
	if c.closeStack != nil {
		c.closeStack()
	}
}

// directStack attaches the userspace TCP/IPv4 stack to the TUN device of
// --tun with the address of --addr.
func (c *common) directStack() (tcpflow.Stack, error) {
	if c.tun == "" || c.addr == "" {
		return nil, usagef("--stack direct needs --tun NAME and --addr CIDR")
	}
	prefix, err := netip.ParsePrefix(c.addr)
	if err != nil || !prefix.Addr().Is4() {
		return nil, usagef("--addr %q: want an IPv4 address with its prefix length, such as 10.0.0.2/24", c.addr)
	}
	dev, err := tun.Open(c.tun, tun.Options{})
	if err != nil {
		return nil, fmt.Errorf("--tun %s: %w", c.tun, err)
	}
	st, err := stack.New(stack.Options{Addr: prefix, Link: dev})
	if err != nil {
		dev.Close()
		return nil, err
	}
	c.closeStack = func() { st.Close(); dev.Close() }
	return st, nil
}

// nameservers is the repeatable --nameserver flag.
type nameservers []netip.AddrPort

func (n *nameservers) String() string {
	s := make([]string, len(*n))
	for i, a := range *n {
		s[i] = a.String()
	}
	return strings.Join(s, ",")
}

func (n *nameservers) Set(v string) error {
	ap, err := netip.ParseAddrPort(v)
	if err != nil {
		a, err2 := netip.ParseAddr(v)
		if err2 != nil {
			return fmt.Errorf("want an IP address and port such as 127.0.0.1:53 or [::1]:5353")
		}
		ap = netip.AddrPortFrom(a, 53)
	}
	*n = append(*n, ap)
	return nil
}

func (c *common) register(fs *flag.FlagSet) {
	fs.Var(&c.nameservers, "nameserver", "ask this DNS server `HOST:PORT` instead of resolv.conf's (repeatable)")
	fs.StringVar(&c.hosts, "hosts", "", "a hosts `FILE` consulted before /etc/hosts")
	fs.StringVar(&c.ca, "ca", "", "trust only the CA certificates of this PEM `FILE` (TLS)")
	fs.StringVar(&c.cert, "cert", "", "certificate chain PEM `FILE`: the server's, or the client's for mTLS")
	fs.StringVar(&c.key, "key", "", "private key PEM `FILE` of --cert")
	fs.BoolVar(&c.insecure, "insecure-skip-verify", false, "DANGEROUS: accept any server certificate")
	fs.StringVar(&c.keepalive, "keepalive", "", "TCP keepalive `AFTER,INTERVAL,PROBES`, for example 30s,10s,5")
	fs.DurationVar(&c.timeout, "timeout", 10*time.Second, "give up resolving and connecting after this `DURATION`")
	fs.BoolVar(&c.trace, "trace", false, "print the dial phases with timings on standard error")
	fs.StringVar(&c.vchanDir, "vchan-dir", "", "vchan rendezvous store `DIR` (default $CONDUIT_VCHAN_DIR, else $XDG_RUNTIME_DIR/conduit-vchan)")
	fs.StringVar(&c.stack, "stack", "kernel", "TCP stack: kernel, or direct (the userspace stack on --tun)")
	fs.StringVar(&c.tun, "tun", "", "with --stack direct: the TUN device `NAME` to attach to")
	fs.StringVar(&c.addr, "addr", "", "with --stack direct: our own IPv4 address and subnet `CIDR` on the TUN device, such as 10.0.0.2/24")
	fs.StringVar(&c.progress, "progress", "auto", "show a live byte count on standard error: auto (when it is a terminal), on, off")
}

// parseKeepalive parses AFTER,INTERVAL,PROBES.
func parseKeepalive(s string) (*tcpflow.Keepalive, error) {
	if s == "" {
		return nil, nil
	}
	parts := strings.Split(s, ",")
	if len(parts) != 3 {
		return nil, usagef("--keepalive %q: want AFTER,INTERVAL,PROBES, for example 30s,10s,5", s)
	}
	after, err1 := time.ParseDuration(parts[0])
	interval, err2 := time.ParseDuration(parts[1])
	probes, err3 := strconv.Atoi(parts[2])
	if err := errors.Join(err1, err2, err3); err != nil {
		return nil, usagef("--keepalive %q: %v", s, err)
	}
	if after < time.Second || interval < time.Second || probes < 1 {
		return nil, usagef("--keepalive %q: AFTER and INTERVAL must be at least 1s and PROBES at least 1", s)
	}
	return &tcpflow.Keepalive{After: after, Interval: interval, Probes: probes}, nil
}

// build makes the Conduit the flags describe.
func (c *common) build() (_ *conduit.Conduit, _ *tcpflow.Keepalive, err error) {
	defer func() {
		if err != nil {
			c.close() // a stack or resolver made before the failure
		}
	}()
	ka, err := parseKeepalive(c.keepalive)
	if err != nil {
		return nil, nil, err
	}
	var tcpStack tcpflow.Stack
	switch c.stack {
	case "kernel":
		if c.tun != "" || c.addr != "" {
			return nil, nil, usagef("--tun and --addr go with --stack direct")
		}
	case "direct":
		if tcpStack, err = c.directStack(); err != nil {
			return nil, nil, err
		}
	default:
		return nil, nil, usagef("--stack %q: kernel or direct", c.stack)
	}
	if (c.cert == "") != (c.key == "") {
		return nil, nil, usagef("--cert and --key go together")
	}
	cfg := &conduit.Config{Keepalive: ka, Stack: tcpStack}
	if c.vchanDir != "" {
		cfg.Vchan = &vchan.Config{Dir: c.vchanDir}
	}
	client := &tlsflow.Config{InsecureSkipVerify: c.insecure}
	server := &tlsflow.Config{}
	if c.ca != "" {
		pool, err := tlsflow.NewCertPoolFromFile(c.ca)
		if err != nil {
			return nil, nil, fmt.Errorf("--ca: %w", err)
		}
		client.RootCAs = pool
		server.ClientCAs = pool
		server.ClientAuth = tls.VerifyClientCertIfGiven
	}
	if c.cert != "" {
		r, err := tlsflow.LoadKeyPair(c.cert, c.key)
		if err != nil {
			return nil, nil, fmt.Errorf("--cert/--key: %w", err)
		}
		server.GetCertificate = r.GetCertificate
		client.Certificates = []tls.Certificate{*r.Certificate()}
	}
	cfg.TLS = conduit.TLSConfig{Client: client, Server: server}
	if c.hosts != "" || len(c.nameservers) > 0 {
		rc := &resolver.Config{}
		if c.hosts != "" {
			if _, err := os.Stat(c.hosts); err != nil {
				return nil, nil, fmt.Errorf("--hosts: %w", err)
			}
			rc.HostsFile = c.hosts
		}
		if len(c.nameservers) > 0 {
			rc.DNS = &dnsstub.Config{Nameservers: c.nameservers, Timeout: min(c.timeout, 2*time.Second)}
		}
		res, err := resolver.New(rc)
		if err != nil {
			return nil, nil, err
		}
		cfg.Resolver = res
		c.closeResolver = res.Close
	}
	return conduit.New(cfg), ka, nil
}

// traceContext adds a Trace printing the dial phases to w when on.
func traceContext(ctx context.Context, on bool, w io.Writer) context.Context {
	if !on {
		return ctx
	}
	start := time.Now()
	since := func() string { return fmt.Sprintf("%8.3fms", float64(time.Since(start).Microseconds())/1000) }
	pr := newLockedWriter(w)
	return conduit.WithTrace(ctx, &conduit.Trace{
		ResolveStart: func(uri string) { pr.printf("%s resolve %s\n", since(), uri) },
		ResolveDone: func(uri string, eps []resolver.Endpoint, err error) {
			if err != nil {
				pr.printf("%s resolve failed: %v\n", since(), err)
				return
			}
			for _, ep := range eps {
				pr.printf("%s   -> %s\n", since(), ep)
			}
		},
		ConnectStart: func(ep resolver.Endpoint) { pr.printf("%s connect %s\n", since(), ep) },
		ConnectDone: func(ep resolver.Endpoint, err error) {
			if err != nil {
				pr.printf("%s connect %s failed: %v\n", since(), ep, err)
				return
			}
			pr.printf("%s connected %s\n", since(), ep)
		},
		TLSHandshakeStart: func(ep resolver.Endpoint) { pr.printf("%s tls handshake %s\n", since(), ep) },
		TLSHandshakeDone: func(ep resolver.Endpoint, st tls.ConnectionState, err error) {
			if err != nil {
				pr.printf("%s tls handshake failed: %v\n", since(), err)
				return
			}
			pr.printf("%s tls done: %s, %s, alpn %q\n", since(), tls.VersionName(st.Version), tls.CipherSuiteName(st.CipherSuite), st.NegotiatedProtocol)
		},
	})
}

// listen listens on uri with the listener options of listen and relay.
func (c *common) listen(ctx context.Context, cd *conduit.Conduit, uri string, ka *tcpflow.Keepalive, maxConns int, grace time.Duration) (*conduit.Listener, error) {
	opts := []conduit.ListenOption{conduit.WithMaxConns(maxConns), conduit.WithGracePeriod(grace)}
	if ka != nil {
		opts = append(opts, conduit.WithKeepalive(*ka))
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	return cd.Listen(ctx, uri, opts...)
}

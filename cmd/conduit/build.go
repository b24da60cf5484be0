package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/conduit-go/conduit/conduit"
	"github.com/conduit-go/conduit/endpoint"
	"github.com/conduit-go/conduit/resolver"
	"github.com/conduit-go/conduit/resolver/dnsstub"
	"github.com/conduit-go/conduit/tcpflow"
	"github.com/conduit-go/conduit/tcpflow/link/tun"
	"github.com/conduit-go/conduit/tcpflow/stack"
	"github.com/conduit-go/conduit/tlsflow"
	"github.com/conduit-go/conduit/vchan"
)

// close releases what build made: the Conduit, then its resolver and
// stack.
func (o *options) close() {
	if o.closeConduit != nil {
		o.closeConduit()
	}
	if o.closeResolver != nil {
		o.closeResolver()
	}
	if o.closeStack != nil {
		o.closeStack()
	}
}

// withTimeout bounds ctx by --timeout; 0 means no bound.
func (o *options) withTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	if o.timeout <= 0 {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, o.timeout)
}

// directStack attaches the userspace TCP/IPv4 stack to the TUN device of
// --tun with the address of --addr.
func (o *options) directStack() (tcpflow.Stack, error) {
	if o.tun == "" || o.addr == "" {
		return nil, usagef("--stack direct needs --tun NAME and --addr CIDR")
	}
	prefix, err := netip.ParsePrefix(o.addr)
	if err != nil || !prefix.Addr().Is4() {
		return nil, usagef("--addr %q: want an IPv4 address with its prefix length, such as 10.0.0.2/24", o.addr)
	}
	dev, err := tun.Open(o.tun, tun.Options{})
	if err != nil {
		return nil, fmt.Errorf("--tun %s: %w", o.tun, err)
	}
	st, err := stack.New(stack.Options{Addr: prefix, Link: dev})
	if err != nil {
		dev.Close()
		return nil, err
	}
	o.closeStack = func() { st.Close(); dev.Close() }
	return st, nil
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
	if err1 != nil || err2 != nil || err3 != nil {
		return nil, usagef("--keepalive %q: want AFTER,INTERVAL,PROBES, for example 30s,10s,5", s)
	}
	if after < time.Second || interval < time.Second || probes < 1 {
		return nil, usagef("--keepalive %q: AFTER and INTERVAL must be at least 1s and PROBES at least 1", s)
	}
	return &tcpflow.Keepalive{After: after, Interval: interval, Probes: probes}, nil
}

// tlsSchemes are the schemes whose flows are TLS; nonTLSSchemes those
// known not to be. Other schemes (services of a services file) are not
// checked.
var (
	tlsSchemes    = []string{"tls", "tls+unix", "tls+vchan", "https", "https+srv", "amqps", "imaps", "ircs", "ldaps", "mqtts", "pop3s", "smtps", "wss"}
	nonTLSSchemes = []string{"tcp", "unix", "vchan", "srv", "http", "ftp", "imap", "irc", "ldap", "mqtt", "pop3", "smtp", "ssh", "ws",
		"amqp", "mysql", "postgres", "postgresql", "redis"}
)

// schemeOf is the lower-case scheme of uri, or "".
func schemeOf(uri string) string {
	s, _, ok := strings.Cut(uri, "://")
	if !ok {
		return ""
	}
	return strings.ToLower(s)
}

// surelyPlain reports whether uri's scheme is known not to be TLS.
func surelyPlain(uri string) bool {
	scheme := schemeOf(uri)
	return contains(nonTLSSchemes, scheme) ||
		(strings.HasSuffix(scheme, "+srv") && contains(nonTLSSchemes, strings.TrimSuffix(scheme, "+srv")))
}

// checkTLSFlags refuses a TLS listener on listenURI (when not "") without
// a certificate, and TLS flags when every URI is surely not TLS.
func (o *options) checkTLSFlags(listenURI string, dialURIs ...string) error {
	if (o.cert == "") != (o.key == "") {
		return usagef("--cert and --key go together")
	}
	if listenURI != "" && contains(tlsSchemes, schemeOf(listenURI)) && o.cert == "" {
		return usagef("a TLS listener (%s://) needs a certificate: pass --cert FILE and --key FILE", schemeOf(listenURI))
	}
	uris := dialURIs
	if listenURI != "" {
		uris = append([]string{listenURI}, dialURIs...)
	}
	for _, u := range uris {
		if !surelyPlain(u) {
			return nil
		}
	}
	for _, f := range []string{"ca", "cert", "key", "client-auth", "handshake-timeout", "insecure-skip-verify"} {
		if o.given[f] {
			return usagef("--%s is for TLS URIs (tls://, tls+unix://, https://, …), not %s://", f, schemeOf(uris[0]))
		}
	}
	return nil
}

// build checks the flags against the URIs the subcommand listens on
// (listenURI, "" for none) and dials (checkTLSFlags), and makes the
// Conduit they describe and the keepalive of --keepalive (nil without
// it). close releases what it made.
func (o *options) build(listenURI string, dialURIs ...string) (_ *conduit.Conduit, _ *tcpflow.Keepalive, err error) {
	if err := o.checkTLSFlags(listenURI, dialURIs...); err != nil {
		return nil, nil, err
	}
	defer func() {
		if err != nil {
			o.close() // a stack or resolver made before the failure
		}
	}()
	ka, err := parseKeepalive(o.keepalive)
	if err != nil {
		return nil, nil, err
	}
	var tcpStack tcpflow.Stack
	switch o.stack {
	case "", "kernel":
		if o.tun != "" || o.addr != "" {
			return nil, nil, usagef("--tun and --addr go with --stack direct")
		}
	case "direct":
		if tcpStack, err = o.directStack(); err != nil {
			return nil, nil, err
		}
	}
	if o.clientAuth != "" && o.ca == "" {
		return nil, nil, usagef("--client-auth needs --ca FILE, the CA that signs the client certificates")
	}
	cfg := &conduit.Config{Keepalive: ka, Stack: tcpStack}
	if o.vchanDir != "" {
		cfg.Vchan = &vchan.Config{Dir: o.vchanDir}
	}
	client := &tlsflow.Config{InsecureSkipVerify: o.insecure}
	server := &tlsflow.Config{}
	if o.ca != "" {
		pool, err := tlsflow.NewCertPoolFromFile(o.ca)
		if err != nil {
			return nil, nil, fmt.Errorf("--ca: %w", err)
		}
		client.RootCAs = pool
		server.ClientCAs = pool
		server.ClientAuth = tls.RequireAndVerifyClientCert
		if o.clientAuth == "optional" {
			server.ClientAuth = tls.VerifyClientCertIfGiven
		}
	}
	if o.cert != "" {
		r, err := tlsflow.LoadKeyPair(o.cert, o.key)
		if err != nil {
			return nil, nil, fmt.Errorf("--cert/--key: %w", err)
		}
		// Both sides reload renewed files (checked at most once a second).
		server.GetCertificate = r.GetCertificate
		client.GetClientCertificate = r.GetClientCertificate
	}
	cfg.TLS = conduit.TLSConfig{Client: client, Server: server}
	if o.hosts != "" || len(o.nameservers) > 0 {
		rc := &resolver.Config{}
		if o.hosts != "" {
			if _, err := os.Stat(o.hosts); err != nil {
				return nil, nil, fmt.Errorf("--hosts: %w", err)
			}
			rc.HostsFile = o.hosts
		}
		if len(o.nameservers) > 0 {
			wait := 2 * time.Second
			if o.timeout > 0 {
				wait = min(o.timeout, wait)
			}
			rc.DNS = &dnsstub.Config{Nameservers: o.nameservers, Timeout: wait}
		}
		res, err := resolver.New(rc)
		if err != nil {
			return nil, nil, err
		}
		cfg.Resolver = res
		o.closeResolver = res.Close
	}
	if o.dialsOut {
		cfg.Proxy = o.proxyFunc()
	}
	c := conduit.New(cfg)
	o.closeConduit = c.Close
	return c, ka, nil
}

// traceContext adds a Trace printing the dial phases to w: with -v the
// endpoints, connections and TLS state; with -vv or --trace all of it
// with timings.
func (o *options) traceContext(ctx context.Context, w *logWriter) context.Context {
	if o.verbose == 0 && !o.trace {
		return ctx
	}
	timed := o.traceOn()
	start := time.Now()
	pr := func(format string, args ...any) {
		if timed {
			format = "%8.3fms " + format
			args = append([]any{float64(time.Since(start).Microseconds()) / 1000}, args...)
		}
		w.printf(format+"\n", args...)
	}
	return conduit.WithTrace(ctx, &conduit.Trace{
		ResolveStart: func(uri string) {
			if timed {
				pr("resolve %s", conduit.RedactURI(uri))
			}
		},
		ResolveDone: func(uri string, eps []endpoint.Endpoint, err error) {
			if err != nil {
				pr("resolve failed: %s", plain(err))
				return
			}
			if !timed {
				pr("%s resolves to %d endpoint(s)", conduit.RedactURI(uri), len(eps))
			}
			for _, ep := range eps {
				pr("  -> %s", ep)
			}
		},
		ConnectStart: func(ep endpoint.Endpoint) { pr("connect %s", ep) },
		ConnectDone: func(ep endpoint.Endpoint, err error) {
			if err != nil {
				pr("connect %s failed: %s", ep, plain(err))
				return
			}
			pr("connected %s", ep)
		},
		ProxyConnectDone: func(hop endpoint.Proxy, err error) {
			if err != nil {
				pr("proxy %s %s: connect failed: %s", hop.Protocol, hop.Via, plain(err))
				return
			}
			if timed {
				pr("proxy %s connected %s", hop.Protocol, hop.Via)
			}
		},
		ProxyHandshakeDone: func(hop endpoint.Proxy, err error) {
			if err != nil {
				pr("proxy %s: %s refused: %s", hop.Protocol, hop.Target, plain(err))
				return
			}
			pr("proxy %s tunnel to %s", hop.Protocol, hop.Target)
		},
		TLSHandshakeStart: func(ep endpoint.Endpoint) {
			if timed {
				pr("tls handshake %s", ep)
			}
		},
		TLSHandshakeDone: func(ep endpoint.Endpoint, st tls.ConnectionState, err error) {
			if err != nil {
				pr("tls handshake failed: %s", plain(err))
				return
			}
			pr("tls %s", tlsState(st))
		},
	})
}

// tlsState describes a TLS connection in one line.
func tlsState(st tls.ConnectionState) string {
	s := fmt.Sprintf("%s, %s", tls.VersionName(st.Version), tls.CipherSuiteName(st.CipherSuite))
	if st.NegotiatedProtocol != "" {
		s += fmt.Sprintf(", alpn %q", st.NegotiatedProtocol)
	}
	if st.ServerName != "" {
		s += ", server name " + st.ServerName
	}
	if len(st.PeerCertificates) > 0 {
		s += ", peer " + certName(st.PeerCertificates[0])
	}
	if st.DidResume {
		s += ", resumed"
	}
	return s
}

func certName(c *x509.Certificate) string {
	name := c.Subject.CommonName
	if name == "" && len(c.DNSNames) > 0 {
		name = c.DNSNames[0]
	}
	return fmt.Sprintf("%q issued by %q", name, c.Issuer.CommonName)
}

// listen listens on uri with the listener options of listen and relay.
func (o *options) listen(ctx context.Context, cd *conduit.Conduit, uri string, ka *tcpflow.Keepalive, maxConns int) (*conduit.Listener, error) {
	opts := []conduit.ListenOption{conduit.WithMaxConns(maxConns), conduit.WithGracePeriod(o.grace),
		conduit.WithIdleTimeout(o.idle)}
	hs := o.handshake
	if hs == 0 {
		hs = -1 // the option's "no deadline"
	}
	opts = append(opts, conduit.WithHandshakeTimeout(hs))
	if ka != nil {
		opts = append(opts, conduit.WithKeepalive(*ka))
	}
	ctx, cancel := o.withTimeout(ctx)
	defer cancel()
	return cd.Listen(ctx, uri, opts...)
}

// errorsIsUsage reports whether err is the user's mistake in writing a
// URI (exit status 2) rather than a failure to reach it (1).
func errorsIsUsage(err error) bool {
	var ue *usageError
	return errors.As(err, &ue) || errors.Is(err, resolver.ErrMalformedURI) || errors.Is(err, resolver.ErrUnknownScheme)
}

// plain is err's message without the package prefixes leading it: the
// command's own line has "conduit: " already.
func plain(err error) string {
	msg := err.Error()
	for {
		trimmed := msg
		for _, p := range []string{"conduit: ", "tcpflow: ", "tlsflow: ", "vchan: ", "resolver: "} {
			trimmed = strings.TrimPrefix(trimmed, p)
		}
		if trimmed == msg {
			return msg
		}
		msg = trimmed
	}
}

var _ io.Writer = (*logWriter)(nil)

package main

import (
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"net/url"
	"strings"

	"github.com/conduit-go/conduit/conduit"
	"github.com/conduit-go/conduit/proxy"
)

// The proxy flags: --proxy (repeatable, the chain nearest first) and
// --noproxy on the commands that dial; --allow and --proxy-auth on proxy
// listeners (listen socks5://…, listen connect://…).
var (
	fProxy = flagDef{name: "proxy", arg: "URL",
		help: "dial through this proxy: socks5://, socks5h://, http:// or https://, with user:pass@ (repeatable: a chain, nearest first); default: $ALL_PROXY, $HTTPS_PROXY, $HTTP_PROXY as curl",
		set: func(o *options, v string) error {
			if err := checkProxyURL(v); err != nil {
				return err
			}
			o.proxies = append(o.proxies, v)
			return nil
		}}
	fNoProxy = flagDef{name: "noproxy", arg: "LIST",
		help: "reach these hosts directly: comma-separated names (and their subdomains), IP addresses, CIDR ranges, host:port, or * for all (overrides $NO_PROXY)",
		set:  stringFlag(func(o *options) *string { return &o.noproxy })}
	fAllow = flagDef{name: "allow", arg: "HOST|CIDR",
		help: "proxy listener: let clients reach only this host name, IP address or CIDR range (repeatable)",
		set: func(o *options, v string) error {
			if _, err := parseAllow(v); err != nil {
				return err
			}
			o.allow = append(o.allow, v)
			return nil
		}}
	fProxyAuth = flagDef{name: "proxy-auth", arg: "USER:PASS",
		help: "proxy listener: require this user name and password of clients (as socks5://USER:PASS@HOST:PORT does)",
		set: func(o *options, v string) error {
			if u, _, ok := strings.Cut(v, ":"); !ok || u == "" {
				return errors.New("want USER:PASS")
			}
			o.proxyAuth = v
			return nil
		}}
)

// proxyFlags are the flags of the commands that dial.
var proxyFlags = []*flagDef{&fProxy, &fNoProxy}

// checkProxyURL checks a --proxy value.
func checkProxyURL(v string) error {
	u, err := url.Parse(v)
	if err != nil || u.Scheme == "" {
		return errors.New("want a proxy URL such as socks5://127.0.0.1:1080 or http://user:pass@proxy:3128")
	}
	proto, _, _ := strings.Cut(strings.ToLower(u.Scheme), "+")
	switch proto {
	case "socks5", "socks5h", "http", "https":
		return nil
	}
	return errors.New("the scheme is socks5, socks5h, http or https")
}

// proxyFunc returns the proxy choice of the commands that dial: the
// --proxy chain, else the environment's proxies, in both cases with
// --noproxy (or $NO_PROXY) for the exceptions. As curl, loopback
// destinations are proxied too unless the exceptions name them.
func (o *options) proxyFunc() conduit.ProxyFunc {
	env := proxy.FromEnvironment()
	env.ProxyLoopback = true
	if o.given["noproxy"] {
		env.NoProxy = o.noproxy
	}
	if len(o.proxies) == 0 {
		if env.HTTPProxy == "" && env.HTTPSProxy == "" && env.AllProxy == "" {
			return nil
		}
		return conduit.ProxyFromEnv(env)
	}
	chain := make([]*url.URL, len(o.proxies))
	for i, p := range o.proxies {
		chain[i], _ = url.Parse(p) // checked by the flag
	}
	direct := env.BypassFunc()
	return func(_ context.Context, d conduit.ProxyDestination) ([]*url.URL, error) {
		if direct(d.Host, d.Port) {
			return nil, nil
		}
		return chain, nil
	}
}

// An allowRule is one --allow: a host name (exact, case-insensitive) or
// an IP prefix.
type allowRule struct {
	name   string
	prefix netip.Prefix
}

func parseAllow(v string) (allowRule, error) {
	if p, err := netip.ParsePrefix(v); err == nil {
		return allowRule{prefix: p.Masked()}, nil
	}
	if a, err := netip.ParseAddr(v); err == nil {
		return allowRule{prefix: netip.PrefixFrom(a, a.BitLen())}, nil
	}
	if v == "" || strings.ContainsAny(v, "/: ") {
		return allowRule{}, errors.New("want a host name, an IP address or a CIDR range such as 127.0.0.0/8")
	}
	return allowRule{name: strings.ToLower(strings.TrimSuffix(v, "."))}, nil
}

// allowFunc returns the destination check of --allow, nil without any:
// a name is allowed when it is listed (names are not resolved to be
// checked against ranges: the proxy's own resolution could differ), an
// IP address when a range holds it.
func (o *options) allowFunc() func(host string, port uint16) bool {
	if len(o.allow) == 0 {
		return nil
	}
	rules := make([]allowRule, len(o.allow))
	for i, v := range o.allow {
		rules[i], _ = parseAllow(v) // checked by the flag
	}
	return func(host string, _ uint16) bool {
		a, err := netip.ParseAddr(host)
		for _, r := range rules {
			switch {
			case err == nil && r.prefix.IsValid() && r.prefix.Contains(a.Unmap()):
				return true
			case err != nil && r.name != "" && r.name == strings.ToLower(strings.TrimSuffix(host, ".")):
				return true
			}
		}
		return false
	}
}

// runProxyListen serves a proxy: listen socks5://… or connect://….
func runProxyListen(ctx context.Context, o *options, uri string, s *stdio) int {
	cmd := s.cmd
	pl, err := conduit.ParseProxyListen(uri)
	if err != nil {
		return fail(s.log, cmd, usagef("%s", plain(err)))
	}
	if o.echo || o.discard || o.exec != "" {
		return fail(s.log, cmd, usagef("a proxy listener relays to its clients' destinations: no --echo, --discard or --exec"))
	}
	if o.proxyAuth != "" {
		if pl.Auth != nil {
			return fail(s.log, cmd, usagef("give the credentials once: in the URI or with --proxy-auth"))
		}
		user, pass, _ := strings.Cut(o.proxyAuth, ":")
		pl.Auth = &proxy.Auth{Username: user, Password: pass}
	}
	c, ka, err := o.build(pl.URI)
	if err != nil {
		return fail(s.log, cmd, err)
	}
	defer o.close()
	ln, err := o.listen(ctx, c, pl.URI, ka, o.maxConns)
	if err != nil {
		return fail(s.log, cmd, err)
	}
	srv := &proxy.Server{Auth: pl.Auth, Allow: o.allowFunc(), HandshakeTimeout: o.handshake, Logger: proxyLogger(s.log)}
	if o.handshake == 0 {
		srv.HandshakeTimeout = -1
	}
	if err := conduit.CheckProxyExposure(ln.Endpoint(), srv); err != nil {
		ln.Close()
		return fail(s.log, cmd, err)
	}
	shown := pl.Protocol + "://" + strings.TrimPrefix(ln.URI(), "tcp://")
	if !strings.HasPrefix(ln.URI(), "tcp://") {
		shown = pl.Protocol + "+" + ln.URI()
	}
	s.log.printf("listening on %s (%s proxy%s)\n", shown, map[string]string{conduit.ProxySchemeSOCKS5: "SOCKS5", conduit.ProxySchemeConnect: "HTTP CONNECT"}[pl.Protocol],
		map[bool]string{true: ", authentication required", false: ""}[pl.Auth != nil])
	if err := c.ServeProxy(ctx, ln, pl.Protocol, srv, o.grace); err != nil && ctx.Err() == nil {
		return fail(s.log, cmd, err)
	}
	return 0
}

// proxyLogger is the proxy server's logger: one line per connection on
// standard error, without the time.
func proxyLogger(w *logWriter) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if len(groups) == 0 && (a.Key == slog.TimeKey || a.Key == slog.LevelKey) {
				return slog.Attr{}
			}
			return a
		},
	}))
}

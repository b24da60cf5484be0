package resolver

import (
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/net/idna"

	"github.com/conduit-go/conduit/endpoint"
)

// Sentinel errors. Errors returned by ParseURI, Resolve and ResolveListen
// wrap them; test with errors.Is.
var (
	// ErrMalformedURI: the URI does not follow docs/uris.md (userinfo, a
	// fragment, a bad host or port, a control character, …).
	ErrMalformedURI = errors.New("malformed URI")
	// ErrUnknownScheme: the URI's scheme is neither a transport scheme
	// nor a service in the resolver's table.
	ErrUnknownScheme = errors.New("unknown scheme")
	// ErrNotFound: the host name does not exist (or has no addresses).
	ErrNotFound = errors.New("no such host")
)

// A URIError is an error about one URI. Err says what is wrong; it wraps
// ErrMalformedURI, ErrUnknownScheme, ErrNotFound, a lookup error, or
// net.ErrClosed when the resolver is closed.
type URIError struct {
	URI string
	Err error
}

// Error returns `resolver: URI "…": ` followed by what is wrong.
func (e *URIError) Error() string {
	// A DNS error's own "dns: " prefix is not stacked after ours.
	return fmt.Sprintf("resolver: URI %q: %s", e.URI, strings.TrimPrefix(fmt.Sprint(e.Err), "dns: "))
}

// Unwrap returns e.Err.
func (e *URIError) Unwrap() error { return e.Err }

// malformed returns a *URIError wrapping ErrMalformedURI with a detail.
func malformed(uri, format string, args ...any) error {
	return &URIError{URI: uri, Err: fmt.Errorf("%w: %s", ErrMalformedURI, fmt.Sprintf(format, args...))}
}

// schemeKind classifies a scheme.
type schemeKind int

const (
	schemeService schemeKind = iota // a service scheme (https, ssh, …) or an unknown one
	schemeTCP
	schemeTLS
	schemeUnix
	schemeTLSUnix
	schemeVchan
	schemeTLSVchan
)

// transportScheme returns the kind of a transport scheme (the table of
// endpoint.TransportSchemes) and whether scheme is one. Services cannot
// override these.
func transportScheme(scheme string) (schemeKind, bool) {
	s, ok := endpoint.LookupScheme(scheme)
	if !ok {
		return schemeService, false
	}
	var plain, overTLS schemeKind
	switch s.Base {
	case "tcp":
		plain, overTLS = schemeTCP, schemeTLS
	case "unix":
		plain, overTLS = schemeUnix, schemeTLSUnix
	case "vchan":
		plain, overTLS = schemeVchan, schemeTLSVchan
	}
	if s.TLS {
		return overTLS, true
	}
	return plain, true
}

// IsBuiltinScheme reports whether the resolver resolves scheme itself,
// whatever its Config: a transport scheme (endpoint.TransportSchemes) or
// "srv". A registry of custom schemes must not shadow these.
func IsBuiltinScheme(scheme string) bool {
	_, transport := endpoint.LookupScheme(scheme)
	return transport || scheme == "srv"
}

// parsedURI is a URI that passed ParseURI's checks, split into the parts
// the resolver uses.
type parsedURI struct {
	u      *url.URL
	scheme string // lower case
	kind   schemeKind
	// host is the normalised host: a lower-case name, an IP literal's
	// text (without brackets), a vchan name (case kept), or "".
	host string
	addr netip.Addr // valid when host is an IP literal
	port int        // -1 when absent
	path string     // unix: the decoded socket path
	// vchan: domid is -1 for a named vchan (the name is host).
	domid int
	vport string
	sni   string // from ?sni=, "" when absent
}

// ParseURI parses uri strictly and checks it against the grammar of
// docs/uris.md, returning *URIError (wrapping ErrMalformedURI) when it
// does not fit. The scheme and host name of the result are lower case.
//
// ParseURI checks the transport schemes (tcp, tls, unix, tls+unix, vchan,
// tls+vchan) fully. Any other scheme is checked as a service URI
// (SCHEME://HOST[:PORT][/PATH][?QUERY]), because a resolver's
// Config.Services may add schemes: whether the scheme is known is up to
// the resolver. An empty host, port 0 and vchan domain id 0 are accepted,
// since they are valid to listen on; Resolve rejects them.
func ParseURI(uri string) (*url.URL, error) {
	p, err := parse(uri, nil)
	if err != nil {
		return nil, err
	}
	return p.u, nil
}

// parse is ParseURI. When known is non-nil, a scheme that is neither a
// transport scheme nor known(scheme) is an ErrUnknownScheme error, reported
// before anything after the scheme is examined.
func parse(uri string, known func(scheme string) bool) (*parsedURI, error) {
	if !utf8.ValidString(uri) {
		return nil, malformed(uri, "not valid UTF-8")
	}
	for i, r := range uri {
		switch {
		case r == ' ':
			return nil, malformed(uri, "space at offset %d", i)
		case unicode.IsControl(r):
			return nil, malformed(uri, "control character %U at offset %d", r, i)
		case unicode.IsSpace(r):
			return nil, malformed(uri, "white space %U at offset %d", r, i)
		}
	}

	// The scheme.
	colon := strings.IndexByte(uri, ':')
	if colon < 0 {
		return nil, malformed(uri, "missing scheme (want SCHEME://…, as in tcp://HOST:PORT)")
	}
	scheme := uri[:colon]
	if !validScheme(scheme) {
		return nil, malformed(uri, "invalid scheme %q", scheme)
	}
	scheme = strings.ToLower(scheme)
	kind, transport := transportScheme(scheme)
	if !transport && known != nil && !known(scheme) {
		err := fmt.Errorf("%w %q", ErrUnknownScheme, scheme)
		if !strings.HasPrefix(uri[colon+1:], "//") {
			err = fmt.Errorf("%w (a URI looks like tcp://HOST:PORT)", err)
		}
		return nil, &URIError{URI: uri, Err: err}
	}
	rest := uri[colon+1:]
	if !strings.HasPrefix(rest, "//") {
		return nil, malformed(uri, "missing \"//\" after %q (want %s://…)", uri[:colon+1], scheme)
	}
	rest = rest[2:]
	if i := strings.IndexByte(uri, '#'); i >= 0 {
		return nil, malformed(uri, "fragment %q not allowed", uri[i:])
	}

	// The authority, split by hand for precise messages; url.Parse then
	// decodes the host, path and query.
	authority := rest
	if i := strings.IndexAny(rest, "/?"); i >= 0 {
		authority = rest[:i]
	}
	if strings.ContainsRune(authority, '@') {
		return nil, malformed(uri, "userinfo not allowed")
	}
	bracketed := strings.HasPrefix(authority, "[")
	hostPart, portStr, hasPort := authority, "", false
	if bracketed {
		end := strings.IndexByte(authority, ']')
		if end < 0 {
			return nil, malformed(uri, "missing ']' after IPv6 address")
		}
		hostPart = authority[:end+1]
		switch after := authority[end+1:]; {
		case after == "":
		case after[0] == ':':
			portStr, hasPort = after[1:], true
		default:
			return nil, malformed(uri, "unexpected %q after IPv6 address", after)
		}
	} else {
		switch strings.Count(authority, ":") {
		case 0:
		case 1:
			hostPart, portStr, _ = strings.Cut(authority, ":")
			hasPort = true
		default:
			return nil, malformed(uri, "IPv6 address must be in brackets")
		}
	}
	if !bracketed && strings.ContainsAny(hostPart, "[]") {
		return nil, malformed(uri, "misplaced bracket in host %q", hostPart)
	}
	port := -1
	if hasPort {
		switch {
		case portStr == "":
			return nil, malformed(uri, "empty port")
		case strings.Trim(portStr, "0123456789") != "":
			return nil, malformed(uri, "non-numeric port %q", portStr)
		}
		n, err := strconv.ParseUint(portStr, 10, 16)
		if err != nil {
			return nil, malformed(uri, "port %s out of range (0-65535)", portStr)
		}
		port = int(n)
	}

	// Check an IPv6 literal before url.Parse, for uniform messages.
	var literal netip.Addr
	if bracketed {
		a, err := parseIPv6Literal(uri, hostPart[1:len(hostPart)-1])
		if err != nil {
			return nil, err
		}
		literal = a
	}

	u, err := url.Parse(uri)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, malformed(uri, "%v", err)
	}
	if u.User != nil || u.Opaque != "" || u.Fragment != "" {
		// Excluded above; url.Parse agrees.
		return nil, malformed(uri, "userinfo, opaque part or fragment not allowed")
	}
	u.Scheme = scheme

	p := &parsedURI{u: u, scheme: scheme, kind: kind, port: port, domid: -1}
	host := u.Hostname()
	if !utf8.ValidString(host) {
		return nil, malformed(uri, "host is not valid UTF-8")
	}

	if kind == schemeVchan || kind == schemeTLSVchan {
		if err := p.parseVchan(uri, host, bracketed, hasPort); err != nil {
			return nil, err
		}
	} else {
		if err := p.parseHost(uri, host, literal); err != nil {
			return nil, err
		}
	}

	switch kind {
	case schemeTCP, schemeTLS:
		if port < 0 {
			return nil, malformed(uri, "missing port (want %s://HOST:PORT)", scheme)
		}
		if u.Path != "" && u.Path != "/" {
			return nil, malformed(uri, "path %q not allowed in a %s URI", u.Path, scheme)
		}
	case schemeUnix, schemeTLSUnix:
		if authority != "" {
			return nil, malformed(uri, "host %q not allowed: a %s URI has an empty host (%s:///PATH)", authority, scheme, scheme)
		}
		path := u.Path
		switch {
		case path == "":
			return nil, malformed(uri, "missing socket path")
		case !strings.HasPrefix(path, "/"):
			return nil, malformed(uri, "socket path %q is not absolute", path)
		case strings.HasSuffix(path, "/"):
			return nil, malformed(uri, "socket path %q ends in '/'", path)
		case strings.IndexByte(path, 0) >= 0:
			return nil, malformed(uri, "NUL in socket path")
		}
		p.path = path
	}

	// The query: the transport schemes take only sni, and only with TLS.
	switch kind {
	case schemeService:
		// The path and query belong to the application: ignored.
	default:
		if err := p.parseQuery(uri); err != nil {
			return nil, err
		}
	}

	// Normalise the returned URL: the host in lower case, and "/" for an
	// empty path after an empty authority, so that u.String() keeps the
	// "//" (found by FuzzParseURI: "ws://" printed as "ws:").
	if u.Host == "" && u.Path == "" {
		u.Path = "/"
	}
	if !bracketed && p.host != "" && p.kind != schemeVchan && p.kind != schemeTLSVchan {
		u.Host = p.host
		if hasPort {
			u.Host += ":" + portStr
		}
	}
	return p, nil
}

// parseIPv6Literal checks the text inside the brackets of an IPv6 host:
// an IPv6 address with an optional zone (only on a link-local address),
// written "%25ZONE".
func parseIPv6Literal(uri, inner string) (netip.Addr, error) {
	text, zone, hasZone := strings.Cut(inner, "%25")
	if strings.ContainsAny(text, "%") {
		return netip.Addr{}, malformed(uri, "invalid IPv6 address %q (write a zone as %%25ZONE)", inner)
	}
	a, err := netip.ParseAddr(text)
	if err != nil || !a.Is6() || a.Zone() != "" {
		return netip.Addr{}, malformed(uri, "invalid IPv6 address %q", inner)
	}
	if !hasZone {
		return a, nil
	}
	z, err := url.PathUnescape(zone)
	if err != nil || !validZone(z) {
		return netip.Addr{}, malformed(uri, "invalid zone %q", zone)
	}
	if !a.IsLinkLocalUnicast() && !a.IsLinkLocalMulticast() && !a.IsInterfaceLocalMulticast() {
		return netip.Addr{}, malformed(uri, "zone %q on %s: zones are only allowed on link-local addresses", z, a)
	}
	return a.WithZone(z), nil
}

// parseHost checks and normalises the host of a non-vchan URI. literal is
// the address of a bracketed host.
func (p *parsedURI) parseHost(uri, host string, literal netip.Addr) error {
	if literal.IsValid() {
		p.addr, p.host = literal, literal.String()
		return nil
	}
	if host == "" {
		return nil
	}
	if a, err := netip.ParseAddr(host); err == nil {
		// Only IPv4 gets here: a ':' would have needed brackets.
		p.addr, p.host = a, a.String()
		return nil
	}
	name, err := normaliseHostName(host, true)
	if err != nil {
		return malformed(uri, "%v", err)
	}
	p.host = name
	return nil
}

// maxDomid is the largest domain id of a vchan URI: Xen reserves the ids
// from DOMID_FIRST_RESERVED (0x7FF0) up.
const maxDomid = 0x7FEF

// vchanEndpoints returns the endpoint of a vchan or tls+vchan URI. Domain
// id 0 asks the listener for a free domain id, as TCP port 0 asks for a
// free port: it is only valid to listen on.
func (p *parsedURI) vchanEndpoints(uri string, listen bool) ([]endpoint.Endpoint, error) {
	if p.domid == 0 && !listen {
		return nil, malformed(uri, "domain id 0 is only valid to listen on (it allocates a free one); dial the domain id the listener reports")
	}
	ep := p.vchan()
	if p.kind == schemeTLSVchan {
		ep = endpoint.TLS{ServerName: p.serverName("localhost"), Inner: ep}
	}
	return []endpoint.Endpoint{ep}, nil
}

// parseVchan checks the DOMID-or-NAME and /PORT of a vchan URI. DOMID is
// 0-32751, 0 only to listen on (vchanEndpoints).
func (p *parsedURI) parseVchan(uri, host string, bracketed, hasPort bool) error {
	if bracketed {
		return malformed(uri, "a vchan URI names a domain id or name, not an IP address")
	}
	if hasPort {
		return malformed(uri, "port not allowed in the authority of a vchan URI (want %s://DOMID/PORT)", p.scheme)
	}
	if host == "" {
		return malformed(uri, "missing domain id or name (want %s://DOMID/PORT or %s://NAME/PORT)", p.scheme, p.scheme)
	}
	if strings.Trim(host, "0123456789") == "" {
		n, err := strconv.ParseUint(host, 10, 16)
		if err != nil || n > maxDomid {
			return malformed(uri, "domain id %s out of range (0-%d)", host, maxDomid)
		}
		p.domid = int(n)
	} else {
		// Vchan names are compared by Xen as given: keep the case.
		name, err := normaliseHostName(host, false)
		if err != nil {
			return malformed(uri, "vchan %v", err)
		}
		p.host = name
	}
	port, ok := strings.CutPrefix(p.u.Path, "/")
	switch {
	case !ok || port == "":
		return malformed(uri, "missing vchan port (want %s://%s/PORT)", p.scheme, host)
	case !endpoint.ValidVchanPort(port):
		return malformed(uri, "invalid vchan port %q (want [A-Za-z0-9_-]+)", port)
	}
	p.vport = port
	return nil
}

// parseQuery checks the query of a transport URI: only sni, once, and only
// on the TLS schemes.
func (p *parsedURI) parseQuery(uri string) error {
	if p.u.RawQuery == "" {
		return nil
	}
	q, err := url.ParseQuery(p.u.RawQuery)
	if err != nil {
		return malformed(uri, "invalid query: %v", err)
	}
	tls := p.kind == schemeTLS || p.kind == schemeTLSUnix || p.kind == schemeTLSVchan
	for _, k := range slices.Sorted(maps.Keys(q)) {
		v := q[k]
		if k != "sni" {
			return malformed(uri, "unknown query parameter %q", k)
		}
		if !tls {
			return malformed(uri, "sni is only allowed with TLS (tls://, tls+unix://, tls+vchan://)")
		}
		if len(v) != 1 {
			return malformed(uri, "sni given %d times", len(v))
		}
	}
	sni := q.Get("sni")
	if sni == "" {
		return malformed(uri, "empty sni")
	}
	if a, err := netip.ParseAddr(sni); err == nil {
		if a.Zone() != "" {
			return malformed(uri, "sni %q: a server name has no zone", sni)
		}
		p.sni = a.String()
		return nil
	}
	name, err := normaliseHostName(sni, true)
	if err != nil {
		return malformed(uri, "sni: %v", err)
	}
	p.sni = name
	return nil
}

// validScheme reports whether s is an RFC 3986 scheme:
// ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ).
func validScheme(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z':
		case i > 0 && ('0' <= c && c <= '9' || c == '+' || c == '-' || c == '.'):
		default:
			return false
		}
	}
	return true
}

// validZone reports whether z is a plausible interface name.
func validZone(z string) bool {
	if z == "" || len(z) > 64 {
		return false
	}
	for i := 0; i < len(z); i++ {
		c := z[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// Limits on host names, in octets of the ASCII (A-label) form, as RFC
// 1035 counts them.
const (
	maxLabel = 63
	maxName  = 253
)

// normaliseHostName checks a host name and returns it with ASCII letters
// in lower case and internationalised names in their A-label form (when
// lower is set; vchan names keep their case and characters).
// Labels are separated by '.', may hold ASCII letters and digits, '-'
// (not first or last), '_', and non-ASCII letters, marks and digits; one
// trailing '.' (a fully qualified name) is kept. A name whose last label
// is all digits is refused as an invalid IPv4 address, so that "127.1" or
// "1.2.3.256" never reaches a system resolver that would read it as one.
func normaliseHostName(name string, lower bool) (string, error) {
	if lower && !isASCII(name) {
		// An internationalised name: UTS 46 mapping (case folding,
		// normalisation) and Punycode, so that DNS, SNI and certificate
		// names all see the A-label form.
		dot := strings.HasSuffix(name, ".")
		a, err := idna.Lookup.ToASCII(strings.TrimSuffix(name, "."))
		if err != nil {
			return "", fmt.Errorf("invalid internationalised host name %q: %v", name, err)
		}
		if dot {
			a += "."
		}
		name = a
	}
	trimmed := strings.TrimSuffix(name, ".")
	if trimmed == "" {
		return "", fmt.Errorf("invalid host name %q", name)
	}
	if n := utf8.RuneCountInString(trimmed); n > maxName {
		return "", fmt.Errorf("host name of %d characters is too long (at most %d)", n, maxName)
	}
	labels := strings.Split(trimmed, ".")
	for _, l := range labels {
		if l == "" {
			return "", fmt.Errorf("empty label in host name %q", name)
		}
		if n := utf8.RuneCountInString(l); n > maxLabel {
			return "", fmt.Errorf("label of %d characters in host name %q is too long (at most %d)", n, name, maxLabel)
		}
		if l[0] == '-' || l[len(l)-1] == '-' {
			return "", fmt.Errorf("label %q of host name %q starts or ends with '-'", l, name)
		}
		for _, r := range l {
			switch {
			case 'a' <= r && r <= 'z', 'A' <= r && r <= 'Z', '0' <= r && r <= '9', r == '-', r == '_':
			case r >= utf8.RuneSelf && (unicode.IsLetter(r) || unicode.IsMark(r) || unicode.Is(unicode.Nd, r)):
			default:
				return "", fmt.Errorf("invalid character %q in host name %q", r, name)
			}
		}
	}
	if last := labels[len(labels)-1]; strings.Trim(last, "0123456789") == "" {
		return "", fmt.Errorf("invalid IP address %q", name)
	}
	if lower {
		name = asciiLower(name)
	}
	return name, nil
}

// asciiLower lower-cases the ASCII letters of s, leaving the rest as is.
func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

func asciiLower(s string) string {
	for i := 0; i < len(s); i++ {
		if 'A' <= s[i] && s[i] <= 'Z' {
			b := []byte(s)
			for j := i; j < len(b); j++ {
				if 'A' <= b[j] && b[j] <= 'Z' {
					b[j] += 'a' - 'A'
				}
			}
			return string(b)
		}
	}
	return s
}

package resolver

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/conduit-go/conduit/endpoint"
)

// MaxRewriteDepth bounds how many rewrites one resolution may go through
// (a rule resolving another URI that is rewritten again, and so on), so
// rules that point at each other fail instead of looping.
const MaxRewriteDepth = 8

// ErrRewriteLoop is matched by the error of a resolution that went
// through more than MaxRewriteDepth rewrites.
var ErrRewriteLoop = errors.New("rewrite depth limit reached")

// A Rewrite maps the host names under a domain suffix to endpoints of
// its choosing: every *.vm host to a vchan endpoint, every *.internal
// host to SRV discovery, a test domain to a Unix socket. Rules match
// whole labels: the suffix "xen" matches "xen" and "a.xen", never
// "a.xenon". The rule with the longest matching suffix is tried first;
// a rule declines by returning no endpoints and no error, and the next
// shorter match (and in the end the usual lookup) gets its turn.
type Rewrite struct {
	// Suffix is the domain suffix, without a leading dot ("vm",
	// "svc.cluster.local"); case does not matter.
	Suffix string
	// Func returns the endpoints of the host, or nothing to decline.
	Func func(ctx context.Context, q *RewriteRequest) ([]endpoint.Endpoint, error)
}

// RewriteRequest is what a Rewrite sees of the URI being resolved.
type RewriteRequest struct {
	// URI is the URI as given.
	URI string
	// Scheme is its lower-case scheme ("tcp", "tls", "https", …).
	Scheme string
	// Host is the lower-case host name, without a trailing dot.
	Host string
	// Label is Host without the matched suffix ("web" for web.vm and
	// the suffix "vm"); empty when Host is the suffix itself.
	Label string
	// Port is the port of the URI, or the scheme's default port from the
	// services table when it has none (0 if neither).
	Port uint16
	// TLS reports whether the scheme is TLS (tls://, https://, …), and
	// ServerName is the name the TLS endpoint would verify.
	TLS        bool
	ServerName string
	// Listen is true when resolving to listen rather than to dial.
	Listen bool

	resolve func(ctx context.Context, uri string) ([]endpoint.Endpoint, error)
}

// Resolve resolves another URI with the same resolver, for rules that
// translate a name into another URI. It counts towards MaxRewriteDepth.
func (q *RewriteRequest) Resolve(ctx context.Context, uri string) ([]endpoint.Endpoint, error) {
	return q.resolve(ctx, uri)
}

// WrapTLS wraps ep in a TLS endpoint when the request's scheme is TLS.
func (q *RewriteRequest) WrapTLS(ep endpoint.Endpoint) endpoint.Endpoint {
	if q.TLS {
		return endpoint.TLS{ServerName: q.ServerName, Inner: ep}
	}
	return ep
}

// VchanByName is a Rewrite that turns HOST.SUFFIX into the named vchan
// endpoint vchan://HOST/PORT, the port being the URI's port number or,
// without one, its scheme ("http://web.vm" → vchan://web/http); TLS
// schemes give TLS over that vchan.
func VchanByName(suffix string) Rewrite {
	return Rewrite{Suffix: suffix, Func: func(_ context.Context, q *RewriteRequest) ([]endpoint.Endpoint, error) {
		if q.Label == "" || strings.Contains(q.Label, ".") {
			return nil, nil // only one label under the suffix
		}
		port := q.Scheme
		if u := portOf(q.URI); u != "" {
			port = u
		}
		if !endpoint.ValidVchanPort(port) {
			return nil, fmt.Errorf("vchan port %q from %s is not [A-Za-z0-9_-]+", port, q.URI)
		}
		return []endpoint.Endpoint{q.WrapTLS(endpoint.VchanNamed{Name: q.Label, Port: port})}, nil
	}}
}

// portOf returns the explicit port of a URI's authority, or "".
func portOf(uri string) string {
	_, rest, ok := strings.Cut(uri, "://")
	if !ok {
		return ""
	}
	if i := strings.IndexAny(rest, "/?#"); i >= 0 {
		rest = rest[:i]
	}
	if i := strings.LastIndexByte(rest, ':'); i >= 0 && !strings.HasSuffix(rest, "]") {
		if _, err := strconv.Atoi(rest[i+1:]); err == nil {
			return rest[i+1:]
		}
	}
	return ""
}

// rewriteRules is the compiled Config.Rewrites: suffixes lower-cased and
// ordered longest first.
type rewriteRules []Rewrite

func compileRewrites(rs []Rewrite) (rewriteRules, error) {
	out := make(rewriteRules, 0, len(rs))
	seen := map[string]bool{}
	for _, r := range rs {
		s := strings.Trim(strings.ToLower(r.Suffix), ".")
		if s == "" {
			return nil, fmt.Errorf("resolver: rewrite with an empty suffix")
		}
		if _, err := normaliseHostName(s, true); err != nil {
			return nil, fmt.Errorf("resolver: rewrite suffix %q: %v", r.Suffix, err)
		}
		if r.Func == nil {
			return nil, fmt.Errorf("resolver: rewrite for %q has no Func", r.Suffix)
		}
		if seen[s] {
			return nil, fmt.Errorf("resolver: two rewrites for the suffix %q", s)
		}
		seen[s] = true
		out = append(out, Rewrite{Suffix: s, Func: r.Func})
	}
	slices.SortStableFunc(out, func(a, b Rewrite) int {
		return strings.Count(b.Suffix, ".") - strings.Count(a.Suffix, ".")
	})
	return out, nil
}

// match returns the rules whose suffix matches host, longest first, with
// the label left of each suffix.
func (rs rewriteRules) match(host string) (rules []Rewrite, labels []string) {
	for _, r := range rs {
		switch {
		case host == r.Suffix:
			rules, labels = append(rules, r), append(labels, "")
		case strings.HasSuffix(host, "."+r.Suffix):
			rules, labels = append(rules, r), append(labels, host[:len(host)-len(r.Suffix)-1])
		}
	}
	return rules, labels
}

type rewriteDepthKey struct{}

func rewriteDepth(ctx context.Context) int {
	d, _ := ctx.Value(rewriteDepthKey{}).(int)
	return d
}

// rewrite runs the matching rules for host. ok is false when none
// matched or all declined.
func (rs rewriteRules) rewrite(ctx context.Context, q RewriteRequest) (eps []endpoint.Endpoint, ok bool, err error) {
	rules, labels := rs.match(q.Host)
	if len(rules) == 0 {
		return nil, false, nil
	}
	depth := rewriteDepth(ctx) + 1
	if depth > MaxRewriteDepth {
		return nil, false, fmt.Errorf("%w (%d) at %s", ErrRewriteLoop, MaxRewriteDepth, q.Host)
	}
	ctx = context.WithValue(ctx, rewriteDepthKey{}, depth)
	for i, r := range rules {
		req := q
		req.Label = labels[i]
		eps, err := r.Func(ctx, &req)
		if err != nil {
			return nil, false, fmt.Errorf("rewrite %q: %w", r.Suffix, err)
		}
		if len(eps) > 0 {
			for _, ep := range eps {
				if ep == nil {
					return nil, false, fmt.Errorf("rewrite %q returned a nil endpoint", r.Suffix)
				}
			}
			return eps, true, nil
		}
	}
	return nil, false, nil
}

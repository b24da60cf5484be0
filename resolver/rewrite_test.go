package resolver_test

import (
	"context"
	"errors"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/conduit-go/conduit/endpoint"
	"github.com/conduit-go/conduit/resolver"
)

func TestRewrites(t *testing.T) {
	var calls []string
	record := func(suffix string, eps ...endpoint.Endpoint) resolver.Rewrite {
		return resolver.Rewrite{Suffix: suffix, Func: func(_ context.Context, q *resolver.RewriteRequest) ([]endpoint.Endpoint, error) {
			calls = append(calls, suffix+":"+q.Label)
			return eps, nil
		}}
	}
	sock := endpoint.Unix{Path: "/run/db.sock"}
	r := newTestResolver(t, &resolver.Config{Rewrites: []resolver.Rewrite{
		resolver.VchanByName("vm"),
		record("xen", endpoint.VchanDirect{Domid: 7, Port: "x"}),
		record("db.internal", sock),
		record("internal"), // declines: the usual lookup follows
		{Suffix: "svc.example", Func: func(ctx context.Context, q *resolver.RewriteRequest) ([]endpoint.Endpoint, error) {
			// Translate into another URI, resolved by the same resolver.
			return q.Resolve(ctx, "srv://_"+q.Scheme+"._tcp.svc.test")
		}},
		{Suffix: "loop.test", Func: func(ctx context.Context, q *resolver.RewriteRequest) ([]endpoint.Endpoint, error) {
			return q.Resolve(ctx, "tcp://again.loop.test:1")
		}},
	}})
	for _, tc := range []struct {
		uri   string
		want  []string
		calls []string
	}{
		// Whole labels only: xenon is not under xen.
		{"tcp://a.xen:1", []string{"vchan://7/x"}, []string{"xen:a"}},
		{"tcp://xen:1", []string{"vchan://7/x"}, []string{"xen:"}},
		{"tcp://a.xenon:1", []string{"tcp://a.xenon=192.0.2.99:1"}, nil},
		// Longest suffix first.
		{"tcp://primary.db.internal:5432", []string{"unix:///run/db.sock"}, []string{"db.internal:primary"}},
		// A declining rule falls through to the lookup.
		{"tcp://api.internal:80", []string{"tcp://api.internal=192.0.2.99:80"}, []string{"internal:api"}},
		// Named vchan, TLS over it for TLS schemes, the port or the scheme as the vchan port.
		{"http://web.vm", []string{"vchan://web/http"}, nil},
		{"tcp://web.vm:8080", []string{"vchan://web/8080"}, nil},
		{"https://web.vm", []string{"tls://web.vm@vchan://web/https"}, nil},
		{"tls://web.vm:443?sni=other.test", []string{"tls://other.test@vchan://web/443"}, nil},
		// A rule resolving another URI.
		{"http://anything.svc.example", []string{"tcp://a.svc.test=192.0.2.31:8080",
			"tcp://b.svc.test=192.0.2.32:8081", "tcp://b.svc.test=[2001:db8::32]:8081"}, nil},
		// Case-insensitive, trailing dot.
		{"tcp://A.XEN.:1", []string{"vchan://7/x"}, []string{"xen:a"}},
	} {
		t.Run(tc.uri, func(t *testing.T) {
			calls = nil
			require.Equal(t, tc.want, resolveStrs(t, r, tc.uri))
			if tc.calls != nil {
				require.Equal(t, tc.calls, calls)
			}
		})
	}

	_, err := r.Resolve(context.Background(), "tcp://x.loop.test:1")
	require.ErrorIs(t, err, resolver.ErrRewriteLoop)
	require.Contains(t, err.Error(), "tcp://x.loop.test:1")

	// IP literals and vchan or unix URIs are not rewritten.
	require.Equal(t, []string{"tcp://192.0.2.1:1"}, resolveStrs(t, r, "tcp://192.0.2.1:1"))
}

func TestRewriteErrors(t *testing.T) {
	boom := errors.New("backend down")
	r := newTestResolver(t, &resolver.Config{Rewrites: []resolver.Rewrite{
		{Suffix: "bad", Func: func(context.Context, *resolver.RewriteRequest) ([]endpoint.Endpoint, error) { return nil, boom }},
		{Suffix: "nil", Func: func(context.Context, *resolver.RewriteRequest) ([]endpoint.Endpoint, error) {
			return []endpoint.Endpoint{nil}, nil
		}},
	}})
	_, err := r.Resolve(context.Background(), "tcp://a.bad:1")
	require.ErrorIs(t, err, boom)
	require.Contains(t, err.Error(), "tcp://a.bad:1")
	_, err = r.Resolve(context.Background(), "tcp://a.nil:1")
	require.ErrorContains(t, err, "nil endpoint")

	f := func(context.Context, *resolver.RewriteRequest) ([]endpoint.Endpoint, error) { return nil, nil }
	for _, rules := range [][]resolver.Rewrite{
		{{Suffix: "", Func: f}},
		{{Suffix: "a..b", Func: f}},
		{{Suffix: "x", Func: nil}},
		{{Suffix: "x", Func: f}, {Suffix: "X.", Func: f}},
	} {
		_, err := resolver.New(&resolver.Config{HostsFile: "-", LookupHost: fakeLookup, Rewrites: rules})
		require.Error(t, err, "%v", rules)
	}
}

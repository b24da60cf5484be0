package resolver_test

import (
	"context"
	"net/netip"
	"testing"

	"github.com/miekg/dns"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/conduit-go/conduit/resolver"
)

// TestStreamAFirst: with the AAAA answer held by the server, the A
// answer's endpoint comes in a batch of its own before the AAAA query is
// answered; the AAAA answer's follows once released. Then the answer is
// cached: Resolve returns both without a query, and ResolveStream sends
// them in one batch.
func TestStreamAFirst(t *testing.T) {
	z := startScriptDNS(t, "web.test. 60 IN A 127.0.0.1", "web.test. 60 IN AAAA ::1")
	release := z.hold("web.test", dns.TypeAAAA)
	r := newScriptResolver(t, z, nil, nil)

	run := stream(t, r, "tls://web.test:443")
	b := run.next(t)
	assert.Equal(t, "0: tls://web.test@tcp://web.test=127.0.0.1:443", batchStr(b))
	assert.False(t, run.returned(), "returned before the AAAA answer")
	release()
	b = run.next(t)
	assert.Equal(t, "0: tls://web.test@tcp://web.test=[::1]:443", batchStr(b))
	assert.Empty(t, run.wait(t))
	require.NoError(t, run.err)

	queries := z.count("web.test", dns.TypeA) + z.count("web.test", dns.TypeAAAA)
	eps, err := r.Resolve(context.Background(), "tls://web.test:443")
	require.NoError(t, err)
	assert.Equal(t, []string{"tls://web.test@tcp://web.test=127.0.0.1:443", "tls://web.test@tcp://web.test=[::1]:443"}, strs(eps))
	run = stream(t, r, "tls://web.test:443")
	rest := run.wait(t)
	require.NoError(t, run.err)
	require.Len(t, rest, 1)
	assert.Equal(t, "0: tls://web.test@tcp://web.test=127.0.0.1:443 tls://web.test@tcp://web.test=[::1]:443", batchStr(rest[0]))
	assert.Equal(t, queries, z.count("web.test", dns.TypeA)+z.count("web.test", dns.TypeAAAA), "cached answers asked again")
}

// TestStreamAAAAFirst: the A answer held, the AAAA one comes first.
func TestStreamAAAAFirst(t *testing.T) {
	z := startScriptDNS(t, "web.test. 60 IN A 127.0.0.1", "web.test. 60 IN AAAA ::1")
	release := z.hold("web.test", dns.TypeA)
	r := newScriptResolver(t, z, nil, nil)
	run := stream(t, r, "tcp://web.test:80")
	assert.Equal(t, "0: tcp://web.test=[::1]:80", batchStr(run.next(t)))
	release()
	assert.Equal(t, "0: tcp://web.test=127.0.0.1:80", batchStr(run.next(t)))
	run.wait(t)
	require.NoError(t, run.err)
	// Resolve's order from the cache: A first, as from the stub.
	eps, err := r.Resolve(context.Background(), "tcp://web.test:80")
	require.NoError(t, err)
	assert.Equal(t, []string{"tcp://web.test=127.0.0.1:80", "tcp://web.test=[::1]:80"}, strs(eps))
}

// TestStreamStatic: answers known at once come in one batch.
func TestStreamStatic(t *testing.T) {
	z := startScriptDNS(t)
	r := newScriptResolver(t, z, nil, func(c *resolver.Config) {
		c.Hosts = map[string][]netip.Addr{"db.internal": {netip.MustParseAddr("127.0.0.7"), netip.MustParseAddr("::1")}}
	})
	for uri, want := range map[string]string{
		"tcp://127.0.0.1:1":    "0: tcp://127.0.0.1:1",
		"https://[::1]/":       "0: tls://::1@tcp://[::1]:443",
		"tcp://db.internal:5":  "0: tcp://db.internal=127.0.0.7:5 tcp://db.internal=[::1]:5",
		"tcp://localhost:9":    "0: tcp://localhost=127.0.0.1:9 tcp://localhost=[::1]:9",
		"unix:///tmp/x.sock":   "0: unix:///tmp/x.sock",
		"tls+unix:///tmp/y.sk": "0: tls://localhost@unix:///tmp/y.sk",
		"vchan://3/echo":       "0: vchan://3/echo",
	} {
		run := stream(t, r, uri)
		rest := run.wait(t)
		require.NoError(t, run.err, uri)
		require.Len(t, rest, 1, uri)
		assert.Equal(t, want, batchStr(rest[0]), uri)
	}
	assert.Zero(t, z.count("db.internal", dns.TypeA))
}

// TestStreamCustomLookup: Config.LookupHost answers both families at
// once: one batch.
func TestStreamCustomLookup(t *testing.T) {
	r := newTestResolver(t, nil)
	run := stream(t, r, "https://example.com/")
	rest := run.wait(t)
	require.NoError(t, run.err)
	require.Len(t, rest, 1)
	assert.Equal(t, "0: tls://example.com@tcp://example.com=[2001:db8::10]:443 tls://example.com@tcp://example.com=192.0.2.10:443", batchStr(rest[0]))
}

// TestStreamErrors: the errors are Resolve's, and nothing is sent.
func TestStreamErrors(t *testing.T) {
	z := startScriptDNS(t, "v6.test. 60 IN AAAA ::1")
	r := newScriptResolver(t, z, nil, nil)
	for _, tt := range []struct {
		uri string
		err error
	}{
		{"tcp://nx.test:1", resolver.ErrNotFound},
		{"tcp://v6.test:0", resolver.ErrMalformedURI},
		{"nope://v6.test", resolver.ErrUnknownScheme},
		{"tcp://a..b:1", resolver.ErrMalformedURI},
	} {
		run := stream(t, r, tt.uri)
		assert.Empty(t, run.wait(t), tt.uri)
		require.ErrorIs(t, run.err, tt.err, tt.uri)
		_, rerr := r.Resolve(context.Background(), tt.uri)
		assert.Equal(t, rerr.Error(), run.err.Error())
	}
}

// TestStreamCancel: ctx ending while the AAAA answer is held ends the
// call with ctx's error, after the A batch.
func TestStreamCancel(t *testing.T) {
	z := startScriptDNS(t, "web.test. 60 IN A 127.0.0.1", "web.test. 60 IN AAAA ::1")
	z.hold("web.test", dns.TypeAAAA)
	r := newScriptResolver(t, z, nil, nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	run := streamCtx(t, ctx, r, "tcp://web.test:80")
	assert.Equal(t, "0: tcp://web.test=127.0.0.1:80", batchStr(run.next(t)))
	cancel()
	assert.Empty(t, run.wait(t))
	require.ErrorIs(t, run.err, context.Canceled)
}

// TestStreamClosed: a closed resolver fails at once.
func TestStreamClosed(t *testing.T) {
	r, err := resolver.New(&resolver.Config{HostsFile: "-", LookupHost: fakeLookup, LookupSRV: fakeSRV})
	require.NoError(t, err)
	require.NoError(t, r.Close())
	err = r.ResolveStream(context.Background(), "tcp://127.0.0.1:1", func(resolver.Batch) { t.Error("sent") })
	require.Error(t, err)
}

// TestStreamSRVGroups: each SRV target's addresses come as they are
// answered, Group the rank of its record: the first target's A answer
// held, the second's comes first with Group 1, then the first's with
// Group 0.
func TestStreamSRVGroups(t *testing.T) {
	z := startScriptDNS(t,
		"_x._tcp.svc.test. 60 IN SRV 10 0 8001 t1.svc.test.",
		"_x._tcp.svc.test. 60 IN SRV 20 0 8002 t2.svc.test.",
		"t1.svc.test. 60 IN A 127.0.0.1",
		"t2.svc.test. 60 IN A 127.0.0.2",
		"t2.svc.test. 60 IN AAAA ::2",
	)
	release := z.hold("t1.svc.test", dns.TypeA)
	r := newScriptResolver(t, z, nil, nil)
	run := stream(t, r, "srv://_x._tcp.svc.test")
	got := map[string]bool{}
	for range 2 { // t2's A and AAAA, in either order
		got[batchStr(run.next(t))] = true
	}
	assert.Equal(t, map[string]bool{"1: tcp://t2.svc.test=127.0.0.2:8002": true, "1: tcp://t2.svc.test=[::2]:8002": true}, got)
	assert.False(t, run.returned())
	release()
	assert.Equal(t, "0: tcp://t1.svc.test=127.0.0.1:8001", batchStr(run.next(t)))
	assert.Empty(t, run.wait(t))
	require.NoError(t, run.err)
}

// TestStreamSRVFallback: SCHEME+srv without SRV records streams the
// name's addresses with the service's port.
func TestStreamSRVFallback(t *testing.T) {
	z := startScriptDNS(t, "plain.test. 60 IN A 127.0.0.1", "plain.test. 60 IN AAAA ::1")
	release := z.hold("plain.test", dns.TypeAAAA)
	r := newScriptResolver(t, z, nil, nil)
	run := stream(t, r, "http+srv://plain.test")
	assert.Equal(t, "0: tcp://plain.test=127.0.0.1:80", batchStr(run.next(t)))
	release()
	assert.Equal(t, "0: tcp://plain.test=[::1]:80", batchStr(run.next(t)))
	run.wait(t)
	require.NoError(t, run.err)
}

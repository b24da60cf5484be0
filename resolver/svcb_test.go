package resolver_test

import (
	"fmt"
	"testing"

	"github.com/miekg/dns"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/conduit-go/conduit/endpoint"
	"github.com/conduit-go/conduit/resolver"
)

// TestSVCBHintsThenReplaces: the HTTPS record answers while the
// origin's A answer is held: its ipv4hint is sent at once as hint
// endpoints, replaced by the A answer's endpoints when it comes; alpn
// gets the default http/1.1, ech is carried.
func TestSVCBHintsThenReplaces(t *testing.T) {
	z := startScriptDNS(t,
		`web.test. 60 IN HTTPS 1 . alpn=h2 ipv4hint=127.0.0.9 ech=AQID`,
		"web.test. 60 IN A 127.0.0.1")
	release := z.hold("web.test", dns.TypeA)
	r := newScriptResolver(t, z, nil, nil)
	run := stream(t, r, "https://web.test/")
	assert.Equal(t, "0: tls://web.test@tcp://web.test=127.0.0.9:443{1 h2,http/1.1 hint ech}", batchStr(run.next(t)))
	release()
	b := run.next(t)
	assert.Equal(t, "0 replaces: tls://web.test@tcp://web.test=127.0.0.1:443{1 h2,http/1.1 ech}", batchStr(b))
	assert.Equal(t, []byte{1, 2, 3}, b.Endpoints[0].(endpoint.TLS).SVC.ECH)
	assert.Empty(t, run.wait(t))
	require.NoError(t, run.err)
}

// TestSVCBPriorityAliasPort: an AliasMode record followed to a name with
// two ServiceMode records, out of priority order on the wire: a group
// each in SvcPriority order (port key, no-default-alpn), then the
// origin's own addresses (SVCB-optional fallback). A second
// ResolveStream is answered from the cache, a batch per group, without
// a query.
func TestSVCBPriorityAliasPort(t *testing.T) {
	z := startScriptDNS(t,
		"web.test. 60 IN HTTPS 0 alias.test.",
		"alias.test. 60 IN HTTPS 2 b.test. alpn=h3 no-default-alpn port=8443",
		"alias.test. 60 IN HTTPS 1 a.test. alpn=h2",
		"a.test. 60 IN A 127.0.0.2",
		"b.test. 60 IN AAAA ::3",
		"web.test. 60 IN A 127.0.0.1")
	r := newScriptResolver(t, z, nil, nil)
	eps, err := r.Resolve(hangGuard(t), "https://web.test/")
	require.NoError(t, err)
	var got []string
	for _, ep := range eps {
		got = append(got, epStr(ep))
	}
	assert.Equal(t, []string{
		"tls://web.test@tcp://a.test=127.0.0.2:443{1 h2,http/1.1}",
		"tls://web.test@tcp://b.test=[::3]:8443{2 h3}",
		"tls://web.test@tcp://web.test=127.0.0.1:443",
	}, got)

	before := z.count("web.test", dns.TypeHTTPS)
	run := stream(t, r, "https://web.test/")
	var batches []string
	for _, b := range run.wait(t) {
		batches = append(batches, batchStr(b))
	}
	require.NoError(t, run.err)
	assert.Equal(t, []string{
		"0: tls://web.test@tcp://a.test=127.0.0.2:443{1 h2,http/1.1}",
		"1: tls://web.test@tcp://b.test=[::3]:8443{2 h3}",
		"2: tls://web.test@tcp://web.test=127.0.0.1:443",
	}, batches)
	assert.Equal(t, before, z.count("web.test", dns.TypeHTTPS))
}

// TestSVCBAliasLoopAndDepth: an alias loop and a chain longer than 8 are
// abandoned (counted): the origin's plain addresses. A chain of 7 is
// followed.
func TestSVCBAliasLoopAndDepth(t *testing.T) {
	records := []string{
		"loop.test. 60 IN HTTPS 0 l2.test.", "l2.test. 60 IN HTTPS 0 loop.test.", "loop.test. 60 IN A 127.0.0.1",
		"deep.test. 60 IN A 127.0.0.1", "ok.test. 60 IN A 127.0.0.1",
		"d9.test. 60 IN HTTPS 1 . alpn=h2", "d9.test. 60 IN A 127.0.0.9",
	}
	records = append(records, "deep.test. 60 IN HTTPS 0 d1.test.", "ok.test. 60 IN HTTPS 0 d3.test.")
	for i := 1; i < 9; i++ {
		records = append(records, fmt.Sprintf("d%d.test. 60 IN HTTPS 0 d%d.test.", i, i+1))
	}
	z := startScriptDNS(t, records...)
	r := newScriptResolver(t, z, nil, nil)
	for uri, want := range map[string][]string{
		"https://loop.test/": {"tls://loop.test@tcp://loop.test=127.0.0.1:443"},
		"https://deep.test/": {"tls://deep.test@tcp://deep.test=127.0.0.1:443"},
		// ok → d3 … d9: 7 aliases.
		"https://ok.test/": {"tls://ok.test@tcp://d9.test=127.0.0.9:443{1 h2,http/1.1}", "tls://ok.test@tcp://ok.test=127.0.0.1:443"},
	} {
		eps, err := r.Resolve(hangGuard(t), uri)
		require.NoError(t, err, uri)
		var got []string
		for _, ep := range eps {
			got = append(got, epStr(ep))
		}
		assert.Equal(t, want, got, uri)
	}
	assert.EqualValues(t, 2, r.Stats().SVCBAliasChainsBroken)
}

// TestSVCBLateAnswer: the HTTPS answer held: the origin's A answer waits
// SVCBWait on the resolver's clock for it (nothing sent until the test
// advances the clock), then goes plain; a late HTTPS answer is not
// waited for.
func TestSVCBLateAnswer(t *testing.T) {
	z := startScriptDNS(t, `web.test. 60 IN HTTPS 1 . alpn=h2`, "web.test. 60 IN A 127.0.0.1")
	z.hold("web.test", dns.TypeHTTPS)
	clk := newFakeClock()
	r := newScriptResolver(t, z, clk, nil)
	run := stream(t, r, "https://web.test/")
	clk.waitPending(t, 1)
	assert.Equal(t, resolver.SVCBWait, clk.durations()[0])
	assert.Empty(t, run.batches, "sent before the HTTPS wait ended")
	clk.advance(resolver.SVCBWait)
	assert.Equal(t, "0: tls://web.test@tcp://web.test=127.0.0.1:443", batchStr(run.next(t)))
	assert.Empty(t, run.wait(t))
	require.NoError(t, run.err)
}

// TestSVCBNoRecord: NODATA for HTTPS: the plain answer, and an explicit
// port asks _PORT._https (RFC 9460 §9.1).
func TestSVCBNoRecord(t *testing.T) {
	z := startScriptDNS(t, "web.test. 60 IN A 127.0.0.1",
		`_8443._https.web.test. 60 IN HTTPS 1 web.test. alpn=h2`)
	r := newScriptResolver(t, z, nil, nil)
	eps, err := r.Resolve(hangGuard(t), "https://web.test/")
	require.NoError(t, err)
	assert.Equal(t, []string{"tls://web.test@tcp://web.test=127.0.0.1:443"}, strs(eps))
	eps, err = r.Resolve(hangGuard(t), "https://web.test:8443/")
	require.NoError(t, err)
	require.Len(t, eps, 1)
	assert.Equal(t, "tls://web.test@tcp://web.test=127.0.0.1:8443{1 h2,http/1.1}", epStr(eps[0]))
	assert.Equal(t, 1, z.count("_8443._https.web.test", dns.TypeHTTPS))
}

// TestSVCBMalformedDropped: a malformed record (an alpn id overflowing
// its value) and one with an unknown mandatory key are dropped and
// counted; the good one is used.
func TestSVCBMalformedDropped(t *testing.T) {
	z := startScriptDNS(t, "web.test. 60 IN A 127.0.0.1")
	good, err := dns.NewRR(`web.test. 60 IN HTTPS 3 . alpn=h2`)
	require.NoError(t, err)
	z.setRaw("web.test", func(req *dns.Msg) []byte {
		m := new(dns.Msg)
		m.SetReply(req)
		q := req.Question[0]
		switch q.Qtype {
		case dns.TypeHTTPS:
			h := dns.RR_Header{Name: q.Name, Rrtype: dns.TypeHTTPS, Class: dns.ClassINET, Ttl: 60}
			m.Answer = append(m.Answer,
				&dns.RFC3597{Hdr: h, Rdata: "0001000001000209" + "68"},                // alpn overflows
				&dns.RFC3597{Hdr: h, Rdata: "000100" + "00000002029b" + "029b000178"}, // mandatory=key667
				good)
		case dns.TypeA:
			a, _ := dns.NewRR(q.Name + " 60 IN A 127.0.0.1")
			m.Answer = append(m.Answer, a)
		}
		b, err := m.Pack()
		if err != nil {
			panic(err)
		}
		return b
	})
	r := newScriptResolver(t, z, nil, nil)
	eps, err := r.Resolve(hangGuard(t), "https://web.test/")
	require.NoError(t, err)
	require.Len(t, eps, 1)
	assert.Equal(t, "tls://web.test@tcp://web.test=127.0.0.1:443{3 h2,http/1.1}", epStr(eps[0]))
	assert.EqualValues(t, 2, r.Stats().SVCBRecordsDropped)
}

// TestSVCBOptIn: a scheme opted in through Config.Services asks the
// SVCB record of _PORT._SCHEME (no default ALPN); one without SVCB asks
// nothing.
func TestSVCBOptIn(t *testing.T) {
	z := startScriptDNS(t, "web.test. 60 IN A 127.0.0.1",
		`_8443._foo.web.test. 60 IN SVCB 1 web.test. alpn=foo/1 port=9443`,
		`_8443._bar.web.test. 60 IN SVCB 1 web.test. alpn=bar/1 port=9443`)
	r := newScriptResolver(t, z, nil, func(c *resolver.Config) {
		c.Services = map[string]resolver.Service{"foo": {Port: 8443, TLS: true, SVCB: true}, "bar": {Port: 8443, TLS: true}}
	})
	eps, err := r.Resolve(hangGuard(t), "foo://web.test")
	require.NoError(t, err)
	require.Len(t, eps, 1)
	assert.Equal(t, "tls://web.test@tcp://web.test=127.0.0.1:9443{1 foo/1}", epStr(eps[0]))
	eps, err = r.Resolve(hangGuard(t), "bar://web.test")
	require.NoError(t, err)
	assert.Equal(t, []string{"tls://web.test@tcp://web.test=127.0.0.1:8443"}, strs(eps))
	assert.Zero(t, z.count("_8443._bar.web.test", dns.TypeSVCB))
}

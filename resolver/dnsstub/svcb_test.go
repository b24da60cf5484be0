package dnsstub

import (
	"context"
	"net/netip"
	"testing"

	"github.com/miekg/dns"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// svcbRdataOf packs rr's RDATA with miekg/dns.
func svcbRdataOf(t testing.TB, text string) []byte {
	t.Helper()
	rr, err := dns.NewRR(text)
	require.NoError(t, err)
	b, ok := svcbRdata(rr)
	require.True(t, ok)
	return b
}

func TestParseSVCB(t *testing.T) {
	rec, err := ParseSVCB(svcbRdataOf(t, `web.test. 60 IN HTTPS 1 Alt.Test. alpn=h2,h3 no-default-alpn port=8443 ipv4hint=192.0.2.1,192.0.2.2 ech=AQID ipv6hint=2001:db8::1 key667=x`))
	require.NoError(t, err)
	assert.Equal(t, SVCB{Priority: 1, Target: "alt.test.", Port: 8443, ALPN: []string{"h2", "h3"}, NoDefaultALPN: true, ECH: []byte{1, 2, 3},
		IPv4Hint: []netip.Addr{netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.2")}, IPv6Hint: []netip.Addr{netip.MustParseAddr("2001:db8::1")}}, rec)
	rec, err = ParseSVCB(svcbRdataOf(t, `web.test. 60 IN HTTPS 0 other.test.`))
	require.NoError(t, err)
	assert.Equal(t, SVCB{Target: "other.test."}, rec)
	rec, err = ParseSVCB(svcbRdataOf(t, `web.test. 60 IN HTTPS 1 . alpn=h2`))
	require.NoError(t, err)
	assert.Equal(t, ".", rec.Target)

	_, err = ParseSVCB(svcbRdataOf(t, `web.test. 60 IN HTTPS 1 . mandatory=key667 key667=x`))
	assert.ErrorIs(t, err, ErrUnsupportedMandatory)
	_, err = ParseSVCB(svcbRdataOf(t, `web.test. 60 IN HTTPS 1 . mandatory=port alpn=h2`))
	assert.ErrorIs(t, err, ErrMalformedSVCB, "mandatory key absent")
	_, err = ParseSVCB(svcbRdataOf(t, `web.test. 60 IN HTTPS 1 . no-default-alpn`))
	assert.ErrorIs(t, err, ErrMalformedSVCB, "no-default-alpn without alpn")
	for name, b := range map[string][]byte{
		"empty":           nil,
		"name overflow":   {0, 1, 5, 'a'},
		"pointer":         {0, 1, 0xc0, 0},
		"param overflow":  {0, 1, 0, 0, 3, 0, 9},
		"keys unordered":  {0, 1, 0, 0, 3, 0, 2, 1, 0, 0, 1, 0, 3, 2, 'h', '2'},
		"port length":     {0, 1, 0, 0, 3, 0, 1, 1},
		"empty alpn id":   {0, 1, 0, 0, 1, 0, 1, 0},
		"ipv4hint length": {0, 1, 0, 0, 4, 0, 3, 1, 2, 3},
	} {
		_, err := ParseSVCB(b)
		assert.ErrorIs(t, err, ErrMalformedSVCB, name)
	}
}

// TestLookupSVCBDropsMalformed: an answer with a record miekg/dns cannot
// unpack (an alpn overflowing its value) and a good one: the good one is
// returned, the bad one dropped and counted, the answer not lost.
func TestLookupSVCBDropsMalformed(t *testing.T) {
	good := svcbRdataOf(t, `web.test. 60 IN HTTPS 2 . alpn=h2`)
	bad := []byte{0, 1, 0, 0, 1, 0, 2, 9, 'h'} // alpn id longer than its value
	srv := startFake(t, func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(r)
		for _, rd := range [][]byte{bad, good} {
			m.Answer = append(m.Answer, &dns.RFC3597{Hdr: dns.RR_Header{Name: r.Question[0].Name, Rrtype: dns.TypeHTTPS, Class: dns.ClassINET, Ttl: 60}, Rdata: hexOf(rd)})
		}
		w.WriteMsg(m)
	})
	s := newStub(t, newClock(), srv)
	recs, err := s.LookupSVCB(context.Background(), "web.test.", TypeHTTPS)
	require.NoError(t, err)
	require.Len(t, recs, 1)
	assert.Equal(t, []string{"h2"}, recs[0].ALPN)
	assert.Equal(t, "web.test.", recs[0].Owner)
	assert.EqualValues(t, 1, s.Stats().SVCBDropped)
	assert.Zero(t, s.Stats().Dropped, "the response was dropped")
}

func hexOf(b []byte) string {
	const digits = "0123456789abcdef"
	out := make([]byte, 0, 2*len(b))
	for _, c := range b {
		out = append(out, digits[c>>4], digits[c&15])
	}
	return string(out)
}

// FuzzSVCB: arbitrary RDATA of an HTTPS record, alone (ParseSVCB) and in
// a response (the lenient unpack): no panic; what parses packs into a
// record miekg/dns reads back with the same values.
func FuzzSVCB(f *testing.F) {
	f.Add([]byte{0, 1, 0, 0, 1, 0, 3, 2, 'h', '2'})
	f.Add([]byte{0, 0, 3, 'a', 'b', 'c', 0})
	f.Add([]byte{0, 1, 0, 0, 0, 0, 2, 0, 1, 0, 1, 0, 3, 2, 'h', '2'})
	f.Fuzz(func(t *testing.T, rdata []byte) {
		rec, err := ParseSVCB(rdata)
		if err == nil && rec.Priority != 0 {
			// Every value kept is one that was on the wire.
			for _, a := range rec.ALPN {
				require.NotEmpty(t, a)
			}
			require.False(t, rec.NoDefaultALPN && len(rec.ALPN) == 0)
		}
		m := new(dns.Msg)
		m.SetQuestion("web.test.", dns.TypeHTTPS)
		m.Response = true
		m.Answer = []dns.RR{&dns.RFC3597{Hdr: dns.RR_Header{Name: "web.test.", Rrtype: dns.TypeHTTPS, Class: dns.ClassINET, Ttl: 60}, Rdata: hexOf(rdata)}}
		b, perr := m.Pack()
		if perr != nil || len(rdata) > 0xffff {
			return
		}
		lm, lerr := unpackLenient(b)
		require.NoError(t, lerr)
		require.Len(t, lm.Answer, 1)
		back, ok := svcbRdata(lm.Answer[0])
		require.True(t, ok)
		require.Equal(t, rdata, back)
	})
}

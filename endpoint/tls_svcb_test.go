package endpoint_test

import (
	"encoding/json"
	"net/netip"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/conduit-go/conduit/endpoint"
)

// TestTLSJSONSVC: a TLS endpoint from an HTTPS record shows its ALPN
// protocols, whether ECH is used, and whether its address is a hint; one
// without SVC params shows none of them.
func TestTLSJSONSVC(t *testing.T) {
	inner := endpoint.TCP{Host: "web.test", Addr: netip.MustParseAddrPort("192.0.2.1:443")}
	svc := &endpoint.SVCParams{Priority: 1, Target: "web.test", ALPN: []string{"h2", "http/1.1"}, ECH: []byte{1}, Hint: true}
	b, err := json.Marshal(endpoint.TLS{ServerName: "web.test", Inner: inner, SVC: svc})
	require.NoError(t, err)
	var got map[string]any
	require.NoError(t, json.Unmarshal(b, &got))
	assert.Equal(t, []any{"h2", "http/1.1"}, got["alpn"])
	assert.Equal(t, true, got["ech"])
	assert.Equal(t, true, got["hint"])
	assert.Equal(t, "tls", got["transport"])
	assert.Equal(t, "192.0.2.1:443", got["address"])

	b, err = json.Marshal(endpoint.TLS{ServerName: "web.test", Inner: inner})
	require.NoError(t, err)
	got = nil
	require.NoError(t, json.Unmarshal(b, &got))
	assert.NotContains(t, got, "alpn")
	assert.NotContains(t, got, "ech")
}

func TestSVCParamsString(t *testing.T) {
	var none *endpoint.SVCParams
	if got := none.String(); got != "" {
		t.Fatalf("nil: %q", got)
	}
	p := &endpoint.SVCParams{ALPN: []string{"h2", "http/1.1"}, ECH: []byte{1}, Hint: true}
	if got, want := p.String(), "alpn=h2,http/1.1 ech hint"; got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
}

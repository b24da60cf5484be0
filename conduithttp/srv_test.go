package conduithttp_test

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/conduit-go/conduit/conduit"
	"github.com/conduit-go/conduit/conduithttp"
	"github.com/conduit-go/conduit/internal/testutil"
	"github.com/conduit-go/conduit/resolver"
	"github.com/conduit-go/conduit/resolver/dnsstub"
)

// TestSRVURL: http+srv://NAME finds its server by the SRV records of
// _http._tcp.NAME, served by dnsmasq.
func TestSRVURL(t *testing.T) {
	c0 := conduit.New(nil)
	defer c0.Close()
	uri := serve(t, c0, "tcp://127.0.0.1:0", echoHandler)
	port := uri[strings.LastIndexByte(uri, ':')+1:]
	ns := testutil.Dnsmasq(t, "web.test", "--host-record=web.test,127.0.0.1", "--host-record=node1.web.test,127.0.0.1",
		"--srv-host=_http._tcp.web.test,node1.web.test,"+port)
	r, err := resolver.New(&resolver.Config{HostsFile: "-", DNS: &dnsstub.Config{Nameservers: []netip.AddrPort{ns}}})
	require.NoError(t, err)
	defer r.Close()
	c := conduit.New(&conduit.Config{Resolver: r})
	client := conduithttp.NewClient(c, nil)
	defer client.CloseIdleConnections()
	assert.Equal(t, "HTTP/1.1 /x host=web.test tls=-", get(t, client, "http+srv://web.test/x"))
}

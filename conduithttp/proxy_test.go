package conduithttp_test

import (
	"context"
	"crypto/tls"
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/conduit-go/conduit/conduit"
	"github.com/conduit-go/conduit/conduithttp"
	"github.com/conduit-go/conduit/internal/testutil"
)

// TestHTTPSThroughSOCKS5: the conduit Transport's requests go through the
// Conduit's proxies: HTTP/2 over TLS to the server, inside a SOCKS5
// tunnel through danted (socks5h: danted is given the name localhost),
// and through danted then tinyproxy.
func TestHTTPSThroughSOCKS5(t *testing.T) {
	server, ca, _ := pki(t)
	uri := serve(t, server, "tls://127.0.0.1:0?sni=localhost", echoHandler)
	port := strings.TrimSuffix(uri[strings.LastIndex(uri, ":")+1:], "?sni=localhost")
	danted := testutil.Danted(t)
	tiny := testutil.Tinyproxy(t, testutil.TinyproxyConfig{})
	for _, chain := range [][]string{
		{"socks5h://" + danted.String()},
		{"socks5://" + danted.String(), "http://" + tiny.String()},
	} {
		t.Run(strings.Join(chain, ","), func(t *testing.T) {
			var asked []string
			c := conduit.New(&conduit.Config{Proxy: func(_ context.Context, d conduit.ProxyDestination) ([]*url.URL, error) {
				asked = append(asked, d.Scheme+" "+d.Host)
				var urls []*url.URL
				for _, s := range chain {
					u, _ := url.Parse(s)
					urls = append(urls, u)
				}
				return urls, nil
			}})
			defer c.Close()
			client := conduithttp.NewClient(c, &conduithttp.TransportOptions{TLSClientConfig: &tls.Config{RootCAs: ca.Pool}})
			defer client.CloseIdleConnections()
			assert.Equal(t, "HTTP/2.0 /p host=localhost:"+port+" tls=h2 localhost", get(t, client, "https://localhost:"+port+"/p"))
			assert.Equal(t, []string{"tls localhost"}, asked, "an HTTPS request asks for tls://, whose TLS runs inside the tunnel")
		})
	}
}

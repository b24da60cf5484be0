package endpoint_test

import (
	"encoding/json"
	"errors"
	"net"
	"net/netip"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/conduit-go/conduit/endpoint"
)

var (
	tcp4 = endpoint.TCP{Host: "example.com", Addr: netip.MustParseAddrPort("192.0.2.1:443")}
	tcp6 = endpoint.TCP{Addr: netip.MustParseAddrPort("[2001:db8::1]:443")}
	sock = endpoint.Unix{Path: "/run/app sock"}
	vd   = endpoint.VchanDirect{Domid: 7, Port: "web"}
	vn   = endpoint.VchanNamed{Name: "vm-a", Port: "web"}
)

// pipe is a custom kind with none of the optional methods.
type pipe struct{ name string }

func (pipe) Kind() string     { return "pipe" }
func (p pipe) String() string { return "pipe://" + p.name }

// rich is a custom kind with all of them.
type rich struct{ port int }

func (rich) Kind() string                      { return "rich" }
func (r rich) String() string                  { return "rich://x" }
func (r rich) URI() string                     { return "rich://uri" }
func (r rich) Family() string                  { return "r" }
func (r rich) Validate() error                 { return errors.New("rich: bad") }
func (r rich) Bind(net.Addr) endpoint.Endpoint { return rich{port: 9} }

func TestURI(t *testing.T) {
	for _, tc := range []struct {
		ep   endpoint.Endpoint
		want string
	}{
		{tcp4, "tcp://192.0.2.1:443"},
		{tcp6, "tcp://[2001:db8::1]:443"},
		{sock, "unix:///run/app%20sock"},
		{vd, "vchan://7/web"},
		{vn, "vchan://vm-a/web"},
		{endpoint.TLS{ServerName: "example.com", Inner: tcp4}, "tls://192.0.2.1:443?sni=example.com"},
		{endpoint.TLS{ServerName: "192.0.2.1", Inner: tcp4}, "tls://192.0.2.1:443"},
		{endpoint.TLS{ServerName: "app", Inner: sock}, "tls+unix:///run/app%20sock?sni=app"},
		{endpoint.TLS{ServerName: "app", Inner: vd}, "tls+vchan://7/web?sni=app"},
		{endpoint.TLS{ServerName: "app", Inner: pipe{"p"}}, "tls://app@pipe://p"},
		{pipe{"p"}, "pipe://p"},
		{rich{}, "rich://uri"},
	} {
		assert.Equal(t, tc.want, endpoint.URI(tc.ep), "%s", tc.ep)
	}
}

func TestFamily(t *testing.T) {
	mapped := endpoint.TCP{Addr: netip.MustParseAddrPort("[::ffff:192.0.2.1]:80")}
	for _, tc := range []struct {
		ep   endpoint.Endpoint
		want string
	}{
		{tcp4, "4"}, {tcp6, "6"}, {mapped, "4"},
		{endpoint.TLS{ServerName: "x", Inner: tcp6}, "6"},
		{sock, "unix"}, {vd, "vchan"}, {vn, "vchan-name"},
		{pipe{}, "pipe"}, {endpoint.TLS{ServerName: "x", Inner: pipe{}}, "pipe"},
		{rich{}, "r"},
	} {
		assert.Equal(t, tc.want, endpoint.Family(tc.ep), "%s", tc.ep)
	}
}

func TestValidate(t *testing.T) {
	for _, ep := range []endpoint.Endpoint{tcp4, tcp6, sock, vd, vn, pipe{},
		endpoint.TLS{ServerName: "x", Inner: tcp4}, endpoint.VchanDirect{Domid: endpoint.MaxDomid, Port: "a_b-C9"}} {
		assert.NoError(t, endpoint.Validate(ep), "%s", ep)
	}
	for _, tc := range []struct {
		ep   endpoint.Endpoint
		want string
	}{
		{nil, "nil endpoint"},
		{endpoint.TCP{}, "invalid IP address"},
		{endpoint.TCP{Addr: netip.MustParseAddrPort("127.0.0.1:0")}, "port 0"},
		{endpoint.Unix{}, "without a socket path"},
		{endpoint.Unix{Path: "run/x"}, "not absolute"},
		{endpoint.Unix{Path: "@abstract"}, "not absolute"},
		{endpoint.Unix{Path: "/a\x00b"}, "NUL"},
		{endpoint.VchanDirect{Domid: -1, Port: "p"}, "out of range"},
		{endpoint.VchanDirect{Port: "p"}, "only valid to listen on"},
		{endpoint.VchanDirect{Domid: endpoint.MaxDomid + 1, Port: "p"}, "out of range"},
		{endpoint.VchanDirect{Domid: 1, Port: "a/b"}, "invalid vchan port"},
		{endpoint.VchanNamed{Port: "p"}, "empty vchan name"},
		{endpoint.VchanNamed{Name: "n"}, "invalid vchan port"},
		{endpoint.TLS{ServerName: "x"}, "without an inner endpoint"},
		{endpoint.TLS{ServerName: "x", Inner: endpoint.TLS{ServerName: "y", Inner: tcp4}}, "TLS over TLS"},
		{endpoint.TLS{ServerName: "x", Inner: endpoint.TCP{}}, "invalid IP address"},
	} {
		err := endpoint.Validate(tc.ep)
		if assert.Error(t, err, "%v", tc.ep) {
			assert.Contains(t, err.Error(), tc.want)
			assert.ErrorIs(t, err, endpoint.ErrInvalid)
		}
	}
	assert.EqualError(t, endpoint.Validate(rich{}), "rich: bad")
}

func TestBind(t *testing.T) {
	any0 := endpoint.TCP{Addr: netip.MustParseAddrPort("0.0.0.0:0")}
	lo0 := endpoint.TCP{Host: "localhost", Addr: netip.MustParseAddrPort("127.0.0.1:0")}
	got := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 4242}
	assert.Equal(t, endpoint.TCP{Addr: netip.MustParseAddrPort("127.0.0.1:4242")}, endpoint.Bind(any0, got))
	assert.Equal(t, endpoint.TCP{Host: "localhost", Addr: netip.MustParseAddrPort("127.0.0.1:4242")}, endpoint.Bind(lo0, got))
	tl := endpoint.TLS{ServerName: "x", Inner: lo0}
	assert.Equal(t, endpoint.TLS{ServerName: "x", Inner: endpoint.Bind(lo0, got)}, endpoint.Bind(tl, got))
	// An address the kind does not know leaves it alone.
	assert.Equal(t, lo0, endpoint.Bind(lo0, &net.UnixAddr{Name: "/x", Net: "unix"}))
	assert.Equal(t, vd, endpoint.Bind(vd, got))
	assert.Equal(t, endpoint.VchanDirect{Domid: 12, Port: "web"}, endpoint.Bind(vd, domainAddr(12)))
	assert.Equal(t, pipe{"p"}, endpoint.Bind(pipe{"p"}, got))
	assert.Equal(t, rich{port: 9}, endpoint.Bind(rich{}, got))
	assert.Equal(t, lo0, endpoint.Bind(lo0, nil))
}

type domainAddr int

func (domainAddr) Network() string { return "vchan" }
func (domainAddr) String() string  { return "vchan" }
func (d domainAddr) Domain() int   { return int(d) }

func TestUnwrap(t *testing.T) {
	tl := endpoint.TLS{ServerName: "x", Inner: sock}
	assert.Equal(t, endpoint.Endpoint(sock), endpoint.Unwrap(tl))
	assert.Nil(t, endpoint.Unwrap(sock))
	assert.Equal(t, endpoint.Endpoint(sock), endpoint.Innermost(tl))
	assert.Equal(t, endpoint.Endpoint(sock), endpoint.Innermost(sock))
}

func TestJSON(t *testing.T) {
	b, err := json.Marshal([]endpoint.Endpoint{tcp4, sock, vd, vn, endpoint.TLS{ServerName: "example.com", Inner: tcp4}})
	require.NoError(t, err)
	assert.JSONEq(t, `[
		{"transport":"tcp","address":"192.0.2.1:443","host":"example.com"},
		{"transport":"unix","address":"/run/app sock"},
		{"transport":"vchan","address":"7/web"},
		{"transport":"vchan-name","address":"vm-a/web"},
		{"transport":"tls","address":"192.0.2.1:443","server_name":"example.com",
		 "inner":{"transport":"tcp","address":"192.0.2.1:443","host":"example.com"}}]`, string(b))
}

func TestJSONCustomKind(t *testing.T) {
	b, err := endpoint.MarshalJSON(endpoint.TLS{ServerName: "n", Inner: pipe{"p"}})
	require.NoError(t, err)
	assert.JSONEq(t, `{"transport":"tls","address":"pipe://p","server_name":"n",
		"inner":{"transport":"pipe","address":"pipe://p"}}`, string(b))
}

func TestSchemes(t *testing.T) {
	var names []string
	for _, s := range endpoint.TransportSchemes() {
		names = append(names, s.Name)
		got, ok := endpoint.LookupScheme(s.Name)
		assert.True(t, ok)
		assert.Equal(t, s, got)
	}
	assert.Equal(t, []string{"tcp", "tls", "unix", "tls+unix", "vchan", "tls+vchan"}, names)
	_, ok := endpoint.LookupScheme("https")
	assert.False(t, ok)
}

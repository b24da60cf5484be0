package conduit

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/conduit-go/conduit/endpoint"
	"github.com/conduit-go/conduit/resolver"
	"github.com/conduit-go/conduit/resolver/dnsstub"
	"github.com/conduit-go/conduit/vchan"
)

// TestErrorMessagesSayThingsOnce: an error is one line with one package
// prefix, names its URI once, and keeps the cause.
func TestErrorMessagesSayThingsOnce(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	closed := fmt.Sprintf("tcp://%s", l.Addr())
	l.Close()

	// A DNS server that is not there: a closed UDP port on loopback.
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	require.NoError(t, err)
	ns := pc.LocalAddr().(*net.UDPAddr).AddrPort()
	pc.Close()
	hosts := filepath.Join(t.TempDir(), "hosts")
	require.NoError(t, os.WriteFile(hosts, nil, 0o600))
	res, err := resolver.New(&resolver.Config{HostsFile: hosts,
		DNS: &dnsstub.Config{Nameservers: []netip.AddrPort{ns}, Timeout: 200 * time.Millisecond}})
	require.NoError(t, err)
	defer res.Close()

	c := New(&Config{Resolver: res, Vchan: &vchan.Config{Dir: t.TempDir()}})
	defer c.Close()
	for _, tc := range []struct {
		uri  string
		want string // the whole message, or "" to check only its shape
	}{
		{closed, "conduit: dial " + closed + ": connection refused"},
		{"tcp://127.0.0.1:99999", "conduit: dial tcp://127.0.0.1:99999: malformed URI: port 99999 out of range (0-65535)"},
		{"vchan://6/echo", "conduit: dial vchan://6/echo: connection refused"},
		{"tcp://nosuch.test:80", ""},
	} {
		t.Run(tc.uri, func(t *testing.T) {
			_, err := c.Dial(testCtx(t), tc.uri)
			require.Error(t, err)
			msg := err.Error()
			if tc.want != "" {
				assert.Equal(t, tc.want, msg)
			}
			assert.NotContains(t, msg, "\n")
			assert.Equal(t, 1, strings.Count(msg, tc.uri), "the URI once: %s", msg)
			assert.Equal(t, 1, strings.Count(msg, "conduit: "), msg)
			cause := strings.TrimPrefix(msg, "conduit: dial "+tc.uri+": ")
			require.NotEqual(t, msg, cause, "the message starts with the operation and the URI")
			for _, p := range []string{"resolver: ", "tcpflow: ", "vchan: ", "dns: "} {
				assert.NotContains(t, msg, ": "+p, "no stacked prefix")
				assert.False(t, strings.HasPrefix(cause, p), "no stacked prefix: %s", msg)
			}
		})
	}
	_, err = c.Dial(testCtx(t), closed)
	assert.ErrorIs(t, err, ErrRefused, "the layers are still there for errors.Is")
	_, err = c.Dial(testCtx(t), "tcp://127.0.0.1:99999")
	assert.ErrorIs(t, err, resolver.ErrMalformedURI)
	var ue *resolver.URIError
	assert.ErrorAs(t, err, &ue)
	_, err = c.Dial(testCtx(t), "vchan://6/echo")
	assert.ErrorIs(t, err, vchan.ErrRefused)
}

// TestAttemptsNameEachEndpointOnce: several failed attempts list each
// endpoint with its cause, the URI once.
func TestAttemptsNameEachEndpointOnce(t *testing.T) {
	uri := "tcp://h.test:7"
	e := &OpError{Op: "dial", URI: uri}
	var errs []error
	for _, a := range []string{"[::1]:7", "127.0.0.1:7"} {
		ep := endpoint.TCP{Addr: netip.MustParseAddrPort(a), Host: "h.test"}
		errs = append(errs, &OpError{Op: "dial", URI: uri, Endpoint: ep,
			Err: &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", fmt.Errorf("connection refused"))}})
	}
	e.Err = combineDialErrors(uri, errs).(*OpError).Err
	msg := e.Error()
	assert.Equal(t, "conduit: dial tcp://h.test:7: all 2 attempts failed: tcp://h.test=[::1]:7: connect: connection refused; tcp://h.test=127.0.0.1:7: connect: connection refused", msg)
}

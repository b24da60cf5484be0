package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/conduit-go/conduit/endpoint"
	"github.com/conduit-go/conduit/internal/testutil"
)

func TestMain(m *testing.M) {
	// The command honours the proxy variables, as curl does: the tests
	// dial loopback directly unless they set them.
	for _, v := range []string{"HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "all_proxy", "no_proxy"} {
		os.Unsetenv(v)
	}
	code := testutil.RunNoLeaks(m)
	if binPath != "" {
		os.RemoveAll(filepath.Dir(binPath))
	}
	os.Exit(code)
}

func runCmd(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var out, errb bytes.Buffer
	code = run(ctx, args, strings.NewReader(""), &out, &errb)
	return code, out.String(), errb.String()
}

func TestDemoEveryTransportWorks(t *testing.T) {
	code, out, errOut := runCmd(t, "demo", "--size", "100000")
	require.Equal(t, 0, code, "stdout:\n%s\nstderr:\n%s", out, errOut)
	for _, transport := range []string{"tcp ", "unix ", "vchan ", "vchan-name ", "tls ", "tls+unix ", "tls+vchan ", "srv ", "https+srv ", "tcp-direct "} {
		assert.Contains(t, out, "\n"+transport, "the table has a %q row", transport)
	}
	assert.NotContains(t, out, "FAILED")
	assert.Regexp(t, `all \d+ transports work`, out)
}

func TestResolve(t *testing.T) {
	for _, tc := range []struct {
		args []string
		code int
		out  string // a line of standard output, or a fragment of standard error
	}{
		{[]string{"resolve", "tcp://127.0.0.1:8080"}, 0, "tcp://127.0.0.1:8080\n"},
		{[]string{"resolve", "tls://[::1]:443?sni=example.test"}, 0, "tls://example.test@tcp://[::1]:443\n"},
		{[]string{"resolve", "unix:///run/app.sock"}, 0, "unix:///run/app.sock\n"},
		{[]string{"resolve", "bogus://x"}, 2, `conduit: resolve bogus://x`},
		{[]string{"resolve", "tcp://127.0.0.1:99999"}, 2, "99999"},
		{[]string{"resolve"}, 2, "conduit: resolve: missing URI (see conduit resolve --help)"},
		{[]string{"nosuchcommand"}, 2, `unknown command "nosuchcommand"`},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			code, out, errOut := runCmd(t, tc.args...)
			require.Equal(t, tc.code, code, "stderr: %s", errOut)
			if code == 0 {
				require.Equal(t, tc.out, out)
				return
			}
			require.Contains(t, errOut, tc.out)
			if strings.HasPrefix(tc.out, "conduit:") {
				require.NotContains(t, errOut, "conduit: conduit:")
			}
		})
	}
}

func TestResolveJSON(t *testing.T) {
	code, out, errOut := runCmd(t, "resolve", "--json", "tls://127.0.0.1:8443?sni=api.test")
	require.Equal(t, 0, code, errOut)
	var eps []map[string]any
	require.NoError(t, json.Unmarshal([]byte(out), &eps))
	require.Len(t, eps, 1)
	assert.Equal(t, "tls", eps[0]["transport"])
	assert.Equal(t, "api.test", eps[0]["server_name"])
	assert.Equal(t, "127.0.0.1:8443", eps[0]["address"])
	assert.Equal(t, "tcp", eps[0]["inner"].(map[string]any)["transport"])
}

func TestPrintEndpointsSVC(t *testing.T) {
	var b bytes.Buffer
	ep := endpoint.TLS{ServerName: "www.test", Inner: endpoint.TCP{Host: "www.test", Addr: netip.MustParseAddrPort("127.0.0.1:443")},
		SVC: &endpoint.SVCParams{ALPN: []string{"h2", "http/1.1"}, ECH: []byte{0}}}
	require.NoError(t, printEndpoints(&b, []endpoint.Endpoint{ep}, false))
	assert.Equal(t, "tls://www.test@tcp://www.test=127.0.0.1:443  (alpn=h2,http/1.1 ech)\n", b.String())
}

package resolver

import (
	"context"
	"os"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestParseServices(t *testing.T) {
	data, err := os.ReadFile("testdata/services")
	require.NoError(t, err)
	require.Equal(t, map[string]Service{
		"tcpmux":      {Port: 1},
		"gopher":      {Port: 70},
		"https":       {Port: 8443, TLS: true},
		"ftps":        {Port: 990, TLS: true},
		"submissions": {Port: 465, TLS: true},
		"ssmtp":       {Port: 465},
		"smtps-alt":   {Port: 465},
	}, parseServices(data))
}

func TestServicesFileInTheResolver(t *testing.T) {
	r, err := New(&Config{HostsFile: "-", ServicesFile: "testdata/services",
		Services: map[string]Service{"gopher": {Port: 7070}}})
	require.NoError(t, err)
	defer r.Close()
	for uri, want := range map[string]string{
		"ftps://192.0.2.1":   "tls://192.0.2.1@tcp://192.0.2.1:990",
		"https://192.0.2.1":  "tls://192.0.2.1@tcp://192.0.2.1:443", // built-in wins over the file
		"gopher://192.0.2.1": "tcp://192.0.2.1:7070",                // Config.Services wins over both
		"tcpmux://192.0.2.1": "tcp://192.0.2.1:1",
	} {
		eps, err := r.Resolve(context.Background(), uri)
		require.NoError(t, err, uri)
		require.Equal(t, want, eps[0].String(), uri)
	}
	_, err = New(&Config{HostsFile: "-", ServicesFile: "testdata"}) // a directory
	require.Error(t, err)
	r2, err := New(&Config{HostsFile: "-", ServicesFile: "testdata/no-such-file"})
	require.NoError(t, err, "a missing services file is no error")
	r2.Close()
}

func FuzzParseServices(f *testing.F) {
	if data, err := os.ReadFile("testdata/services"); err == nil {
		f.Add(data)
	}
	f.Add([]byte("a 1/tcp b c\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		for name, svc := range parseServices(data) {
			if svc.Port == 0 || !validScheme(name) {
				t.Fatalf("bad entry %q: %+v", name, svc)
			}
		}
	})
}

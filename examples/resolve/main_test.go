package main

import (
	"bytes"
	"context"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestRun(t *testing.T) {
	var out bytes.Buffer
	require.NoError(t, run(context.Background(), &out))
	require.Equal(t, `tcp://192.0.2.10:8080
  tcp        tcp://192.0.2.10:8080
tcp://api.internal:9000
  tcp        tcp://api.internal=10.0.0.7:9000
  tcp        tcp://api.internal=[fd00::7]:9000
https://api.internal
  tls        tls://api.internal@tcp://api.internal=10.0.0.7:443
  tls        tls://api.internal@tcp://api.internal=[fd00::7]:443
tls+unix:///run/app.sock?sni=app.internal
  tls        tls://app.internal@unix:///run/app.sock
vchan://4/web
  vchan      vchan://4/web
`, out.String()[:len(out.String())-len(lastLine(out.String()))])
	require.Contains(t, lastLine(out.String()), "99999")
}

func lastLine(s string) string {
	i := bytes.LastIndexByte([]byte(s[:len(s)-1]), '\n')
	return s[i+1:]
}

package main

import (
	"bytes"
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/conduit-go/conduit/internal/testutil"
)

func TestMain(m *testing.M) { testutil.VerifyNoLeaks(m) }

func TestRun(t *testing.T) {
	var out bytes.Buffer
	require.NoError(t, run(context.Background(), t.TempDir(), &out))
	require.Equal(t, "endpoint: [unix socks5h → 127.0.0.1:PORT http → 127.0.0.1:PORT]\n"+
		"echo: hello through two proxies\n", out.String())
}

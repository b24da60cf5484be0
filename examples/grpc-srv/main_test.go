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
	require.NoError(t, run(context.Background(), &out))
	require.Equal(t, `400 RPCs: alpha 75%, beta 25%, gamma 0%
alpha and beta stopped, 100 RPCs: alpha 0%, beta 0%, gamma 100%
`, out.String())
}

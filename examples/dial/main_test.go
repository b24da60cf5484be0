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
	require.Regexp(t, `^connected to 127\.0\.0\.1:\d+
echo: ping over vectors
refused: true
message names the URI: true
$`, out.String())
}

package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestRatios(t *testing.T) {
	in := `goos: linux
BenchmarkBulk/ours-2     100   1000 ns/op   2000.00 MB/s
BenchmarkBulk/raw-2      100   2000 ns/op   1000.00 MB/s
BenchmarkBulk/ours-2     100   1000 ns/op   3000.00 MB/s
BenchmarkBulk/raw-2      100   2000 ns/op   1000.00 MB/s
BenchmarkBulk/ours-2     100   1000 ns/op   2500.00 MB/s
BenchmarkBulk/raw-2      100   2000 ns/op   1000.00 MB/s
BenchmarkPing/ours       10    50 ns/op     900 rt/s    2 allocs/op
BenchmarkPing/peer       10    25 ns/op     1800 rt/s   0 allocs/op
BenchmarkSolo-2          10    5 ns/op
PASS
`
	var out bytes.Buffer
	require.NoError(t, run(strings.NewReader(in), &out))
	require.Equal(t, "BenchmarkBulk: ours vs raw: MB/s 2.500 ns/op 2.000\n"+
		"BenchmarkPing: ours vs peer: ns/op 0.500 rt/s 0.500\n", out.String())
}

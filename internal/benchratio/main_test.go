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
	require.NoError(t, run(strings.NewReader(in), &out, false))
	require.Equal(t, "BenchmarkBulk: ours vs raw: MB/s 2.500 ns/op 2.000\n"+
		"BenchmarkPing: ours vs peer: ns/op 0.500 rt/s 0.500\n", out.String())
}

func TestCounts(t *testing.T) {
	in := `BenchmarkWire/x/tcp=ours-2    3   1000 ns/op   4.00 MB/s   300 retrans/op   0 rto/op   2 dsack/op   0 qdrops/op   10 B/op   1 allocs/op
BenchmarkWire/x/tcp=linux-2   3   2000 ns/op   2.00 MB/s   100 retrans/op   3 rto/op   0 dsack/op   0 qdrops/op   20 B/op   2 allocs/op
BenchmarkWire/x/tcp=ours-2    3   1000 ns/op   4.00 MB/s   200 retrans/op   0 rto/op   2 dsack/op   0 qdrops/op   10 B/op   1 allocs/op
BenchmarkWire/x/tcp=linux-2   3   2000 ns/op   2.00 MB/s   100 retrans/op   5 rto/op   0 dsack/op   0 qdrops/op   20 B/op   2 allocs/op
`
	var out bytes.Buffer
	require.NoError(t, run(strings.NewReader(in), &out, true))
	require.Equal(t, "BenchmarkWire/x: tcp=ours vs tcp=linux: MB/s 2.000 dsack/op inf ns/op 2.000 retrans/op 2.500 rto/op 0.000\n", out.String())
	out.Reset()
	require.NoError(t, run(strings.NewReader(in), &out, false))
	require.Equal(t, "BenchmarkWire/x: tcp=ours vs tcp=linux: MB/s 2.000 ns/op 2.000\n", out.String())
}

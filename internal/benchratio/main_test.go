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
	require.NoError(t, run(strings.NewReader(in), &out, options{}))
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
	require.NoError(t, run(strings.NewReader(in), &out, options{counts: true}))
	require.Equal(t, "BenchmarkWire/x: tcp=ours vs tcp=linux: MB/s 2.000 dsack/op inf ns/op 2.000 retrans/op 2.500 rto/op 0.000\n", out.String())
	out.Reset()
	require.NoError(t, run(strings.NewReader(in), &out, options{}))
	require.Equal(t, "BenchmarkWire/x: tcp=ours vs tcp=linux: MB/s 2.000 ns/op 2.000\n", out.String())
}

func TestPairedCI(t *testing.T) {
	// Three rounds: retrans/op's ratios are e^0.1, e^-0.1 and 1, so the
	// geometric mean is 1 and the interval 1 ± t(2)·0.1/√3 in logarithms;
	// ns/op's are 2, 2.2 and 1.8 (the peer slower); rto/op has a zero
	// in a round, so it falls back to the medians' ratio.
	in := `BenchmarkWire/x/tcp=ours-2    10   1000 ns/op   110.517 retrans/op   0 rto/op
BenchmarkWire/x/tcp=linux-2   10   2000 ns/op   100 retrans/op   1 rto/op
BenchmarkWire/x/tcp=ours-2    10   1000 ns/op   90.484 retrans/op   2 rto/op
BenchmarkWire/x/tcp=linux-2   10   2200 ns/op   100 retrans/op   1 rto/op
BenchmarkWire/x/tcp=ours-2    10   1000 ns/op   100 retrans/op   1 rto/op
BenchmarkWire/x/tcp=linux-2   10   1800 ns/op   100 retrans/op   2 rto/op
`
	var out bytes.Buffer
	require.NoError(t, run(strings.NewReader(in), &out, options{counts: true, ci: true}))
	require.Equal(t, "BenchmarkWire/x: tcp=ours vs tcp=linux: ns/op 1.993 [1.553–2.558] retrans/op 1.000 [0.780–1.282] rto/op 1.000\n", out.String())

	// Two rounds are too few for an interval: the medians' ratio.
	out.Reset()
	two := strings.Join(strings.Split(in, "\n")[:4], "\n") + "\n"
	require.NoError(t, run(strings.NewReader(two), &out, options{counts: true, ci: true}))
	require.Equal(t, "BenchmarkWire/x: tcp=ours vs tcp=linux: ns/op 2.100 retrans/op 1.005 rto/op 1.000\n", out.String())
}

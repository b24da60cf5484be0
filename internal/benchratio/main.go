// Command benchratio reads `go test -bench` output and prints, for every
// benchmark with sub-benchmarks, the ratio of the first sub-benchmark
// (ours) to each of its siblings (the peers measured in the same run).
//
//	go test -run '^$' -bench . -count 5 ./tcpflow | go run ./internal/benchratio
//
// With -count > 1 the median of each metric is used. For a rate (MB/s or
// any unit ending in "/s") the ratio is ours/peer; for ns/op it is
// peer/ours, so above 1 always means ours is faster.
//
// With -counts it also prints ours/peer for every other unit but B/op
// and allocs/op, such as the retrans/op of a TCP comparison: there,
// below 1 means ours has fewer. A unit ours has none of prints 0, one
// only ours has prints inf.
//
// With -ci each ratio is instead the geometric mean of the rounds'
// ratios, the i-th result of ours taken with the i-th of the peer (the
// pairs an interleaved loop or -count produces: each round ran both
// under the same conditions), followed by its 95 % confidence interval
// (Student's t on the logarithms of the ratios):
//
//	retrans/op 1.049 [0.981–1.122]
//
// An interval that holds 1 does not separate ours from the peer. A
// unit with fewer than three rounds, unequal counts or a zero in a round
// prints the ratio of the medians, as without -ci.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"sort"
	"strconv"
	"strings"
)

type sample map[string][]float64 // unit → values

func main() {
	var o options
	flag.BoolVar(&o.counts, "counts", false, "also print ours/peer for units that are not rates (counts such as retrans/op)")
	flag.BoolVar(&o.ci, "ci", false, "print the geometric mean of the paired rounds' ratios and its 95 % confidence interval")
	flag.Parse()
	if err := run(os.Stdin, os.Stdout, o); err != nil {
		fmt.Fprintln(os.Stderr, "benchratio:", err)
		os.Exit(1)
	}
}

// options are the command's flags.
type options struct {
	counts bool // ratios of counts as well as of rates
	ci     bool // paired geometric means with confidence intervals
}

func run(r io.Reader, w io.Writer, o options) error {
	results := map[string]sample{}
	var order []string
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		name, metrics, ok := parseLine(sc.Text())
		if !ok {
			continue
		}
		if _, seen := results[name]; !seen {
			results[name] = sample{}
			order = append(order, name)
		}
		for unit, v := range metrics {
			results[name][unit] = append(results[name][unit], v)
		}
	}
	if err := sc.Err(); err != nil {
		return err
	}
	groups := map[string][]string{}
	var parents []string
	for _, name := range order {
		i := strings.LastIndex(name, "/")
		if i < 0 {
			continue
		}
		parent := name[:i]
		if _, ok := groups[parent]; !ok {
			parents = append(parents, parent)
		}
		groups[parent] = append(groups[parent], name)
	}
	for _, parent := range parents {
		subs := groups[parent]
		if len(subs) < 2 {
			continue
		}
		ours := results[subs[0]]
		for _, peer := range subs[1:] {
			fmt.Fprintf(w, "%s: %s vs %s:", parent, leaf(subs[0]), leaf(peer))
			for _, unit := range units(ours) {
				pv, ok := results[peer][unit]
				if !ok {
					continue
				}
				ov := ours[unit]
				om, pm := median(ov), median(pv)
				rate := unit == "ns/op" || strings.HasSuffix(unit, "/s")
				if !rate && (!o.counts || unit == "B/op" || unit == "allocs/op" || om == 0 && pm == 0) {
					continue
				}
				if rate && (om == 0 || pm == 0) {
					continue
				}
				if unit == "ns/op" { // faster is above 1, as for a rate
					ov, pv, om, pm = pv, ov, pm, om
				}
				if o.ci {
					if gm, lo, hi, ok := pairedRatio(ov, pv); ok {
						fmt.Fprintf(w, " %s %.3f [%.3f–%.3f]", unit, gm, lo, hi)
						continue
					}
				}
				fmt.Fprintf(w, " %s %s", unit, countRatio(om, pm))
			}
			fmt.Fprintln(w)
		}
	}
	return nil
}

// pairedRatio returns the geometric mean of ours[i]/peer[i] and its
// 95 % confidence interval; ok is false if there are fewer than three
// pairs, the counts differ or a value is not positive.
func pairedRatio(ours, peer []float64) (gm, lo, hi float64, ok bool) {
	n := len(ours)
	if n < 3 || n != len(peer) {
		return 0, 0, 0, false
	}
	logs := make([]float64, n)
	var mean float64
	for i := range ours {
		if ours[i] <= 0 || peer[i] <= 0 {
			return 0, 0, 0, false
		}
		logs[i] = math.Log(ours[i] / peer[i])
		mean += logs[i]
	}
	mean /= float64(n)
	var ss float64
	for _, l := range logs {
		ss += (l - mean) * (l - mean)
	}
	half := tQuantile95(n-1) * math.Sqrt(ss/float64(n-1)/float64(n))
	return math.Exp(mean), math.Exp(mean - half), math.Exp(mean + half), true
}

// tQuantile95 is the two-sided 95 % quantile of Student's t with df
// degrees of freedom (above 30, the nearest tabulated value at or below
// df's, which errs wide).
func tQuantile95(df int) float64 {
	table := [...]float64{12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
		2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
		2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042}
	switch {
	case df <= len(table):
		return table[df-1]
	case df < 40:
		return table[len(table)-1]
	case df < 60:
		return 2.021
	case df < 120:
		return 2.000
	default:
		return 1.980
	}
}

// countRatio formats ours/peer, not both zero.
func countRatio(o, p float64) string {
	if p == 0 {
		return "inf"
	}
	return strconv.FormatFloat(o/p, 'f', 3, 64)
}

func leaf(name string) string { return name[strings.LastIndex(name, "/")+1:] }

func units(s sample) []string {
	var us []string
	for u := range s {
		us = append(us, u)
	}
	sort.Strings(us)
	return us
}

// parseLine parses "BenchmarkX/y-2  1000  123 ns/op  45.6 MB/s  7 rt/s".
func parseLine(line string) (string, map[string]float64, bool) {
	f := strings.Fields(line)
	if len(f) < 4 || !strings.HasPrefix(f[0], "Benchmark") {
		return "", nil, false
	}
	if _, err := strconv.Atoi(f[1]); err != nil {
		return "", nil, false
	}
	name := f[0]
	if i := strings.LastIndex(name, "-"); i > 0 {
		if _, err := strconv.Atoi(name[i+1:]); err == nil {
			name = name[:i]
		}
	}
	m := map[string]float64{}
	for i := 2; i+1 < len(f); i += 2 {
		v, err := strconv.ParseFloat(f[i], 64)
		if err != nil {
			return "", nil, false
		}
		m[f[i+1]] = v
	}
	return name, m, true
}

func median(v []float64) float64 {
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

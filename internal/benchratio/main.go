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
package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
)

type sample map[string][]float64 // unit → values

func main() {
	counts := flag.Bool("counts", false, "also print ours/peer for units that are not rates (counts such as retrans/op)")
	flag.Parse()
	if err := run(os.Stdin, os.Stdout, *counts); err != nil {
		fmt.Fprintln(os.Stderr, "benchratio:", err)
		os.Exit(1)
	}
}

func run(r io.Reader, w io.Writer, counts bool) error {
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
				o, p := median(ours[unit]), median(pv)
				rate := unit == "ns/op" || strings.HasSuffix(unit, "/s")
				if !rate {
					if counts && unit != "B/op" && unit != "allocs/op" && (o != 0 || p != 0) {
						fmt.Fprintf(w, " %s %s", unit, countRatio(o, p))
					}
					continue
				}
				if o == 0 || p == 0 {
					continue
				}
				ratio := o / p
				if unit == "ns/op" {
					ratio = p / o
				}
				fmt.Fprintf(w, " %s %.3f", unit, ratio)
			}
			fmt.Fprintln(w)
		}
	}
	return nil
}

// countRatio formats ours/peer for a count, not both zero.
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

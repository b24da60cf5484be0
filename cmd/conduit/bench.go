package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/conduit-go/conduit/conduit"
)

// benchResult is the outcome of conduit bench (--json prints it).
type benchResult struct {
	URI            string  `json:"uri"`
	Seconds        float64 `json:"seconds"`
	BytesEchoed    int64   `json:"bytes_echoed"`
	ThroughputMBps float64 `json:"throughput_mb_per_s"`
	RoundTrips     int     `json:"round_trips"`
	LatencyP50us   float64 `json:"latency_p50_us"`
	LatencyP90us   float64 `json:"latency_p90_us"`
	LatencyP99us   float64 `json:"latency_p99_us"`
	LatencyMaxus   float64 `json:"latency_max_us"`
}

func runBench(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var com common
	com.register(fs)
	duration := fs.Duration("duration", 3*time.Second, "how long each phase runs")
	size := fs.Int("size", 64<<10, "bytes per write in the throughput phase")
	msg := fs.Int("msg", 1, "bytes per message in the latency phase")
	asJSON := fs.Bool("json", false, "print the result as JSON")
	fs.Usage = func() {
		fmt.Fprintln(stderr, `usage: conduit bench [flags] URI

Measures an echo peer ("conduit listen --echo URI"): throughput (one flow
writing --size chunks for --duration while reading the echo back) and
round-trip latency percentiles (--msg byte messages, one at a time).

Examples:
  conduit listen --echo tcp://127.0.0.1:7000 &
  conduit bench tcp://127.0.0.1:7000
  conduit bench --json --duration 1s unix:///tmp/echo.sock

Flags:`)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return exitParse(err)
	}
	if fs.NArg() != 1 || *size < 1 || *msg < 1 || *duration <= 0 {
		fs.Usage()
		return 2
	}
	uri := fs.Arg(0)
	c, _, err := com.build()
	if err != nil {
		return fail(stderr, err)
	}
	defer func() { c.Close(); com.close() }()
	dial := func() (conduit.Flow, error) {
		dctx, cancel := context.WithTimeout(ctx, com.timeout)
		defer cancel()
		return c.Dial(traceContext(dctx, com.trace, stderr), uri)
	}
	res := benchResult{URI: uri, Seconds: duration.Seconds()}

	// Throughput.
	f, err := dial()
	if err != nil {
		return fail(stderr, err)
	}
	var echoed counter
	readDone := make(chan error, 1)
	go func() {
		_, err := io.Copy(countingWriter{io.Discard, &echoed}, f)
		readDone <- err
	}()
	buf := make([]byte, *size)
	start := time.Now()
	var werr error
	for time.Since(start) < *duration && ctx.Err() == nil {
		if _, werr = f.Write(buf); werr != nil {
			break
		}
	}
	if werr == nil {
		werr = f.CloseWrite()
	}
	rerr := <-readDone
	elapsed := time.Since(start)
	f.Close()
	if werr != nil || rerr != nil {
		fmt.Fprintf(stderr, "conduit: bench %s: throughput phase failed after %d bytes echoed: %v\n", uri, echoed.n.Load(), plain(firstErr(werr, rerr)))
		return 1
	}
	res.BytesEchoed = echoed.n.Load()
	res.ThroughputMBps = float64(res.BytesEchoed) / elapsed.Seconds() / 1e6

	// Latency.
	f, err = dial()
	if err != nil {
		return fail(stderr, err)
	}
	defer f.Close()
	m := make([]byte, *msg)
	var rtts []time.Duration
	start = time.Now()
	for time.Since(start) < *duration && ctx.Err() == nil {
		t0 := time.Now()
		if _, err := writeNodelay(f, m); err != nil {
			return fail(stderr, err)
		}
		if _, err := io.ReadFull(f, m); err != nil {
			return fail(stderr, err)
		}
		rtts = append(rtts, time.Since(t0))
	}
	slices.Sort(rtts)
	pct := func(p float64) float64 {
		if len(rtts) == 0 {
			return 0
		}
		return float64(rtts[min(len(rtts)-1, int(p*float64(len(rtts))))].Nanoseconds()) / 1e3
	}
	res.RoundTrips = len(rtts)
	res.LatencyP50us, res.LatencyP90us, res.LatencyP99us = pct(0.50), pct(0.90), pct(0.99)
	if len(rtts) > 0 {
		res.LatencyMaxus = float64(rtts[len(rtts)-1].Nanoseconds()) / 1e3
	}

	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		enc.Encode(res)
		return 0
	}
	fmt.Fprintf(stdout, "%s\n  throughput  %.1f MB/s (%s echoed in %.2fs, %d-byte writes)\n  latency     p50 %.1fµs  p90 %.1fµs  p99 %.1fµs  max %.1fµs (%d round trips of %d bytes)\n",
		uri, res.ThroughputMBps, human(res.BytesEchoed), elapsed.Seconds(), *size,
		res.LatencyP50us, res.LatencyP90us, res.LatencyP99us, res.LatencyMaxus, res.RoundTrips, *msg)
	return 0
}

// writeNodelay pushes b at once when the flow can.
func writeNodelay(f conduit.Flow, b []byte) (int, error) {
	if nd, ok := f.(interface{ WriteNodelay([]byte) (int, error) }); ok {
		return nd.WriteNodelay(b)
	}
	return f.Write(b)
}

func firstErr(errs ...error) error {
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	return nil
}

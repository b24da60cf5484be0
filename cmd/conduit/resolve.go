package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"

	"github.com/conduit-go/conduit/resolver"
)

func runResolve(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("resolve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var com common
	com.register(fs)
	asJSON := fs.Bool("json", false, "print a JSON array of endpoint objects")
	fs.Usage = func() {
		fmt.Fprintln(stderr, `usage: conduit resolve [--json] [--timeout D] URI

Prints the endpoints URI resolves to, in dial order, one per line.

Examples:
  conduit resolve tcp://localhost:8080
  conduit resolve https://example.com
  conduit resolve --json tls+unix:///run/app.sock?sni=app
  conduit resolve --nameserver 127.0.0.1:5353 https+srv://svc.test

Flags:`)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return exitParse(err)
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return 2
	}
	c, _, err := com.build()
	if err != nil {
		return fail(stderr, err)
	}
	defer func() { c.Close(); com.close() }()
	ctx, cancel := context.WithTimeout(ctx, com.timeout)
	defer cancel()
	eps, err := c.Resolve(traceContext(ctx, com.trace, stderr), fs.Arg(0))
	if err != nil {
		return fail(stderr, err)
	}
	if *asJSON {
		out := make([]endpointJSON, len(eps))
		for i, ep := range eps {
			out[i] = toJSON(ep)
		}
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(out); err != nil {
			fmt.Fprintf(stderr, "conduit: %v\n", err)
			return 1
		}
		return 0
	}
	for _, ep := range eps {
		fmt.Fprintln(stdout, ep.String())
	}
	return 0
}

// endpointJSON is the --json form of an endpoint.
type endpointJSON struct {
	Transport  string        `json:"transport"`
	Address    string        `json:"address"`
	Host       string        `json:"host,omitempty"`
	ServerName string        `json:"server_name,omitempty"`
	Inner      *endpointJSON `json:"inner,omitempty"`
}

func toJSON(ep resolver.Endpoint) endpointJSON {
	switch e := ep.(type) {
	case resolver.TCP:
		return endpointJSON{Transport: e.Kind(), Address: e.Addr.String(), Host: e.Host}
	case resolver.Unix:
		return endpointJSON{Transport: e.Kind(), Address: e.Path}
	case resolver.VchanDirect:
		return endpointJSON{Transport: e.Kind(), Address: fmt.Sprintf("%d/%s", e.Domid, e.Port)}
	case resolver.VchanNamed:
		return endpointJSON{Transport: e.Kind(), Address: e.Name + "/" + e.Port}
	case resolver.TLS:
		inner := toJSON(e.Inner)
		return endpointJSON{Transport: e.Kind(), Address: inner.Address, ServerName: e.ServerName, Inner: &inner}
	}
	return endpointJSON{Transport: ep.Kind(), Address: ep.String()}
}

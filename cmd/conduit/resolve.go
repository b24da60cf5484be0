package main

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/conduit-go/conduit/resolver"
)

func runResolve(ctx context.Context, o *options, args []string, s *stdio) int {
	cmd := s.cmd
	c, _, err := o.build()
	if err != nil {
		return fail(s.log, cmd, err)
	}
	defer func() { c.Close(); o.close() }()
	ctx, cancel := o.withTimeout(ctx)
	defer cancel()
	eps, err := c.Resolve(o.traceContext(ctx, s.log), args[0])
	if err != nil {
		return fail(s.log, cmd, err)
	}
	if o.json {
		out := make([]endpointJSON, len(eps))
		for i, ep := range eps {
			out[i] = toJSON(ep)
		}
		enc := json.NewEncoder(s.out)
		enc.SetIndent("", "  ")
		if err := enc.Encode(out); err != nil {
			s.log.printf("conduit: resolve: %v\n", err)
			return 1
		}
		return 0
	}
	for _, ep := range eps {
		fmt.Fprintln(s.out, ep.String())
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

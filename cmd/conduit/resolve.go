package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"

	"github.com/conduit-go/conduit/endpoint"
)

func runResolve(ctx context.Context, o *options, args []string, s *stdio) int {
	cmd := s.cmd
	c, _, err := o.build("", args[0])
	if err != nil {
		return fail(s.log, cmd, err)
	}
	defer o.close()
	ctx, cancel := o.withTimeout(ctx)
	defer cancel()
	eps, err := c.Resolve(o.traceContext(ctx, s.log), args[0])
	if err != nil {
		return fail(s.log, cmd, err)
	}
	if err := printEndpoints(s.out, eps, o.json); err != nil {
		s.log.printf("conduit: resolve: %v\n", err)
		return 1
	}
	return 0
}

// printEndpoints writes eps to w one per line in their URI form, or as a
// JSON array of their JSON forms (endpoint.MarshalJSON): whatever their
// kind, built-in or a custom transport's.
func printEndpoints(w io.Writer, eps []endpoint.Endpoint, asJSON bool) error {
	if !asJSON {
		for _, ep := range eps {
			line := ep.String()
			if t, ok := ep.(endpoint.TLS); ok && t.SVC != nil {
				line += "  (" + t.SVC.String() + ")" // what an HTTPS record said
			}
			if _, err := fmt.Fprintln(w, line); err != nil {
				return err
			}
		}
		return nil
	}
	out := make([]json.RawMessage, len(eps))
	for i, ep := range eps {
		b, err := endpoint.MarshalJSON(ep)
		if err != nil {
			return err
		}
		out[i] = b
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}

package main

import (
	"context"
	"encoding/json"
	"fmt"

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
	if o.json {
		out := make([]json.RawMessage, len(eps))
		for i, ep := range eps {
			if out[i], err = endpoint.MarshalJSON(ep); err != nil {
				s.log.printf("conduit: resolve: %v\n", err)
				return 1
			}
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

package main

import (
	"context"
	"fmt"
)

func runDial(ctx context.Context, o *options, args []string, s *stdio) int {
	cmd := s.cmd
	uri := args[0]
	c, _, err := o.build("", uri)
	if err != nil {
		return fail(s.log, cmd, err)
	}
	defer o.close()

	dctx, cancel := o.withTimeout(ctx)
	f, err := c.Dial(o.traceContext(dctx, s.log), uri)
	cancel()
	if err != nil {
		if ctx.Err() != nil {
			s.log.printf("conduit: dial %s: interrupted\n", uri)
			return 1
		}
		return fail(s.log, cmd, err)
	}
	defer f.Close()
	if o.verbose > 0 {
		s.log.printf("connected %s -> %s\n", f.LocalAddr(), f.RemoteAddr())
	}

	t := &transfer{f: f, in: s.in, out: s.out, idle: o.idle}
	var e *execCmd
	if o.exec != "" {
		if e, err = startExec(ctx, o.exec, s.log); err != nil {
			return fail(s.log, cmd, err)
		}
	}
	var prog *progress
	if e == nil && showProgress(o.progress, s.out, s.err) {
		prog = startProgress(s.log, &t.sent, &t.received)
	}
	var res result
	var execErr error
	if e != nil {
		res, execErr = transferExec(ctx, t, e)
	} else {
		res = t.run(ctx)
	}
	prog.stop()
	code := 0
	if !res.clean() {
		s.log.printf("%s\n", cutShort("dial "+uri, t, res))
		code = 1
	}
	if execErr != nil {
		s.log.printf("conduit: dial %s: %v\n", uri, execErr)
		code = 1
	} else if e != nil && o.verbose > 0 {
		s.log.printf("exec %q: exit status 0\n", o.exec)
	}
	if code == 0 && o.verbose > 0 {
		s.log.printf("%s\n", fmt.Sprintf("done: %d bytes sent, %d received", t.sent.n.Load(), t.received.n.Load()))
	}
	return code
}

package main

import (
	"net/netip"

	"github.com/conduit-go/conduit/conduit"
	"github.com/conduit-go/conduit/tcpflow/link/channel"
	"github.com/conduit-go/conduit/tcpflow/stack"
)

// demoDirect builds two userspace TCP/IPv4 stacks joined by an in-memory
// link (no device, nothing leaves the process) and a Conduit on each:
// the server's stack is 10.255.0.1, the client's 10.255.0.2.
func demoDirect() (server, client *conduit.Conduit, closeAll func(), err error) {
	a, b := channel.NewPair(1500, channel.FaultOptions{})
	sa, err := stack.New(stack.Options{Addr: netip.MustParsePrefix("10.255.0.1/24"), Link: a})
	if err != nil {
		a.Close()
		b.Close()
		return nil, nil, nil, err
	}
	sb, err := stack.New(stack.Options{Addr: netip.MustParsePrefix("10.255.0.2/24"), Link: b})
	if err != nil {
		sa.Close()
		a.Close()
		b.Close()
		return nil, nil, nil, err
	}
	server = conduit.New(&conduit.Config{Stack: sa})
	client = conduit.New(&conduit.Config{Stack: sb})
	return server, client, func() {
		server.Close()
		client.Close()
		sa.Close()
		sb.Close()
		a.Close()
		b.Close()
	}, nil
}

package proxy

import (
	"context"
	"net"
)

// A DialFunc connects to target ("host:port", host an IP address or a
// name) for a Server.
type DialFunc func(ctx context.Context, target string) (net.Conn, error)

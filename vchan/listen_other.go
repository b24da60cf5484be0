//go:build !linux

package vchan

import (
	"context"
	"errors"
	"net"
)

// Listen is not supported on this platform.
func Listen(ctx context.Context, cfg *Config, port string) (*Listener, error) {
	return nil, opError("listen", &Addr{Port: port}, errors.ErrUnsupported)
}

// Listener is not supported on this platform.
type Listener struct{}

// Accept fails.
func (l *Listener) Accept() (net.Conn, error) { return nil, net.ErrClosed }

// AcceptVchan fails.
func (l *Listener) AcceptVchan() (*Conn, error) { return nil, net.ErrClosed }

// Close does nothing.
func (l *Listener) Close() error { return nil }

// Addr returns an empty address.
func (l *Listener) Addr() net.Addr { return &Addr{} }

// Domid returns 0.
func (l *Listener) Domid() int { return 0 }

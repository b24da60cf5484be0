//go:build !linux

package vchan

import (
	"context"
	"errors"
)

// Dial is not supported on this platform.
func Dial(ctx context.Context, cfg *Config, domid int, port string) (*Conn, error) {
	return nil, opError("dial", &Addr{Domid: domid, Port: port}, errors.ErrUnsupported)
}

// DialName is not supported on this platform.
func DialName(ctx context.Context, cfg *Config, name, port string) (*Conn, error) {
	return nil, opError("dial", &Addr{Name: name, Port: port}, errors.ErrUnsupported)
}

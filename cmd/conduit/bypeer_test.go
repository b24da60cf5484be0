package main

import (
	"errors"
	"fmt"
	"net"
	"os"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/conduit-go/conduit/tcpflow"
	"github.com/conduit-go/conduit/tlsflow"
	"github.com/conduit-go/conduit/vchan"
)

// TestByPeer pins which ends of a connection the logs call "cut by the
// peer": every transport's reset, a truncated stream, a peer's alert.
func TestByPeer(t *testing.T) {
	for _, err := range []error{
		tcpflow.ErrReset,
		&net.OpError{Op: "read", Net: "tcp", Err: os.NewSyscallError("read", syscall.ECONNRESET)},
		&net.OpError{Op: "write", Net: "unix", Err: os.NewSyscallError("write", syscall.EPIPE)},
		fmt.Errorf("read: %w", tlsflow.ErrTruncated),
		vchan.ErrPeerDied,
		vchan.ErrPeerClosed,
		tlsflow.ErrPeerAlert,
	} {
		assert.True(t, byPeer(err), "%v", err)
	}
	for _, err := range []error{net.ErrClosed, tcpflow.ErrRefused, os.ErrDeadlineExceeded, errors.New("other")} {
		assert.False(t, byPeer(err), "%v", err)
	}
}

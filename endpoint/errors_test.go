package endpoint_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/conduit-go/conduit/endpoint"
)

// timeoutFlag is an error that says whether it is a timeout, as a
// net.Error does.
type timeoutFlag bool

func (timeoutFlag) Error() string   { return "flagged" }
func (t timeoutFlag) Timeout() bool { return bool(t) }

// TestHasCause: each shared cause is recognised in the sentinels, wrapped
// at any depth, and in what the system and the standard library report
// for it (as Go's net package hands them on); nothing else is.
func TestHasCause(t *testing.T) {
	netErr := func(err error) error {
		return &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", err)}
	}
	causes := []error{endpoint.ErrRefused, endpoint.ErrTimeout, endpoint.ErrReset, net.ErrClosed}
	for _, tc := range []struct {
		name string
		err  error
		want error // the one cause it has, or nil
	}{
		{"refused", endpoint.ErrRefused, endpoint.ErrRefused},
		{"refused wrapped", fmt.Errorf("x: %w", endpoint.ErrRefused), endpoint.ErrRefused},
		{"ECONNREFUSED", netErr(syscall.ECONNREFUSED), endpoint.ErrRefused},
		{"reset", endpoint.ErrReset, endpoint.ErrReset},
		{"ECONNRESET", netErr(syscall.ECONNRESET), endpoint.ErrReset},
		{"EPIPE", &net.OpError{Op: "write", Err: os.NewSyscallError("write", syscall.EPIPE)}, endpoint.ErrReset},
		{"timeout", endpoint.ErrTimeout, endpoint.ErrTimeout},
		{"ETIMEDOUT", netErr(syscall.ETIMEDOUT), endpoint.ErrTimeout},
		{"context deadline", fmt.Errorf("dial: %w", context.DeadlineExceeded), endpoint.ErrTimeout},
		{"i/o deadline", &net.OpError{Op: "read", Err: os.ErrDeadlineExceeded}, endpoint.ErrTimeout},
		{"Timeout() true", fmt.Errorf("x: %w", timeoutFlag(true)), endpoint.ErrTimeout},
		// A layer that says it is no timeout hides no deadline below it.
		{"deadline under Timeout() false", errors.Join(timeoutFlag(false), context.DeadlineExceeded), endpoint.ErrTimeout},
		{"closed", &net.OpError{Op: "read", Err: net.ErrClosed}, net.ErrClosed},
		{"Timeout() false", timeoutFlag(false), nil},
		{"cancelled", context.Canceled, nil},
		{"ENOENT", netErr(syscall.ENOENT), nil},
		{"other", errors.New("connection refused"), nil}, // the words are not the cause
		{"nil", nil, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, c := range causes {
				assert.Equal(t, c == tc.want, endpoint.HasCause(tc.err, c), "HasCause(%v, %v)", tc.err, c)
			}
		})
	}
	// Any other target is errors.Is.
	assert.True(t, endpoint.HasCause(fmt.Errorf("x: %w", os.ErrNotExist), os.ErrNotExist))
	assert.False(t, endpoint.HasCause(netErr(syscall.ECONNREFUSED), os.ErrNotExist))
}

// TestErrTimeoutIsATimeout: the sentinel itself reports Timeout, so
// errors.As finds a timeout in an error that wraps it.
func TestErrTimeoutIsATimeout(t *testing.T) {
	var te interface{ Timeout() bool }
	assert.True(t, errors.As(fmt.Errorf("x: %w", endpoint.ErrTimeout), &te) && te.Timeout())
	assert.False(t, errors.As(endpoint.ErrRefused, &te))
	assert.False(t, errors.As(endpoint.ErrReset, &te))
}

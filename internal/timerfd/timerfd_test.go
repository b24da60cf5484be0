package timerfd

import (
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/conduit-go/conduit/internal/testutil"
)

func TestMain(m *testing.M) { testutil.VerifyNoLeaks(m) }

// TestWaker: an armed Waker calls its function; after Close, Arm does
// nothing, the function is not called and the goroutine is gone
// (TestMain checks).
func TestWaker(t *testing.T) {
	fired := make(chan struct{}, 4)
	w, err := New(func() { fired <- struct{}{} })
	if errors.Is(err, ErrUnsupported) {
		t.Skip(err)
	}
	require.NoError(t, err)
	w.Arm(time.Now().Add(time.Millisecond))
	select {
	case <-fired:
	case <-time.After(10 * time.Second):
		t.Fatal("not called")
	}
	w.Close()
	w.Arm(time.Now())
	w.Close()
	require.Empty(t, fired)
}

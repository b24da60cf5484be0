package vchan

import "time"

// backend is what an endpoint needs from its platform: the stand-ins for
// Xen's event channel and for the peer domain's liveness. The shared
// memory itself (the grant-mapped pages) is handed to newEndpoint as
// byte slices. Implementations: shmBackend (futexes on a shared mapping,
// between processes) and memBackend (one process, for tests).
type backend interface {
	// prepare returns a token for wait. Call it before the last check of
	// the condition to be waited for: a signal or kick after prepare
	// makes wait(tok, …) return at once.
	prepare() uint32
	// wait sleeps until the peer signals, kick is called, or d elapses.
	// It may return early for no reason.
	wait(tok uint32, d time.Duration)
	// signal notifies the peer (xenevtchn_notify).
	signal()
	// kick wakes this side's own waiters (close, deadline changes).
	kick()
	// peerAlive reports false once the peer's process is known to be gone.
	peerAlive() bool
	// release frees the mapping. It is called once, when no goroutine
	// touches the shared memory any more.
	release() error
}

// shared is one side's view of the channel's memory. page is the control
// page (struct vchan_interface); left and right are the rings; ext holds
// two 32-bit words outside the libxenvchan layout that carry half-close
// (write shutdown) of the server and of the client, which libxenvchan
// lacks. All are 4-byte aligned.
type shared struct {
	page, left, right, ext []byte
}

const (
	extSrvShut = 0
	extCliShut = 4
	extSize    = 8
)

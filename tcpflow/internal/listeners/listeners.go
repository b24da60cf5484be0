// Package listeners holds the bookkeeping that every tcpflow backend
// needs behind the MirageOS listener API (Listen, Unlisten,
// SetListeners): the goroutines running a Listener's Process for each
// accepted connection, owned and waited for. The kernel backend
// (tcpflow.Kernel) and the userspace one (tcp.Protocol) share it.
//
// It does not import tcpflow (which imports it): the flow type is a
// type parameter, tcpflow.Flow in both backends.
package listeners

import "sync"

// Flow is what a Process is given: closable and usable as a map key.
type Flow interface {
	comparable
	Close() error
}

// Handlers runs one Process call per flow, each in a goroutine it owns,
// and closes the flow when its Process returns. Close closes the flows
// whose Process is still running and waits for every call to return.
//
// The zero value is ready to use. A Handlers is safe for concurrent use
// and must not be copied after first use.
type Handlers[F Flow] struct {
	mu      sync.Mutex
	closed  bool
	running map[F]struct{}
	wg      sync.WaitGroup
}

// Go runs process(f) in a new goroutine and closes f when it returns. It
// reports false, and runs nothing, once Close has been called: the caller
// then disposes of f.
func (h *Handlers[F]) Go(f F, process func(F)) bool {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return false
	}
	if h.running == nil {
		h.running = map[F]struct{}{}
	}
	h.running[f] = struct{}{}
	h.wg.Add(1)
	h.mu.Unlock()
	go h.run(f, process)
	return true
}

func (h *Handlers[F]) run(f F, process func(F)) {
	defer h.wg.Done()
	defer func() {
		h.mu.Lock()
		delete(h.running, f)
		h.mu.Unlock()
		f.Close()
	}()
	process(f)
}

// Close stops Go from starting more calls, closes the flows whose
// Process is still running (so that their reads fail) and waits for
// every Process call to return. Calling it again only waits.
func (h *Handlers[F]) Close() {
	h.mu.Lock()
	h.closed = true
	running := make([]F, 0, len(h.running))
	for f := range h.running {
		running = append(running, f)
	}
	h.mu.Unlock()
	for _, f := range running {
		f.Close()
	}
	h.wg.Wait()
}

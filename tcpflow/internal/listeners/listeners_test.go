package listeners

import (
	"sync"
	"testing"

	"github.com/conduit-go/conduit/internal/testutil"
)

func TestMain(m *testing.M) { testutil.VerifyNoLeaks(m) }

// flow is a Flow whose Close ends its Process (a read failing).
type flow struct {
	once   sync.Once
	closed chan struct{}
}

func newFlow() *flow { return &flow{closed: make(chan struct{})} }

func (f *flow) Close() error {
	f.once.Do(func() { close(f.closed) })
	return nil
}

func (f *flow) isClosed() bool {
	select {
	case <-f.closed:
		return true
	default:
		return false
	}
}

func TestHandlersClosesFlowWhenProcessReturns(t *testing.T) {
	var h Handlers[*flow]
	f := newFlow()
	done := make(chan struct{})
	if !h.Go(f, func(*flow) { close(done) }) {
		t.Fatal("Go refused before Close")
	}
	<-done
	h.Close() // waits for the goroutine, which closes f on its way out
	if !f.isClosed() {
		t.Fatal("flow still open after its Process returned")
	}
}

func TestHandlersCloseClosesRunningFlowsAndWaits(t *testing.T) {
	var h Handlers[*flow]
	const n = 3
	started := make(chan struct{}, n)
	returned := make(chan struct{}, n)
	flows := make([]*flow, n)
	for i := range flows {
		flows[i] = newFlow()
		h.Go(flows[i], func(f *flow) {
			started <- struct{}{}
			<-f.closed // blocks until Close closes the flow
			returned <- struct{}{}
		})
	}
	for range n {
		<-started
	}
	h.Close()
	if len(returned) != n {
		t.Fatalf("Close returned with %d of %d Process calls finished", len(returned), n)
	}
	for i, f := range flows {
		if !f.isClosed() {
			t.Errorf("flow %d not closed", i)
		}
	}
}

func TestHandlersGoAfterClose(t *testing.T) {
	var h Handlers[*flow]
	h.Close()
	f := newFlow()
	if h.Go(f, func(*flow) { t.Error("Process ran after Close") }) {
		t.Fatal("Go accepted a flow after Close")
	}
	if f.isClosed() {
		t.Fatal("Go closed a flow it refused: disposing of it is the caller's")
	}
	h.Close() // a second Close only waits
}

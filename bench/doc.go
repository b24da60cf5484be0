// Package bench compares conduit's userspace TCP/IPv4 stack
// (tcpflow/stack over tcpflow/link/channel) with gVisor's netstack
// (gvisor.dev/gvisor/pkg/tcpip) in one `go test -bench` run: two stacks
// of each kind joined by an in-memory link of the same MTU, with the
// same buffer sizes and, where asked, the same seeded packet loss.
//
// It is a module of its own so that the main module does not depend on
// gVisor. Everything is in the tests:
//
//	cd bench
//	go test -short ./...                                   # correctness
//	go test -run '^$' -bench . -benchtime 3s -count 3 | tee /tmp/bench.txt
//	go run github.com/conduit-go/conduit/internal/benchratio < /tmp/bench.txt
//
// See README.md for what is measured and with which settings.
package bench

package conduitgrpc_test

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	gresolver "google.golang.org/grpc/resolver"
	"google.golang.org/grpc/status"

	"github.com/conduit-go/conduit/clock"
	conduitgrpc "github.com/conduit-go/conduit/grpc"
	"github.com/conduit-go/conduit/internal/testutil"
)

func TestMain(m *testing.M) {
	conduitgrpc.RegisterBalancer() // before any channel, as gRPC asks
	testutil.VerifyNoLeaks(m)
}

// hangGuard bounds every wait of these tests: it is never a pass/fail
// threshold, only what stops a test that would otherwise hang.
const hangGuard = 60 * time.Second

// backend is a real gRPC server (grpc-go's, with its health service)
// that counts the unary RPCs it serves.
type backend struct {
	name string
	addr string // host:port
	n    atomic.Int64

	mu   sync.Mutex
	srv  *grpc.Server
	done chan struct{}
}

// startBackend starts a backend on addr ("127.0.0.1:0" for a free
// port); its server is stopped when the test ends.
func startBackend(t testing.TB, name, addr string, opts ...grpc.ServerOption) *backend {
	t.Helper()
	b := &backend{name: name}
	ln, err := net.Listen("tcp", addr)
	require.NoError(t, err)
	b.addr = ln.Addr().String()
	b.serve(ln, opts...)
	t.Cleanup(b.stop)
	return b
}

// serve serves the backend on ln.
func (b *backend) serve(ln net.Listener, opts ...grpc.ServerOption) {
	opts = append(opts, grpc.UnaryInterceptor(func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		b.n.Add(1)
		return h(ctx, req)
	}))
	srv := grpc.NewServer(opts...)
	healthpb.RegisterHealthServer(srv, health.NewServer())
	done := make(chan struct{})
	go func() {
		defer close(done)
		srv.Serve(ln)
	}()
	b.mu.Lock()
	b.srv, b.done = srv, done
	b.mu.Unlock()
}

// stop stops the server: its connections close at once.
func (b *backend) stop() {
	b.mu.Lock()
	srv, done := b.srv, b.done
	b.srv = nil
	b.mu.Unlock()
	if srv != nil {
		srv.Stop()
		<-done
	}
}

// restart serves the backend again on its address.
func (b *backend) restart(t testing.TB) {
	t.Helper()
	ln, err := net.Listen("tcp", b.addr)
	require.NoError(t, err)
	b.serve(ln)
}

func (b *backend) port() uint16 {
	return netip.MustParseAddrPort(b.addr).Port()
}

// check sends one health Check RPC on conn.
func check(ctx context.Context, conn *grpc.ClientConn, opts ...grpc.CallOption) error {
	ctx, cancel := context.WithTimeout(ctx, hangGuard)
	defer cancel()
	_, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{}, opts...)
	return err
}

// counts returns the RPCs each backend served.
func counts(bs ...*backend) map[string]int64 {
	m := make(map[string]int64, len(bs))
	for _, b := range bs {
		m[b.name] = b.n.Load()
	}
	return m
}

func resetCounts(bs ...*backend) {
	for _, b := range bs {
		b.n.Store(0)
	}
}

// rpcUntil sends RPCs until cond holds, failing the test at the hang
// guard. RPCs wait for a ready connection; those that fail as
// Unavailable (in flight on a connection to a server that stops) are
// tried again.
func rpcUntil(t testing.TB, conn *grpc.ClientConn, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(hangGuard)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("hang guard: %s did not happen", what)
		}
		err := check(context.Background(), conn, grpc.WaitForReady(true))
		if status.Code(err) != codes.Unavailable {
			require.NoError(t, err)
		}
	}
}

// knot is a Knot DNS server started by a test: authoritative for one
// zone, on a free loopback port, accepting dynamic updates (RFC 2136)
// from 127.0.0.1, which the test sends with knsupdate.
type knot struct {
	addr netip.AddrPort
	zone string
	proc *testutil.Process
}

// startKnot starts knotd serving zone (for example "svc.test") with the
// records given in zone-file syntax, relative to the zone, TTL 3 s.
func startKnot(t testing.TB, zone string, records ...string) *knot {
	t.Helper()
	path := testutil.RequirePeer(t, "knotd", "knot")
	testutil.RequirePeer(t, "knsupdate", "knot-dnsutils")
	dir := t.TempDir()
	zoneFile := filepath.Join(dir, zone+".zone")
	body := fmt.Sprintf("$ORIGIN %s.\n$TTL 3\n@ SOA ns admin 1 3600 900 604800 3\n@ NS ns\nns A 127.0.0.1\n%s\n",
		zone, strings.Join(records, "\n"))
	require.NoError(t, os.WriteFile(zoneFile, []byte(body), 0o644))
	for try := 0; try < 5; try++ {
		port := testutil.FreeUDPPort(t)
		conf := fmt.Sprintf(`server:
    rundir: "%[1]s"
    listen: 127.0.0.1@%[2]d
log:
  - target: stderr
    any: info
database:
    storage: "%[1]s"
acl:
  - id: local_update
    address: 127.0.0.1
    action: update
zone:
  - domain: %[3]s
    file: "%[4]s"
    acl: local_update
    zonefile-sync: -1
    zonefile-load: whole
    journal-content: none
`, dir, port, zone, zoneFile)
		confFile := filepath.Join(dir, "knot.conf")
		require.NoError(t, os.WriteFile(confFile, []byte(conf), 0o644))
		k := &knot{addr: netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), port), zone: zone}
		k.proc = testutil.StartProcess(t, path, "-c", confFile)
		if k.waitReady(t) {
			return k
		}
	}
	t.Fatal("could not start knotd")
	return nil
}

// waitReady waits for the server to answer the zone's SOA.
func (k *knot) waitReady(t testing.TB) bool {
	c := &dns.Client{Timeout: 200 * time.Millisecond}
	q := new(dns.Msg)
	q.SetQuestion(dns.Fqdn(k.zone), dns.TypeSOA)
	for deadline := time.Now().Add(hangGuard); time.Now().Before(deadline); {
		select {
		case <-k.proc.Exited():
			t.Logf("knotd exited (port taken?): %s", k.proc.Stderr())
			return false
		default:
		}
		if m, _, err := c.Exchange(q, k.addr.String()); err == nil && len(m.Answer) > 0 {
			return true
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("knotd did not answer: %s", k.proc.Stderr())
	return false
}

// update sends a dynamic update with knsupdate: lines such as
// "update add _grpc._tcp.svc.test. 3 SRV 10 60 5001 b1.svc.test.".
func (k *knot) update(t testing.TB, lines ...string) {
	t.Helper()
	script := fmt.Sprintf("server %s %d\nzone %s.\n%s\nsend\n", k.addr.Addr(), k.addr.Port(), k.zone, strings.Join(lines, "\n"))
	ctx, cancel := context.WithTimeout(context.Background(), hangGuard)
	defer cancel()
	cmd := exec.CommandContext(ctx, "knsupdate")
	cmd.Stdin = strings.NewReader(script)
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "knsupdate: %s\n%s", out, script)
}

// fakeClock is the resolver's clock and the DNS stub's: a refresh
// happens only when the test fires it, so the tests wait for no TTL and
// can check the delay each refresh asked for. Timers of realDelay (the
// SRV target deadline, a hang guard) run in real time.
type fakeClock struct {
	realDelay time.Duration

	mu      sync.Mutex
	now     time.Time
	pending []*fakeTimer
	added   chan struct{}
}

type fakeTimer struct {
	c *fakeClock
	d time.Duration
	f func()
}

var _ clock.Clock = (*fakeClock)(nil)

func newFakeClock(realDelay time.Duration) *fakeClock {
	return &fakeClock{realDelay: realDelay, now: time.Unix(1_800_000_000, 0), added: make(chan struct{}, 1)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) AfterFunc(d time.Duration, f func()) clock.Timer {
	if d == c.realDelay {
		return clock.Real().AfterFunc(d, f)
	}
	t := &fakeTimer{c: c, d: d, f: f}
	c.add(t)
	return t
}

func (c *fakeClock) add(t *fakeTimer) {
	c.mu.Lock()
	c.pending = append(c.pending, t)
	c.mu.Unlock()
	select {
	case c.added <- struct{}{}:
	default:
	}
}

func (t *fakeTimer) Stop() bool {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	for i, p := range t.c.pending {
		if p == t {
			t.c.pending = append(t.c.pending[:i], t.c.pending[i+1:]...)
			return true
		}
	}
	return false
}

func (t *fakeTimer) Reset(d time.Duration) bool {
	was := t.Stop()
	t.d = d
	t.c.add(t)
	return was
}

// next waits for a timer to be pending and returns the longest delay
// pending.
func (c *fakeClock) next(t testing.TB) time.Duration {
	t.Helper()
	deadline := time.After(hangGuard)
	for {
		c.mu.Lock()
		var d time.Duration
		for _, p := range c.pending {
			d = max(d, p.d)
		}
		n := len(c.pending)
		c.mu.Unlock()
		if n > 0 {
			return d
		}
		select {
		case <-c.added:
		case <-deadline:
			t.Fatal("hang guard: no refresh was scheduled")
		}
	}
}

// fire advances the clock by the longest pending delay and fires every
// pending timer.
func (c *fakeClock) fire(t testing.TB) {
	t.Helper()
	d := c.next(t)
	c.mu.Lock()
	c.now = c.now.Add(d)
	pending := c.pending
	c.pending = nil
	c.mu.Unlock()
	for _, p := range pending {
		p.f()
	}
}

// recordingBuilder wraps a resolver builder to see what its resolvers
// tell gRPC: the last state gRPC's UpdateState has returned for (the
// balancer has taken it), and every error reported.
type recordingBuilder struct {
	gresolver.Builder
	errs chan error

	mu      sync.Mutex
	last    gresolver.State
	changed chan struct{} // closed and replaced at each state
}

func newRecordingBuilder(b gresolver.Builder) *recordingBuilder {
	return &recordingBuilder{Builder: b, errs: make(chan error, 1024), changed: make(chan struct{})}
}

func (rb *recordingBuilder) Build(t gresolver.Target, cc gresolver.ClientConn, o gresolver.BuildOptions) (gresolver.Resolver, error) {
	return rb.Builder.Build(t, &recordingCC{ClientConn: cc, rb: rb}, o)
}

// OverrideAuthority passes the wrapped builder's authority on.
func (rb *recordingBuilder) OverrideAuthority(t gresolver.Target) string {
	return rb.Builder.(gresolver.AuthorityOverrider).OverrideAuthority(t)
}

type recordingCC struct {
	gresolver.ClientConn
	rb *recordingBuilder
}

func (cc *recordingCC) UpdateState(s gresolver.State) error {
	err := cc.ClientConn.UpdateState(s)
	cc.rb.mu.Lock()
	cc.rb.last = s
	close(cc.rb.changed)
	cc.rb.changed = make(chan struct{})
	cc.rb.mu.Unlock()
	return err
}

func (cc *recordingCC) ReportError(err error) {
	cc.ClientConn.ReportError(err)
	select {
	case cc.rb.errs <- err:
	default:
	}
}

// drainErrs forgets the errors reported so far.
func (rb *recordingBuilder) drainErrs() {
	for {
		select {
		case <-rb.errs:
		default:
			return
		}
	}
}

// waitState waits until the last state gRPC has taken satisfies ok.
func (rb *recordingBuilder) waitState(t testing.TB, what string, ok func(gresolver.State) bool) gresolver.State {
	t.Helper()
	deadline := time.After(hangGuard)
	for {
		rb.mu.Lock()
		s, changed := rb.last, rb.changed
		rb.mu.Unlock()
		if ok(s) {
			return s
		}
		select {
		case <-changed:
		case <-deadline:
			t.Fatalf("hang guard: no state with %s (last: %v)", what, addrs(s))
		}
	}
}

// addrs returns the addresses of a state.
func addrs(s gresolver.State) []string {
	var out []string
	for _, e := range s.Endpoints {
		for _, a := range e.Addresses {
			out = append(out, a.Addr)
		}
	}
	return out
}

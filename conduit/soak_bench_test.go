package conduit

import (
	"bufio"
	"context"
	"crypto/tls"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// The soak's knobs: go test -run '^$' -bench HostileSoak ./conduit
// -args -soak.hostile=100 (or CONDUIT_SOAK_HOSTILE=100) for a short run.
var (
	soakHostile   = flag.Int("soak.hostile", envInt("CONDUIT_SOAK_HOSTILE", 1000), "hostile clients of BenchmarkHostileSoak")
	soakHandshake = flag.Duration("soak.handshake", 2*time.Second, "the soak server's handshake timeout")
	soakIdle      = flag.Duration("soak.idle", 4*time.Second, "the soak server's idle timeout")
)

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v >= 0 {
		return v
	}
	return def
}

// soakChildEnv, when set, makes TestSoakHostileClients the attacker
// process of BenchmarkHostileSoak; it holds the target and the count.
const soakChildEnv = "CONDUIT_SOAK_CHILD"

// The kinds of hostile clients, in turn.
const (
	idleHolder   = iota // connects and sends nothing
	partialHello        // sends 3 bytes of a ClientHello and stalls
	neverReader         // handshakes, writes, never reads
	slowloris           // handshakes, writes a byte a second, never reads
	hostileKinds
)

var kindNames = [hostileKinds]string{"idle", "partial-hello", "never-reader", "slowloris"}

// BenchmarkHostileSoak measures what hostile clients cost a legitimate
// one: a TLS echo server (conduit's Listen and ServeListener, handshake
// and idle timeouts set) is attacked by -soak.hostile clients from
// another process — idle holders, partial ClientHellos, never-readers
// and one-byte-a-second writers in equal parts, each reconnecting when
// the server drops it — while the benchmark dials, handshakes, echoes
// 1 MiB and closes in a loop. /quiet is the same loop against the same
// kind of server without the attackers. Reported at the end of each:
// the server process's goroutines, open descriptors, live heap and
// flows being served.
//
// One op is one legitimate connection; ns/op is its round-trip time.
func BenchmarkHostileSoak(b *testing.B) {
	raiseNofile(b)
	hostile := *soakHostile
	if max := nofileLimit() - 256; hostile > max/2 {
		// The attackers' process needs as many descriptors as this one.
		b.Logf("RLIMIT_NOFILE allows %d hostile clients, not %d", max/2, hostile)
		hostile = max / 2
	}
	for _, sub := range []struct {
		name    string
		hostile int
	}{{"hostile", hostile}, {"quiet", 0}} {
		// Set up on the sub-benchmark's first round, shared by its later
		// rounds, torn down once it is done.
		var env *soakEnv
		b.Run(sub.name, func(b *testing.B) {
			if env == nil {
				env = soakSetup(b, sub.hostile)
			}
			soakRun(b, env)
		})
		if env != nil {
			env.stop(b)
		}
	}
}

// soakEnv is a server and, for /hostile, its attackers.
type soakEnv struct {
	c       *Conduit
	uri     string
	serving atomic.Int64
	errs    sync.Map // remote address → how its handler failed
	stop    func(testing.TB)
}

func soakRun(b *testing.B, env *soakEnv) {
	ctx := context.Background()
	const size = 1 << 20
	out := make([]byte, 64<<10)
	for i := range out {
		out[i] = byte(i)
	}
	in := make([]byte, 64<<10)
	b.SetBytes(size)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		dctx, cancel := context.WithTimeout(ctx, 30*time.Second) // hang guard
		f, err := env.c.Dial(dctx, env.uri)
		cancel()
		if err != nil {
			b.Fatal(err)
		}
		f.SetDeadline(time.Now().Add(60 * time.Second)) // hang guard
		werr := make(chan error, 1)
		go func() {
			for sent := 0; sent < size; sent += len(out) {
				if _, err := f.Write(out); err != nil {
					werr <- err
					return
				}
			}
			werr <- f.CloseWrite()
		}()
		got := 0
		for {
			n, err := f.Read(in)
			got += n
			if err == io.EOF {
				break
			}
			if err != nil {
				b.Fatal(env.failure(f, got, err))
			}
		}
		if err := <-werr; err != nil {
			b.Fatal(env.failure(f, got, err))
		}
		f.Close()
		if got != size {
			b.Fatalf("echoed %d bytes of %d", got, size)
		}
	}
	b.StopTimer()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	b.ReportMetric(float64(runtime.NumGoroutine()), "goroutines")
	b.ReportMetric(float64(openFDs()), "fds")
	b.ReportMetric(float64(ms.HeapInuse)/(1<<20), "heap-MiB")
	b.ReportMetric(float64(env.serving.Load()), "served-flows")
}

// failure describes a failed legitimate connection, with the error its
// handler ended with, if any.
func (e *soakEnv) failure(f Flow, got int, err error) string {
	time.Sleep(100 * time.Millisecond) // let the handler record its end; only for the message
	server, _ := e.errs.Load(f.LocalAddr().String())
	return fmt.Sprintf("legitimate client %s, %d bytes back: %v (server: %v)", f.LocalAddr(), got, err, server)
}

// soakSetup starts a server and, with hostile > 0, its attackers.
func soakSetup(b *testing.B, hostile int) *soakEnv {
	env := &soakEnv{c: New(&Config{TLS: testPKI(b)})}
	ctx, cancel := context.WithCancel(context.Background())
	ln, err := env.c.Listen(ctx, "tls://127.0.0.1:0?sni="+testServerName,
		WithHandshakeTimeout(*soakHandshake), WithIdleTimeout(*soakIdle))
	if err != nil {
		b.Fatal(err)
	}
	env.uri = ln.URI()
	served := make(chan error, 1)
	go func() {
		served <- ServeListener(ctx, ln, HandlerFunc(func(_ context.Context, f Flow) {
			env.serving.Add(1)
			defer env.serving.Add(-1)
			n, err := io.Copy(f, f)
			if err != nil {
				env.errs.Store(f.RemoteAddr().String(), fmt.Sprintf("after %d bytes: %v", n, err))
			}
			f.CloseWrite()
		}), time.Second)
	}()
	stopChild := func(testing.TB) {}
	if hostile > 0 {
		stopChild = startAttackers(b, hostPort(b, env.uri), hostile)
	}
	env.stop = func(tb testing.TB) {
		stopChild(tb)
		cancel()
		<-served
		env.c.Close()
	}
	return env
}

// startAttackers starts the attacker process against addr and waits for
// its clients to be in place; the returned func stops it.
func startAttackers(b *testing.B, addr string, n int) func(testing.TB) {
	cmd := exec.Command(os.Args[0], "-test.run=^TestSoakHostileClients$", "-soak.idle="+soakIdle.String())
	cmd.Env = append(os.Environ(), soakChildEnv+"="+addr+","+strconv.Itoa(n))
	stdin, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	cmd.WaitDelay = 10 * time.Second
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	stop := func(tb testing.TB) {
		stdin.Close()
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			if err != nil {
				tb.Errorf("attackers: %v", err)
			}
		case <-time.After(30 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	}
	ready := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if strings.HasPrefix(sc.Text(), "ready") {
				ready <- sc.Text()
			}
		}
		close(ready)
	}()
	select {
	case line, ok := <-ready:
		if !ok {
			stop(b)
			b.Fatal("the attacker process exited before its clients were in place")
		}
		b.Logf("attackers %s", line)
	case <-time.After(120 * time.Second): // hang guard
		stop(b)
		b.Fatal("the attackers never got in place")
	}
	return stop
}

// TestSoakHostileClients is the attacker process of BenchmarkHostileSoak;
// it is skipped unless the benchmark started it.
func TestSoakHostileClients(t *testing.T) {
	spec := os.Getenv(soakChildEnv)
	if spec == "" {
		t.Skip("the attacker process of BenchmarkHostileSoak")
	}
	addr, count, _ := strings.Cut(spec, ",")
	n, err := strconv.Atoi(count)
	if err != nil {
		t.Fatal(err)
	}
	raiseNofile(t)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var inPlace sync.WaitGroup
	var reconnects [hostileKinds]atomic.Int64
	inPlace.Add(n)
	for i := range n {
		kind := i % hostileKinds
		wg.Add(1)
		go func() {
			defer wg.Done()
			first := true
			placed := func() {
				if first {
					first = false
					inPlace.Done()
				}
			}
			defer placed()
			for ctx.Err() == nil {
				attack(ctx, addr, kind, placed)
				if ctx.Err() == nil {
					reconnects[kind].Add(1)
				}
			}
		}()
	}
	inPlace.Wait()
	fmt.Printf("ready: %d clients (%s)\n", n, strings.Join(kindNames[:], ", "))
	io.Copy(io.Discard, os.Stdin) // until the benchmark closes it
	cancel()
	wg.Wait()
	var dropped []string
	for k := range hostileKinds {
		dropped = append(dropped, fmt.Sprintf("%s %d", kindNames[k], reconnects[k].Load()))
	}
	fmt.Fprintf(os.Stderr, "attackers: reconnections (the server dropped them; never-readers: on their own): %s\n", strings.Join(dropped, ", "))
}

// attack runs one hostile connection of the given kind until the server
// drops it or ctx ends; placed is called once it is doing its harm.
func attack(ctx context.Context, addr string, kind int, placed func()) {
	d := net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
		// Small fixed buffers: the memory a never-reader pins in the
		// kernel stays bounded (loopback autotunes up to tcp_rmem's
		// maximum otherwise).
		return rc.Control(func(fd uintptr) {
			syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 64<<10)
			syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_SNDBUF, 64<<10)
		})
	}}
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		pause(ctx, 10*time.Millisecond)
		return
	}
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer func() {
		stop()
		c.Close()
	}()
	switch kind {
	case idleHolder:
		placed()
		io.Copy(io.Discard, c) // the server never sends: returns when it closes
	case partialHello:
		if _, err := c.Write(partialClientHello); err != nil {
			return
		}
		placed()
		io.Copy(io.Discard, c)
	case neverReader, slowloris:
		tc := tls.Client(c, &tls.Config{InsecureSkipVerify: true, ServerName: testServerName}) // an attacker verifies nothing
		if err := tc.HandshakeContext(ctx); err != nil {
			pause(ctx, 10*time.Millisecond)
			return
		}
		placed()
		if kind == neverReader {
			// A burst the server echoes into buffers no one reads, then
			// silence. The server's handler ends at its idle timeout, but
			// its FIN waits behind the unread echo, so the client cannot
			// see it without reading: it gives the server the idle
			// timeout and a second, then starts again. (A burst large
			// enough to block the server's echo pins its send buffer, up
			// to tcp_wmem's maximum of 4 MiB a connection on loopback:
			// TestIdleTimeoutEndsNeverReader covers that case, and 250
			// of them push the machine's TCP memory into pressure.)
			buf := make([]byte, 16<<10)
			for sent := 0; sent < 1<<20; sent += len(buf) {
				if _, err := tc.Write(buf); err != nil {
					return
				}
			}
			pause(ctx, *soakIdle+time.Second)
			return
		}
		for {
			if _, err := tc.Write([]byte{'x'}); err != nil {
				return
			}
			if !pause(ctx, time.Second) {
				return
			}
		}
	}
}

// pause waits d or until ctx ends, and reports whether ctx is still live.
func pause(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// raiseNofile raises the soft RLIMIT_NOFILE to the hard limit.
func raiseNofile(tb testing.TB) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		tb.Fatal(err)
	}
	if lim.Cur < lim.Max {
		lim.Cur = lim.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
			tb.Logf("raising RLIMIT_NOFILE: %v", err)
		}
	}
}

func nofileLimit() int {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 1024
	}
	return int(min(lim.Cur, 1<<20))
}

// openFDs counts this process's open file descriptors.
func openFDs() int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return -1
	}
	return len(ents)
}

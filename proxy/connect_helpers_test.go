package proxy

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/conduit-go/conduit/internal/devpki"
	"github.com/conduit-go/conduit/internal/testutil"
)

// hcServer is a loopback TCP server of the tests that runs handle on
// each accepted connection; Close (registered as a cleanup) closes the
// listener and every connection and waits for the handlers.
type hcServer struct {
	ln    net.Listener
	wg    sync.WaitGroup
	mu    sync.Mutex
	conns map[net.Conn]struct{}
}

func hcListen(t testing.TB, handle func(net.Conn)) *hcServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return hcServe(t, ln, handle)
}

func hcServe(t testing.TB, ln net.Listener, handle func(net.Conn)) *hcServer {
	s := &hcServer{ln: ln, conns: map[net.Conn]struct{}{}}
	s.wg.Add(1)
	go func() { // owned by s: Close waits
		defer s.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.mu.Lock()
			if s.conns == nil {
				s.mu.Unlock()
				c.Close()
				return
			}
			s.conns[c] = struct{}{}
			s.wg.Add(1)
			s.mu.Unlock()
			go func() { // owned by s
				defer s.wg.Done()
				defer func() {
					s.mu.Lock()
					delete(s.conns, c)
					s.mu.Unlock()
					c.Close()
				}()
				handle(c)
			}()
		}
	}()
	t.Cleanup(s.Close)
	return s
}

func (s *hcServer) Addr() string { return s.ln.Addr().String() }

func (s *hcServer) Port() int { return s.ln.Addr().(*net.TCPAddr).Port }

func (s *hcServer) Close() {
	s.ln.Close()
	s.mu.Lock()
	for c := range s.conns {
		c.Close()
	}
	s.conns = nil
	s.mu.Unlock()
	s.wg.Wait()
}

// hcEcho is a loopback echo server that passes a half-close back.
func hcEcho(t testing.TB) *hcServer {
	return hcListen(t, func(c net.Conn) {
		io.Copy(c, c)
		if h, ok := c.(halfCloser); ok {
			h.CloseWrite()
		}
		// Wait for the client's close, so the last bytes are not reset.
		io.Copy(io.Discard, c)
	})
}

// hcPKI is a CA with a certificate for "target.test" and one for
// 127.0.0.1 (a proxy's).
type hcPKI struct {
	ca            *devpki.Authority
	target, proxy tls.Certificate
}

var (
	hcPKIOnce sync.Once
	hcPKIVal  *hcPKI
	hcPKIErr  error
)

func getHCPKI(t testing.TB) *hcPKI {
	t.Helper()
	hcPKIOnce.Do(func() {
		p := &hcPKI{}
		if p.ca, hcPKIErr = devpki.NewAuthority("conduit proxy test CA"); hcPKIErr != nil {
			return
		}
		if p.target, hcPKIErr = p.ca.Issue("target.test"); hcPKIErr != nil {
			return
		}
		if p.proxy, hcPKIErr = p.ca.Issue("127.0.0.1"); hcPKIErr != nil {
			return
		}
		hcPKIVal = p
	})
	if hcPKIErr != nil {
		t.Fatal(hcPKIErr)
	}
	return hcPKIVal
}

// hcTLSEcho is a loopback TLS echo server for "target.test". sni, when
// not nil, receives the server name of every handshake.
func hcTLSEcho(t testing.TB, sni chan<- string) *hcServer {
	p := getHCPKI(t)
	cfg := &tls.Config{
		Certificates: []tls.Certificate{p.target},
		MinVersion:   tls.VersionTLS13,
		GetConfigForClient: func(h *tls.ClientHelloInfo) (*tls.Config, error) {
			if sni != nil {
				select {
				case sni <- h.ServerName:
				default:
				}
			}
			return nil, nil
		},
	}
	return hcListen(t, func(c net.Conn) {
		c.SetDeadline(time.Now().Add(time.Minute)) // an upper bound against hangs
		tc := tls.Server(c, cfg)
		if err := tc.Handshake(); err != nil {
			return
		}
		io.Copy(tc, tc)
		tc.CloseWrite()
		io.Copy(io.Discard, tc)
	})
}

// hcTargetConfig is a client config that checks target.test's
// certificate.
func hcTargetConfig(t testing.TB) *tls.Config {
	return &tls.Config{ServerName: "target.test", RootCAs: getHCPKI(t).ca.Pool, MinVersion: tls.VersionTLS13}
}

// hcRandom returns n random bytes.
func hcRandom(t testing.TB, n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// hcExchange writes data on c while reading as many bytes back, and
// checks they are the same; it then half-closes c when halfClose is set
// and checks the peer's EOF follows.
func hcExchange(t testing.TB, c net.Conn, data []byte, halfClose bool) {
	t.Helper()
	c.SetDeadline(time.Now().Add(2 * time.Minute)) // an upper bound against hangs
	defer c.SetDeadline(time.Time{})
	werr := make(chan error, 1)
	go func() { // owned: waited for below
		_, err := c.Write(data)
		if err == nil && halfClose {
			err = c.(halfCloser).CloseWrite()
		}
		werr <- err
	}()
	got := make([]byte, len(data))
	_, rerr := io.ReadFull(c, got)
	if err := <-werr; err != nil {
		t.Fatalf("write: %v", err)
	}
	if rerr != nil {
		t.Fatalf("read: %v", rerr)
	}
	if !bytes.Equal(got, data) {
		t.Fatalf("the %d bytes read back differ from those written", len(data))
	}
	if halfClose {
		if n, err := c.Read(make([]byte, 1)); n != 0 || err != io.EOF {
			t.Fatalf("after the half-close: read %d, %v; want 0, EOF", n, err)
		}
	}
}

// hcStartPeer starts a peer that listens on a port chosen by the test,
// writing its config with write(port) and starting it with start, and
// waiting for ready on its standard error. It tries three ports.
func hcStartPeer(t testing.TB, write func(port int), start func() *testutil.Process, ready *regexp.Regexp) int {
	t.Helper()
	var last string
	for range 3 {
		port := int(testutil.FreePort(t))
		write(port)
		p := start()
		if hcWaitLine(p, ready, 60*time.Second) {
			// The line says the port is open; see that it accepts (and
			// fail with the peer's log if it died after saying so).
			testutil.WaitListening(t, p, netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(port)), "the peer")
			return port
		}
		last = p.Stderr()
		p.Signal(os.Kill)
		<-p.Exited()
	}
	t.Fatalf("the peer did not start: %s", last)
	return 0
}

// hcWaitLine waits for a line of p's standard error matching re: false
// when p exited first or the timeout (an upper bound against hangs)
// passed. It looks at what p has written each time a short ticker fires.
func hcWaitLine(p *testutil.Process, re *regexp.Regexp, timeout time.Duration) bool {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		if re.MatchString(p.Stderr()) {
			return true
		}
		select {
		case <-p.Exited():
			return re.MatchString(p.Stderr())
		case <-deadline.C:
			return false
		case <-tick.C:
		}
	}
}

// tinyproxyConfig describes a tinyproxy to start.
type tinyproxyConfig struct {
	connectPorts []int
	auth         *Auth
}

// hcTinyproxy starts tinyproxy in the foreground on loopback and returns
// its address.
func hcTinyproxy(t testing.TB, cfg tinyproxyConfig) string {
	t.Helper()
	path := testutil.RequirePeer(t, "tinyproxy", "tinyproxy")
	dir := t.TempDir()
	conf := filepath.Join(dir, "tinyproxy.conf")
	write := func(port int) {
		var b strings.Builder
		fmt.Fprintf(&b, "Port %d\nListen 127.0.0.1\nAllow 127.0.0.1\nMaxClients 200\nTimeout 60\nLogLevel Info\n", port)
		fmt.Fprintf(&b, "PidFile %q\n", filepath.Join(dir, "tinyproxy.pid"))
		for _, p := range cfg.connectPorts {
			fmt.Fprintf(&b, "ConnectPort %d\n", p)
		}
		if cfg.auth != nil {
			fmt.Fprintf(&b, "BasicAuth %s %s\n", cfg.auth.Username, cfg.auth.Password)
		}
		if err := os.WriteFile(conf, []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// With -d tinyproxy logs to standard output: send it to standard
	// error, where StartProcess looks for lines.
	start := func() *testutil.Process {
		return testutil.StartProcess(t, "/bin/sh", "-c", `exec "$0" -d -c "$1" 1>&2`, path, conf)
	}
	port := hcStartPeer(t, write, start, regexp.MustCompile(`Accepting connections`))
	return "127.0.0.1:" + strconv.Itoa(port)
}

// squidConfig describes a squid to start.
type squidConfig struct {
	// sslPorts are the ports CONNECT may reach (squid's SSL_ports).
	sslPorts []int
	auth     *Auth
	// https also opens an https_port with a certificate for 127.0.0.1.
	https bool
}

type squidAddrs struct{ http, https string }

// hcSquid starts squid in the foreground (-N) on loopback, without a
// cache, and returns its addresses.
func hcSquid(t testing.TB, cfg squidConfig) squidAddrs {
	t.Helper()
	path := testutil.RequirePeer(t, "squid", "squid")
	dir := t.TempDir()
	// squid, started as root, works as the user "proxy": it must be able
	// to write its logs here (and reach here: TempDir's parent is 0700).
	if err := os.Chmod(filepath.Dir(dir), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	var authLines string
	if cfg.auth != nil {
		openssl := testutil.RequirePeer(t, "openssl", "openssl")
		hash, err := exec.Command(openssl, "passwd", "-apr1", cfg.auth.Password).Output()
		if err != nil {
			t.Fatalf("openssl passwd: %v", err)
		}
		passwd := filepath.Join(dir, "passwd")
		if err := os.WriteFile(passwd, []byte(cfg.auth.Username+":"+strings.TrimSpace(string(hash))+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		helper := "/usr/lib/squid/basic_ncsa_auth"
		if _, err := os.Stat(helper); err != nil {
			t.Fatalf("squid's %s: %v", helper, err)
		}
		authLines = fmt.Sprintf("auth_param basic program %s %s\nauth_param basic realm conduit\nauth_param basic children 2\nacl authed proxy_auth REQUIRED\n", helper, passwd)
	}
	var tlsLine string
	if cfg.https {
		certPEM, keyPEM, err := devpki.PEM(getHCPKI(t).proxy)
		if err != nil {
			t.Fatal(err)
		}
		cert, key := filepath.Join(dir, "proxy.pem"), filepath.Join(dir, "proxy.key")
		if err := os.WriteFile(cert, certPEM, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(key, keyPEM, 0o644); err != nil {
			t.Fatal(err)
		}
		tlsLine = fmt.Sprintf("tls-cert=%s tls-key=%s", cert, key)
	}
	conf := filepath.Join(dir, "squid.conf")
	var addrs squidAddrs
	write := func(port int) {
		var b strings.Builder
		fmt.Fprintf(&b, "http_port 127.0.0.1:%d\n", port)
		addrs.http = "127.0.0.1:" + strconv.Itoa(port)
		if cfg.https {
			// The HTTPS port is the next one: taken, squid fails to start
			// and the start is retried on other ports.
			fmt.Fprintf(&b, "https_port 127.0.0.1:%d %s\n", port+1, tlsLine)
			addrs.https = "127.0.0.1:" + strconv.Itoa(port+1)
		}
		fmt.Fprintf(&b, "pid_filename %s\n", filepath.Join(dir, "squid.pid"))
		fmt.Fprintf(&b, "access_log stdio:%s\n", filepath.Join(dir, "access.log"))
		fmt.Fprintf(&b, "cache_log %s\n", filepath.Join(dir, "cache.log"))
		fmt.Fprintf(&b, "coredump_dir %s\n", dir)
		b.WriteString("cache_store_log none\ncache deny all\nvisible_hostname conduit-test\n")
		b.WriteString("dns_nameservers 127.0.0.1\npinger_enable off\nshutdown_lifetime 0 seconds\n")
		b.WriteString("acl CONNECT method CONNECT\nacl SSL_ports port")
		for _, p := range cfg.sslPorts {
			fmt.Fprintf(&b, " %d", p)
		}
		b.WriteString("\n" + authLines)
		b.WriteString("http_access deny CONNECT !SSL_ports\n")
		if cfg.auth != nil {
			b.WriteString("http_access allow localhost authed\n")
		} else {
			b.WriteString("http_access allow localhost\n")
		}
		b.WriteString("http_access deny all\n")
		if err := os.WriteFile(conf, []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	start := func() *testutil.Process {
		return testutil.StartProcess(t, path, "-N", "-d", "1", "-f", conf)
	}
	ready := `Accepting HTTP Socket connections`
	if cfg.https {
		ready = `Accepting HTTPS Socket connections`
	}
	hcStartPeer(t, write, start, regexp.MustCompile(ready))
	return addrs
}

// hcDialProxy dials a proxy and runs HTTPConnect to target.
func hcDialProxy(t testing.TB, proxyAddr, target string, auth *Auth) (net.Conn, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", proxyAddr)
	if err != nil {
		t.Fatal(err)
	}
	tc, err := HTTPConnect(ctx, c, target, auth)
	if err != nil {
		c.Close()
		return nil, err
	}
	return tc, nil
}

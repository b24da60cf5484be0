package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/conduit-go/conduit/conduit"
	"github.com/conduit-go/conduit/vchan"
)

// demoRow is one transport the demo exercises: it listens on listenURI
// with an echo server, then dials dialURI (the listener's real URI when
// empty) and checks the echo.
type demoRow struct {
	name      string
	listenURI string
	dialURI   string // "" means the listener's URI
	note      string
	// srvService, when set, publishes the listener's port as the SRV
	// record _SERVICE._tcp.demo.test on the demo's DNS server.
	srvService string
	// direct rows run on the userspace TCP stacks of env.direct.
	direct bool
}

// demoEnv is what the rows share: a Conduit, a scratch directory and
// the DNS server.
type demoEnv struct {
	c   *conduit.Conduit
	dir string
	dns *demoDNS
	// directServer and directClient run on two userspace TCP stacks
	// joined by an in-memory link.
	directServer, directClient *conduit.Conduit
}

func runDemo(ctx context.Context, o *options, _ []string, s *stdio) int {
	stdout, log := s.out, s.log
	dir, err := os.MkdirTemp("", "conduit-demo-")
	if err != nil {
		log.printf("conduit: demo: scratch directory: %v\n", err)
		return 1
	}
	defer os.RemoveAll(dir)

	env, rows, cleanup, err := demoSetup(ctx, dir)
	if err != nil {
		log.printf("conduit: demo: %s\n", plain(err))
		return 1
	}
	defer cleanup()

	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "TRANSPORT\tURI\tRESULT\tBYTES\tTIME\tNOTE")
	var failed []string
	for _, row := range rows {
		if ctx.Err() != nil {
			break
		}
		uri, n, d, err := env.exercise(ctx, row, o.size)
		result := "ok"
		if err != nil {
			result = "FAILED: " + strings.ReplaceAll(plain(err), "\n", "; ")
			failed = append(failed, row.name)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\n", row.name, uri, result, n, d.Round(10*time.Microsecond), row.note)
	}
	tw.Flush()
	if ctx.Err() != nil {
		log.printf("conduit: demo: interrupted\n")
		return 1
	}
	if len(failed) > 0 {
		log.printf("conduit: demo: %d of %d transports failed: %s\n", len(failed), len(rows), strings.Join(failed, ", "))
		return 1
	}
	fmt.Fprintf(stdout, "\nall %d transports work\n", len(rows))
	return 0
}

// exercise runs one row: listen, serve an echo, dial, compare.
func (env *demoEnv) exercise(ctx context.Context, row demoRow, size int) (string, int, time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	srv, cli := env.c, env.c
	if row.direct {
		srv, cli = env.directServer, env.directClient
	}
	ln, err := srv.Listen(ctx, row.listenURI)
	if err != nil {
		return row.listenURI, 0, 0, err
	}
	srvCtx, stop := context.WithCancel(ctx)
	served := make(chan error, 1)
	go func() {
		served <- conduit.ServeListener(srvCtx, ln, conduit.HandlerFunc(func(_ context.Context, f conduit.Flow) {
			io.Copy(f, f)
			f.CloseWrite()
		}), 5*time.Second)
	}()
	defer func() { stop(); <-served }()

	uri := row.dialURI
	if uri == "" {
		uri = ln.URI()
	}
	if row.srvService != "" {
		env.dns.register(row.srvService, tcpPort(ln))
	}
	start := time.Now()
	f, err := cli.Dial(ctx, uri)
	if err != nil {
		return uri, 0, 0, err
	}
	defer f.Close()
	payload := make([]byte, size)
	rand.Read(payload)
	werr := make(chan error, 1)
	go func() {
		_, err := f.Write(payload)
		if err == nil {
			err = f.CloseWrite()
		}
		werr <- err
	}()
	got, err := io.ReadAll(f)
	if err == nil {
		err = <-werr
	}
	d := time.Since(start)
	if err != nil {
		return uri, len(got), d, fmt.Errorf("echo through %s: %w", uri, err)
	}
	if !bytes.Equal(got, payload) {
		return uri, len(got), d, fmt.Errorf("echo differs: sent %d bytes, got %d back", len(payload), len(got))
	}
	return uri, len(got), d, nil
}

// demoSetup builds the Conduit and the rows of every transport.
func demoSetup(ctx context.Context, dir string) (*demoEnv, []demoRow, func(), error) {
	cfg := &conduit.Config{}
	rows := []demoRow{
		{name: "tcp", listenURI: "tcp://127.0.0.1:0", note: "kernel TCP via tcpflow"},
		{name: "unix", listenURI: "unix://" + filepath.Join(dir, "demo.sock")},
	}
	if haveIPv6Loopback() {
		rows = append(rows, demoRow{name: "tcp6", listenURI: "tcp://[::1]:0"})
	}
	// vchan rings in shared memory, found through a store directory of
	// the demo's own.
	cfg.Vchan = &vchan.Config{Dir: filepath.Join(dir, "vchan")}
	rows = append(rows,
		demoRow{name: "vchan", listenURI: "vchan://0/demo", note: "Xen vchan ring protocol over shared memory"},
		demoRow{name: "vchan-name", listenURI: "vchan://demo-vm/demo", note: "vchan by registered name"},
	)

	tlsRows, err := demoTLS(cfg, dir)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("making the TLS certificates: %w", err)
	}
	rows = append(rows, tlsRows...)

	// Service discovery: a DNS server of our own on loopback publishes
	// the SRV records of the listeners below.
	dnsSrv, ns, err := startDemoDNS()
	if err != nil {
		return nil, nil, nil, fmt.Errorf("starting the DNS server: %w", err)
	}
	res, err := demoResolver(ns)
	if err != nil {
		dnsSrv.close()
		return nil, nil, nil, fmt.Errorf("the resolver of the DNS server: %w", err)
	}
	cfg.Resolver = res
	rows = append(rows,
		demoRow{name: "srv", listenURI: "tcp://127.0.0.1:0", srvService: "echo",
			dialURI: "srv://_echo._tcp." + demoServerName, note: "SRV record from the demo's DNS server"},
		demoRow{name: "https+srv", listenURI: "tls://127.0.0.1:0?sni=" + demoServerName, srvService: "https",
			dialURI: "https+srv://" + demoServerName, note: "SRV _https._tcp." + demoServerName + ", then TLS"},
	)
	dsrv, dcli, closeDirect, err := demoDirect()
	if err != nil {
		res.Close()
		dnsSrv.close()
		return nil, nil, nil, fmt.Errorf("the userspace TCP stacks: %w", err)
	}
	rows = append(rows, demoRow{name: "tcp-direct", listenURI: "tcp://10.255.0.1:80", direct: true,
		note: "the userspace TCP/IPv4 stack, two stacks over an in-memory link"})
	env := &demoEnv{c: conduit.New(cfg), dir: dir, dns: dnsSrv, directServer: dsrv, directClient: dcli}
	return env, rows, func() {
		closeDirect()
		env.c.Close()
		res.Close()
		dnsSrv.close()
	}, nil
}

// tcpPort is the TCP port a listener is bound to (through TLS), or 0.
func tcpPort(ln net.Listener) uint16 {
	if a, ok := ln.Addr().(*net.TCPAddr); ok {
		return uint16(a.Port)
	}
	return 0
}

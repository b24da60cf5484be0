package tlsflow

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// reloadInterval is how often, at most, Reloader looks at its files.
const reloadInterval = time.Second

// Reloader serves a certificate and key pair from files and reloads them
// when they change on disk, to either side: GetCertificate for a server
// (Config.GetCertificate), GetClientCertificate for a client
// (Config.GetClientCertificate). It is safe for concurrent use.
type Reloader struct {
	certFile, keyFile string
	now               func() time.Time // injected clock; time.Now by default

	cert      atomic.Pointer[tls.Certificate]
	nextCheck atomic.Int64 // UnixNano before which the files are not looked at

	mu        sync.Mutex // serialises checks and reloads; guards the fields below
	certStamp stamp
	keyStamp  stamp
	err       error
}

// stamp identifies a version of a file.
type stamp struct {
	mod  time.Time
	size int64
}

func stampOf(path string) (stamp, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return stamp{}, err
	}
	return stamp{mod: fi.ModTime(), size: fi.Size()}, nil
}

// LoadKeyPair loads a PEM certificate chain and private key and returns a
// Reloader serving them; it fails if they cannot be loaded now.
func LoadKeyPair(certFile, keyFile string) (*Reloader, error) {
	r := &Reloader{certFile: certFile, keyFile: keyFile, now: time.Now}
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.reloadLocked(); err != nil {
		return nil, err
	}
	r.nextCheck.Store(r.now().Add(reloadInterval).UnixNano())
	return r, nil
}

// GetCertificate returns the current certificate, first reloading it from
// disk if the files' modification time or size changed (looked at no more
// than once a second). If a reload fails (for example a half-written
// update), it keeps serving the previous pair and retries on a later call;
// Err reports the failure. It is usable as Config.GetCertificate.
func (r *Reloader) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return r.current(), nil
}

// GetClientCertificate is GetCertificate for the client side: it returns
// the current certificate, reloaded as GetCertificate does, whatever the
// server's request (crypto/tls sends it even if the server names other
// CAs, and the server decides). It is usable as
// Config.GetClientCertificate.
func (r *Reloader) GetClientCertificate(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
	return r.current(), nil
}

// current returns the pair to serve, first looking at the files if the
// interval has passed.
func (r *Reloader) current() *tls.Certificate {
	if r.now().UnixNano() >= r.nextCheck.Load() {
		r.check()
	}
	return r.cert.Load()
}

func (r *Reloader) check() {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.now()
	if now.UnixNano() < r.nextCheck.Load() {
		return // another caller just checked
	}
	r.nextCheck.Store(now.Add(reloadInterval).UnixNano())
	cs, err1 := stampOf(r.certFile)
	ks, err2 := stampOf(r.keyFile)
	if err := errors.Join(err1, err2); err != nil {
		r.err = fmt.Errorf("tlsflow: reloading key pair: %w", err)
		return
	}
	if cs == r.certStamp && ks == r.keyStamp {
		return
	}
	r.err = r.reloadLocked()
}

// Reload loads the files now, whether or not they changed. On failure the
// previous pair stays in use.
func (r *Reloader) Reload() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.err = r.reloadLocked()
	return r.err
}

func (r *Reloader) reloadLocked() error {
	// Stamp before reading: a write racing with the read changes the
	// stamp again, so the next check reloads.
	cs, err1 := stampOf(r.certFile)
	ks, err2 := stampOf(r.keyFile)
	if err := errors.Join(err1, err2); err != nil {
		return fmt.Errorf("tlsflow: loading key pair: %w", err)
	}
	cert, err := tls.LoadX509KeyPair(r.certFile, r.keyFile)
	if err != nil {
		return fmt.Errorf("tlsflow: loading key pair: %w", err)
	}
	r.cert.Store(&cert)
	r.certStamp, r.keyStamp = cs, ks
	return nil
}

// Certificate returns the pair currently served.
func (r *Reloader) Certificate() *tls.Certificate { return r.cert.Load() }

// Err returns the error of the last reload attempt, or nil if it
// succeeded.
func (r *Reloader) Err() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.err
}

// NewCertPoolFromFile returns a pool holding every certificate of a PEM
// file. It fails if the file holds no certificate or a block that is not a
// valid certificate, rather than silently skipping it.
func NewCertPoolFromFile(path string) (*x509.CertPool, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("tlsflow: %w", err)
	}
	pool := x509.NewCertPool()
	n := 0
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("tlsflow: %s: unexpected PEM block %q", path, block.Type)
		}
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("tlsflow: %s: %w", path, err)
		}
		pool.AddCert(cert)
		n++
	}
	if n == 0 {
		return nil, fmt.Errorf("tlsflow: %s: no PEM certificate found", path)
	}
	return pool, nil
}

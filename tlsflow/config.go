package tlsflow

import (
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"slices"
	"sync"
)

// Config describes one side (or both sides) of a TLS flow. Its zero value
// is a usable client configuration: TLS 1.2 or later, the system roots,
// the server name taken from the peer's IP address, and session resumption
// through a per-Config cache.
//
// A Config may be shared by any number of goroutines and connections but
// must not be modified after its first use (the built crypto/tls
// configuration is cached, so later changes would be ignored); use Clone to
// derive a modified copy. A nil *Config is equivalent to a zero Config
// (without resumption, since the cache would belong to no one).
type Config struct {
	// Certificates are presented to the peer. A server picks among them by
	// SNI automatically; a client sends the first one that suits the
	// server's certificate request.
	Certificates []tls.Certificate
	// GetCertificate, when set, chooses the server certificate for each
	// handshake (see Reloader.GetCertificate). Servers only.
	GetCertificate func(*tls.ClientHelloInfo) (*tls.Certificate, error)
	// NextProtos lists the ALPN protocols in order of preference.
	NextProtos []string
	// MinVersion is the lowest TLS version accepted. 0 means TLS 1.2;
	// lower versions are rejected with an error.
	MinVersion uint16

	// ServerName is the name sent as SNI and verified against the server's
	// certificate. When empty, Client uses the peer's IP address (from
	// Dst or RemoteAddr) and fails if it has none.
	ServerName string
	// RootCAs verifies the server's chain; nil means the system roots.
	RootCAs *x509.CertPool
	// InsecureSkipVerify disables the verification of the server's chain
	// and name. DANGEROUS: anyone in the path can then read and alter the
	// traffic. It is only acceptable together with PinnedSPKI or in tests.
	InsecureSkipVerify bool
	// PinnedSPKI, when not empty, lists SHA-256 digests of acceptable
	// server SubjectPublicKeyInfos; the leaf certificate must match one of
	// them in addition to normal verification (also on resumed sessions).
	// Clients only.
	PinnedSPKI [][32]byte
	// SessionCache stores TLS sessions for resumption. nil means a 64-entry
	// LRU cache owned by this Config, created on first use and shared with
	// its clones.
	SessionCache tls.ClientSessionCache

	// ClientAuth is the server's policy for client certificates.
	ClientAuth tls.ClientAuthType
	// ClientCAs verifies client certificates. It is required when
	// ClientAuth verifies certificates (the system roots are never used to
	// authenticate clients).
	ClientCAs *x509.CertPool

	mu     sync.Mutex
	cache  tls.ClientSessionCache // lazily created when SessionCache is nil
	client *tls.Config            // built by clientConfig
	server *tls.Config            // built by serverConfig
}

// Clone returns a copy of c. Slices are copied; certificates, pools and
// caches are shared. When c.SessionCache is nil, the clone shares c's
// internal session cache, so clones that differ only in ServerName still
// resume each other's sessions. Clone of nil returns nil.
func (c *Config) Clone() *Config {
	if c == nil {
		return nil
	}
	n := &Config{
		Certificates:       slices.Clone(c.Certificates),
		GetCertificate:     c.GetCertificate,
		NextProtos:         slices.Clone(c.NextProtos),
		MinVersion:         c.MinVersion,
		ServerName:         c.ServerName,
		RootCAs:            c.RootCAs,
		InsecureSkipVerify: c.InsecureSkipVerify,
		PinnedSPKI:         slices.Clone(c.PinnedSPKI),
		SessionCache:       c.SessionCache,
		ClientAuth:         c.ClientAuth,
		ClientCAs:          c.ClientCAs,
	}
	if c.SessionCache == nil {
		n.cache = c.sessionCache()
	}
	return n
}

// sessionCacheSize is the capacity of the default per-Config session cache.
const sessionCacheSize = 64

func (c *Config) sessionCache() tls.ClientSessionCache {
	if c.SessionCache != nil {
		return c.SessionCache
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cache == nil {
		c.cache = tls.NewLRUClientSessionCache(sessionCacheSize)
	}
	return c.cache
}

// TLSConfig builds a new crypto/tls configuration for the client (client
// true) or server side, or reports why c is not valid for that side. Each
// call returns a fresh *tls.Config that the caller owns. Client and Server
// build theirs once per Config and reuse it, which servers need to resume
// sessions (the ticket keys live in the *tls.Config).
func (c *Config) TLSConfig(client bool) (*tls.Config, error) {
	if c == nil {
		c = &Config{}
	}
	minVersion := c.MinVersion
	if minVersion == 0 {
		minVersion = tls.VersionTLS12
	}
	switch minVersion {
	case tls.VersionTLS12, tls.VersionTLS13:
	default:
		if minVersion < tls.VersionTLS12 {
			return nil, fmt.Errorf("tlsflow: MinVersion %s is not accepted (TLS 1.2 is the minimum)", tls.VersionName(minVersion))
		}
		return nil, fmt.Errorf("tlsflow: unknown MinVersion %#04x", minVersion)
	}
	tc := &tls.Config{
		MinVersion:   minVersion,
		Certificates: c.Certificates,
		NextProtos:   c.NextProtos,
	}
	if client {
		tc.ServerName = c.ServerName
		tc.RootCAs = c.RootCAs
		tc.InsecureSkipVerify = c.InsecureSkipVerify
		tc.ClientSessionCache = c.sessionCache()
		if len(c.PinnedSPKI) > 0 {
			tc.VerifyConnection = verifyPins(slices.Clone(c.PinnedSPKI))
		}
		return tc, nil
	}
	if len(c.Certificates) == 0 && c.GetCertificate == nil {
		return nil, errors.New("tlsflow: server Config needs Certificates or GetCertificate")
	}
	if c.ClientAuth >= tls.VerifyClientCertIfGiven && c.ClientCAs == nil {
		return nil, fmt.Errorf("tlsflow: ClientAuth %v needs ClientCAs", c.ClientAuth)
	}
	tc.GetCertificate = c.GetCertificate
	tc.ClientAuth = c.ClientAuth
	tc.ClientCAs = c.ClientCAs
	return tc, nil
}

// clientConfig returns the cached client configuration.
func (c *Config) clientConfig() (*tls.Config, error) {
	return c.built(true)
}

// serverConfig returns the cached server configuration.
func (c *Config) serverConfig() (*tls.Config, error) {
	return c.built(false)
}

func (c *Config) built(client bool) (*tls.Config, error) {
	if c == nil {
		return (*Config)(nil).TLSConfig(client)
	}
	c.mu.Lock()
	slot := &c.server
	if client {
		slot = &c.client
	}
	tc := *slot
	c.mu.Unlock()
	if tc != nil {
		return tc, nil
	}
	// Build outside the lock: TLSConfig takes it for the session cache.
	tc, err := c.TLSConfig(client)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if *slot == nil {
		*slot = tc
	}
	return *slot, nil
}

// SPKIHash returns the SHA-256 digest of cert's SubjectPublicKeyInfo, the
// value PinnedSPKI holds.
func SPKIHash(cert *x509.Certificate) [32]byte {
	return sha256.Sum256(cert.RawSubjectPublicKeyInfo)
}

// pinError reports that the peer's key matches none of the pins.
type pinError struct {
	got [32]byte
}

func (e *pinError) Error() string {
	return "tlsflow: peer public key (spki sha256 " + base64.StdEncoding.EncodeToString(e.got[:]) + ") matches no pin"
}

func (e *pinError) Is(target error) bool { return target == ErrPinMismatch }

func verifyPins(pins [][32]byte) func(tls.ConnectionState) error {
	return func(cs tls.ConnectionState) error {
		if len(cs.PeerCertificates) == 0 {
			return &pinError{}
		}
		got := SPKIHash(cs.PeerCertificates[0])
		for i := range pins {
			if subtle.ConstantTimeCompare(got[:], pins[i][:]) == 1 {
				return nil
			}
		}
		return &pinError{got: got}
	}
}

// peerName is the verification name used when Config.ServerName is empty:
// the peer's IP address, or "" when it has none.
func peerName(conn net.Conn) string {
	ap := dst(conn)
	if !ap.Addr().IsValid() {
		return ""
	}
	return ap.Addr().WithZone("").String()
}

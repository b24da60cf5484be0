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
// Base, when set, is a crypto/tls configuration the built one starts from
// (cloned, never modified), for settings Config has no field for:
// VerifyConnection, VerifyPeerCertificate, GetClientCertificate,
// GetConfigForClient, CipherSuites, KeyLogWriter, or a go-spiffe
// configuration. The rules, for both sides:
//   - A field of Config that is set (non-zero, non-empty) replaces Base's;
//     one left zero keeps Base's; where both are zero, tlsflow's default
//     applies (TLS 1.2 minimum, the per-Config session cache). Booleans
//     (InsecureSkipVerify) are on when either sets them.
//   - The TLS 1.2 floor holds for Base too: a Base.MinVersion below TLS 1.2
//     is an error, as is a MaxVersion below the minimum, and a config that
//     Base.GetConfigForClient returns with such a MinVersion fails that
//     handshake. A config GetConfigForClient returns is otherwise used as
//     crypto/tls uses it, without tlsflow's defaults.
//   - PinnedSPKI is checked in addition to Base.VerifyConnection (the pins
//     first), and also when Base sets InsecureSkipVerify: then the pins are
//     the only check of the server's key, as with Config's own
//     InsecureSkipVerify.
//   - With an ECH config list (Config.ECHConfigList or Base's
//     EncryptedClientHelloConfigList) a client's minimum is TLS 1.3, which
//     ECH needs; a MaxVersion below TLS 1.3 is then an error.
//
// A Config may be shared by any number of goroutines and connections but
// must not be modified after its first use (the built crypto/tls
// configuration is cached, so later changes would be ignored); use Clone to
// derive a modified copy. The same holds for Base and what it points to.
// A nil *Config is equivalent to a zero Config (without resumption, since
// the cache would belong to no one).
type Config struct {
	// Base is the crypto/tls configuration to start from; nil means an
	// empty one. See the type's documentation for how its fields and
	// Config's combine.
	Base *tls.Config

	// Certificates are presented to the peer. A server picks among them by
	// SNI automatically; a client sends the first one that suits the
	// server's certificate request.
	Certificates []tls.Certificate
	// GetCertificate, when set, chooses the server certificate for each
	// handshake (see Reloader.GetCertificate). Servers only.
	GetCertificate func(*tls.ClientHelloInfo) (*tls.Certificate, error)
	// GetClientCertificate, when set, chooses the client certificate for
	// each handshake the server asks for one (see
	// Reloader.GetClientCertificate); Certificates are then not used by
	// the client. Clients only.
	GetClientCertificate func(*tls.CertificateRequestInfo) (*tls.Certificate, error)
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
	// SessionCache stores TLS sessions for resumption. nil means Base's
	// ClientSessionCache, or else a 64-entry LRU cache owned by this
	// Config, created on first use and shared with its clones.
	SessionCache tls.ClientSessionCache
	// ECHConfigList, when set, is an ECHConfigList (an HTTPS record's ech
	// key, or what GenerateECHKey returns): the client encrypts its
	// ClientHello to one of its configs, needs TLS 1.3, and fails with
	// ErrECHRejected if the server does not accept it. Clients only.
	ECHConfigList []byte

	// ClientAuth is the server's policy for client certificates.
	ClientAuth tls.ClientAuthType
	// ClientCAs verifies client certificates. It is required when
	// ClientAuth verifies certificates (the system roots are never used to
	// authenticate clients).
	ClientCAs *x509.CertPool
	// ECHKeys, when set, are the server's ECH keys (see GenerateECHKey):
	// a client that encrypts its ClientHello to one of their configs is
	// served with ECH; clients without ECH are served as before. Servers
	// only.
	ECHKeys []tls.EncryptedClientHelloKey

	mu     sync.Mutex
	cache  tls.ClientSessionCache // lazily created when SessionCache is nil
	client *tls.Config            // built by clientConfig
	server *tls.Config            // built by serverConfig
}

// Clone returns a copy of c. Slices are copied; certificates, pools,
// caches, functions and Base are shared. When c.SessionCache is nil, the
// clone shares c's internal session cache, so clones that differ only in
// ServerName still resume each other's sessions. Clone of nil returns nil.
func (c *Config) Clone() *Config {
	if c == nil {
		return nil
	}
	n := &Config{
		Base:                 c.Base,
		Certificates:         slices.Clone(c.Certificates),
		GetCertificate:       c.GetCertificate,
		GetClientCertificate: c.GetClientCertificate,
		NextProtos:           slices.Clone(c.NextProtos),
		MinVersion:           c.MinVersion,
		ServerName:           c.ServerName,
		RootCAs:              c.RootCAs,
		InsecureSkipVerify:   c.InsecureSkipVerify,
		PinnedSPKI:           slices.Clone(c.PinnedSPKI),
		SessionCache:         c.SessionCache,
		ECHConfigList:        slices.Clone(c.ECHConfigList),
		ClientAuth:           c.ClientAuth,
		ClientCAs:            c.ClientCAs,
		ECHKeys:              slices.Clone(c.ECHKeys),
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
	tc := &tls.Config{}
	if c.Base != nil {
		tc = c.Base.Clone()
	}
	if c.MinVersion != 0 {
		tc.MinVersion = c.MinVersion
	}
	if tc.MinVersion == 0 {
		tc.MinVersion = tls.VersionTLS12
	}
	if p := versionProblem(tc.MinVersion); p != "" {
		return nil, errors.New("tlsflow: " + p)
	}
	if len(c.Certificates) > 0 {
		tc.Certificates = c.Certificates
	}
	if len(c.NextProtos) > 0 {
		tc.NextProtos = c.NextProtos
	}
	if client {
		if c.ServerName != "" {
			tc.ServerName = c.ServerName
		}
		if c.RootCAs != nil {
			tc.RootCAs = c.RootCAs
		}
		tc.InsecureSkipVerify = tc.InsecureSkipVerify || c.InsecureSkipVerify
		if c.GetClientCertificate != nil {
			tc.GetClientCertificate = c.GetClientCertificate
		}
		if c.SessionCache != nil || tc.ClientSessionCache == nil {
			tc.ClientSessionCache = c.sessionCache()
		}
		tc.VerifyConnection = markVerify(tc.VerifyConnection)
		tc.VerifyPeerCertificate = markVerifyPeer(tc.VerifyPeerCertificate)
		if len(c.PinnedSPKI) > 0 {
			tc.VerifyConnection = chainVerify(verifyPins(slices.Clone(c.PinnedSPKI)), tc.VerifyConnection)
		}
		if len(c.ECHConfigList) > 0 {
			tc.EncryptedClientHelloConfigList = c.ECHConfigList
		}
		if tc.EncryptedClientHelloConfigList != nil {
			if err := checkECHConfigList(tc.EncryptedClientHelloConfigList); err != nil {
				return nil, err
			}
			tc.MinVersion = max(tc.MinVersion, tls.VersionTLS13)
		}
		if tc.MaxVersion != 0 && tc.MaxVersion < tc.MinVersion {
			return nil, fmt.Errorf("tlsflow: MaxVersion %s is below the minimum %s", tls.VersionName(tc.MaxVersion), tls.VersionName(tc.MinVersion))
		}
		return tc, nil
	}
	if tc.MaxVersion != 0 && tc.MaxVersion < tc.MinVersion {
		return nil, fmt.Errorf("tlsflow: MaxVersion %s is below the minimum %s", tls.VersionName(tc.MaxVersion), tls.VersionName(tc.MinVersion))
	}
	if c.GetCertificate != nil {
		tc.GetCertificate = c.GetCertificate
	}
	if c.ClientAuth != tls.NoClientCert {
		tc.ClientAuth = c.ClientAuth
	}
	if c.ClientCAs != nil {
		tc.ClientCAs = c.ClientCAs
	}
	tc.VerifyConnection = markVerify(tc.VerifyConnection)
	tc.VerifyPeerCertificate = markVerifyPeer(tc.VerifyPeerCertificate)
	if len(c.ECHKeys) > 0 {
		tc.EncryptedClientHelloKeys = c.ECHKeys
	}
	for i, k := range tc.EncryptedClientHelloKeys {
		if err := checkECHKeyConfig(k.Config); err != nil {
			return nil, fmt.Errorf("tlsflow: ECH key %d: %w", i, err)
		}
	}
	if len(tc.Certificates) == 0 && tc.GetCertificate == nil && tc.GetConfigForClient == nil {
		return nil, errors.New("tlsflow: server Config needs Certificates or GetCertificate")
	}
	if tc.ClientAuth >= tls.VerifyClientCertIfGiven && tc.ClientCAs == nil {
		return nil, fmt.Errorf("tlsflow: ClientAuth %v needs ClientCAs", tc.ClientAuth)
	}
	if get := tc.GetConfigForClient; get != nil {
		tc.GetConfigForClient = func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
			cfg, err := get(hello)
			if err != nil || cfg == nil {
				return cfg, err
			}
			if cfg.MinVersion != 0 {
				if p := versionProblem(cfg.MinVersion); p != "" {
					return nil, errors.New("tlsflow: GetConfigForClient: " + p)
				}
			}
			return cfg, nil
		}
	}
	return tc, nil
}

// versionProblem says what is wrong with a minimum TLS version, or ""
// when it is at or above tlsflow's floor.
func versionProblem(v uint16) string {
	switch {
	case v == tls.VersionTLS12 || v == tls.VersionTLS13:
		return ""
	case v < tls.VersionTLS12:
		return fmt.Sprintf("MinVersion %s is not accepted (TLS 1.2 is the minimum)", tls.VersionName(v))
	default:
		return fmt.Sprintf("unknown MinVersion %#04x", v)
	}
}

// callbackError is an error of a verification callback of Base
// (VerifyConnection, VerifyPeerCertificate): a failure to verify the
// peer, reported as such even when its alert could not be sent.
type callbackError struct{ err error }

func (e *callbackError) Error() string { return e.err.Error() }
func (e *callbackError) Unwrap() error { return e.err }

func markVerify(f func(tls.ConnectionState) error) func(tls.ConnectionState) error {
	if f == nil {
		return nil
	}
	return func(cs tls.ConnectionState) error {
		if err := f(cs); err != nil {
			return &callbackError{err}
		}
		return nil
	}
}

func markVerifyPeer(f func([][]byte, [][]*x509.Certificate) error) func([][]byte, [][]*x509.Certificate) error {
	if f == nil {
		return nil
	}
	return func(raw [][]byte, chains [][]*x509.Certificate) error {
		if err := f(raw, chains); err != nil {
			return &callbackError{err}
		}
		return nil
	}
}

// chainVerify runs first, then second if it is set.
func chainVerify(first, second func(tls.ConnectionState) error) func(tls.ConnectionState) error {
	if second == nil {
		return first
	}
	return func(cs tls.ConnectionState) error {
		if err := first(cs); err != nil {
			return err
		}
		return second(cs)
	}
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

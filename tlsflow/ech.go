package tlsflow

import (
	"crypto/ecdh"
	"crypto/rand"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"strings"
)

// Encrypted Client Hello (draft-ietf-tls-esni-22) code points.
const (
	// ECHVersion is the version of the ECHConfig format tlsflow reads and
	// writes (the encrypted_client_hello extension's code point).
	ECHVersion uint16 = 0xfe0d
	// KEMX25519 is DHKEM(X25519, HKDF-SHA256), the KEM of GenerateECHKey.
	KEMX25519 uint16 = 0x0020
	// KDFHKDFSHA256 is the HKDF-SHA256 KDF.
	KDFHKDFSHA256 uint16 = 0x0001
	// AEADAES128GCM is the AES-128-GCM AEAD.
	AEADAES128GCM uint16 = 0x0001
)

// The KEMs, KDFs and AEADs crypto/tls can use (its EncryptedClientHelloKey
// documentation).
var (
	echKEMs  = []uint16{0x0010, 0x0011, 0x0012, KEMX25519}
	echKDFs  = []uint16{0x0001, 0x0002, 0x0003}
	echAEADs = []uint16{0x0001, 0x0002, 0x0003}
)

// ECHCipherSuite is one HpkeSymmetricCipherSuite of an ECHConfig.
type ECHCipherSuite struct {
	KDF, AEAD uint16
}

// ECHExtension is one ECHConfigExtension. A Type with the high bit set
// is mandatory: a client that does not know it must not use the config.
type ECHExtension struct {
	Type uint16
	Data []byte
}

// ECHConfig is one ECHConfig of version ECHVersion (draft-ietf-tls-esni-22
// section 4): the public key a client encrypts its inner ClientHello to,
// and the public name it sends in the outer one. The zero value is not a
// valid config. An ECHConfig is a plain value; it is safe to share once
// no one modifies it.
type ECHConfig struct {
	// ConfigID identifies the config (and so the key) to the server.
	ConfigID uint8
	// KEM is the HPKE KEM of PublicKey (KEMX25519, …).
	KEM uint16
	// PublicKey is the KEM's serialised public key.
	PublicKey []byte
	// CipherSuites are the KDF and AEAD pairs the server accepts; at
	// least one.
	CipherSuites []ECHCipherSuite
	// MaxNameLength is the longest inner server name the server expects,
	// for padding; 0 when not known.
	MaxNameLength uint8
	// PublicName is the name sent in the outer ClientHello, which the
	// server's certificate must be valid for when it rejects ECH.
	PublicName string
	// Extensions are the config's extensions, in order.
	Extensions []ECHExtension
}

// ECHConfigError reports a malformed ECHConfig or ECHConfigList.
type ECHConfigError struct {
	// Field is the element that is malformed, e.g. "public_name".
	Field string
	// Reason says what is wrong with it.
	Reason string
}

func (e *ECHConfigError) Error() string {
	return "tlsflow: malformed ECH config: " + e.Field + ": " + e.Reason
}

func echErr(field, reason string) error { return &ECHConfigError{Field: field, Reason: reason} }

// MarshalBinary encodes c as one ECHConfig (version, length and
// contents): the value of tls.EncryptedClientHelloKey.Config. It fails if
// a field cannot be encoded or breaks the format's rules.
func (c *ECHConfig) MarshalBinary() ([]byte, error) {
	if len(c.PublicKey) == 0 || len(c.PublicKey) > 0xffff {
		return nil, echErr("public_key", "length must be 1 to 65535")
	}
	if len(c.CipherSuites) == 0 || 4*len(c.CipherSuites) > 0xfffc {
		return nil, echErr("cipher_suites", "must hold 1 to 16383 suites")
	}
	if err := checkPublicName(c.PublicName); err != nil {
		return nil, err
	}
	b := make([]byte, 4, 64+len(c.PublicKey)+len(c.PublicName))
	binary.BigEndian.PutUint16(b, ECHVersion)
	b = append(b, c.ConfigID)
	b = binary.BigEndian.AppendUint16(b, c.KEM)
	b = binary.BigEndian.AppendUint16(b, uint16(len(c.PublicKey)))
	b = append(b, c.PublicKey...)
	b = binary.BigEndian.AppendUint16(b, uint16(4*len(c.CipherSuites)))
	for _, s := range c.CipherSuites {
		b = binary.BigEndian.AppendUint16(b, s.KDF)
		b = binary.BigEndian.AppendUint16(b, s.AEAD)
	}
	b = append(b, c.MaxNameLength, byte(len(c.PublicName)))
	b = append(b, c.PublicName...)
	extLen := 0
	for _, e := range c.Extensions {
		if len(e.Data) > 0xffff {
			return nil, echErr("extensions", "extension data longer than 65535 bytes")
		}
		extLen += 4 + len(e.Data)
	}
	if extLen > 0xffff {
		return nil, echErr("extensions", "longer than 65535 bytes")
	}
	b = binary.BigEndian.AppendUint16(b, uint16(extLen))
	for _, e := range c.Extensions {
		b = binary.BigEndian.AppendUint16(b, e.Type)
		b = binary.BigEndian.AppendUint16(b, uint16(len(e.Data)))
		b = append(b, e.Data...)
	}
	if len(b)-4 > 0xffff {
		return nil, echErr("length", "config longer than 65535 bytes")
	}
	binary.BigEndian.PutUint16(b[2:], uint16(len(b)-4))
	return b, nil
}

// checkPublicName applies section 4's rules to public_name: a DNS name
// of 1 to 255 octets made of letters, digits, hyphens and dots, that is
// not an IP address and whose last label is not numeric.
func checkPublicName(name string) error {
	if len(name) == 0 || len(name) > 255 {
		return echErr("public_name", "length must be 1 to 255")
	}
	if _, err := netip.ParseAddr(name); err == nil {
		return echErr("public_name", "is an IP address")
	}
	labels := strings.Split(strings.TrimSuffix(name, "."), ".")
	for _, l := range labels {
		if l == "" || len(l) > 63 {
			return echErr("public_name", "empty or overlong label")
		}
		for i := 0; i < len(l); i++ {
			c := l[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
				return echErr("public_name", fmt.Sprintf("invalid character %q", c))
			}
		}
	}
	last := labels[len(labels)-1]
	numeric := true
	for i := 0; i < len(last); i++ {
		numeric = numeric && last[i] >= '0' && last[i] <= '9'
	}
	if numeric || strings.HasPrefix(strings.ToLower(last), "0x") && isHex(last[2:]) {
		return echErr("public_name", "last label is numeric")
	}
	return nil
}

func isHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
			return false
		}
	}
	return true
}

// reader reads big-endian fields from a byte slice.
type reader struct {
	b   []byte
	err error
}

func (r *reader) bytes(n int, field string) []byte {
	if r.err != nil {
		return nil
	}
	if len(r.b) < n {
		r.err = echErr(field, "truncated")
		return nil
	}
	v := r.b[:n:n]
	r.b = r.b[n:]
	return v
}

func (r *reader) u8(field string) uint8 {
	if v := r.bytes(1, field); v != nil {
		return v[0]
	}
	return 0
}

func (r *reader) u16(field string) uint16 {
	if v := r.bytes(2, field); v != nil {
		return binary.BigEndian.Uint16(v)
	}
	return 0
}

// vec reads a vector with an n-byte length prefix (n is 1 or 2).
func (r *reader) vec(n int, field string) []byte {
	var l int
	if n == 1 {
		l = int(r.u8(field))
	} else {
		l = int(r.u16(field))
	}
	return r.bytes(l, field)
}

// ParseECHConfigList decodes an ECHConfigList (what an HTTPS record's
// ech key holds). Configs of versions other than ECHVersion are skipped,
// as are configs whose public_name is not a valid host name, as clients
// must (section 4); the result may so be empty for a well-formed list.
// Any structurally malformed element makes it fail with an
// *ECHConfigError.
func ParseECHConfigList(b []byte) ([]ECHConfig, error) {
	r := &reader{b: b}
	list := r.vec(2, "list length")
	if r.err != nil {
		return nil, r.err
	}
	if len(r.b) != 0 {
		return nil, echErr("list length", "trailing bytes after the list")
	}
	if len(list) < 4 {
		return nil, echErr("list length", "empty list")
	}
	var configs []ECHConfig
	lr := &reader{b: list}
	for len(lr.b) > 0 {
		version := lr.u16("version")
		contents := lr.vec(2, "length")
		if lr.err != nil {
			return nil, lr.err
		}
		if version != ECHVersion {
			continue
		}
		c, err := parseECHContents(contents)
		if err != nil {
			return nil, err
		}
		if checkPublicName(c.PublicName) != nil {
			continue // section 4: clients ignore such configs
		}
		configs = append(configs, c)
	}
	return configs, nil
}

func parseECHContents(b []byte) (ECHConfig, error) {
	r := &reader{b: b}
	var c ECHConfig
	c.ConfigID = r.u8("config_id")
	c.KEM = r.u16("kem_id")
	c.PublicKey = r.vec(2, "public_key")
	suites := r.vec(2, "cipher_suites")
	c.MaxNameLength = r.u8("maximum_name_length")
	name := r.vec(1, "public_name")
	exts := r.vec(2, "extensions")
	if r.err != nil {
		return ECHConfig{}, r.err
	}
	if len(r.b) != 0 {
		return ECHConfig{}, echErr("length", "trailing bytes in the config")
	}
	if len(c.PublicKey) == 0 {
		return ECHConfig{}, echErr("public_key", "empty")
	}
	if len(suites) < 4 || len(suites)%4 != 0 {
		return ECHConfig{}, echErr("cipher_suites", "length is not a positive multiple of 4")
	}
	for i := 0; i < len(suites); i += 4 {
		c.CipherSuites = append(c.CipherSuites, ECHCipherSuite{
			KDF:  binary.BigEndian.Uint16(suites[i:]),
			AEAD: binary.BigEndian.Uint16(suites[i+2:]),
		})
	}
	c.PublicName = string(name)
	er := &reader{b: exts}
	for len(er.b) > 0 {
		typ := er.u16("extensions")
		data := er.vec(2, "extensions")
		if er.err != nil {
			return ECHConfig{}, er.err
		}
		c.Extensions = append(c.Extensions, ECHExtension{Type: typ, Data: data})
	}
	return c, nil
}

// supported reports whether crypto/tls can encrypt to c: a KEM and at
// least one cipher suite it implements, and no mandatory extension (none
// is defined yet, so any is unknown).
func (c *ECHConfig) supported() bool {
	if !contains(echKEMs, c.KEM) {
		return false
	}
	for _, e := range c.Extensions {
		if e.Type&0x8000 != 0 {
			return false
		}
	}
	for _, s := range c.CipherSuites {
		if contains(echKDFs, s.KDF) && contains(echAEADs, s.AEAD) {
			return true
		}
	}
	return false
}

func contains(list []uint16, v uint16) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}

// checkECHConfigList checks that a client can use list: well formed and
// with at least one config crypto/tls supports.
func checkECHConfigList(list []byte) error {
	configs, err := ParseECHConfigList(list)
	if err != nil {
		return err
	}
	for i := range configs {
		if configs[i].supported() {
			return nil
		}
	}
	return errors.New("tlsflow: ECHConfigList holds no config this client supports")
}

// ECHConfigList encodes the Config of each key as one ECHConfigList, in
// order: what a server publishes in its HTTPS record's ech key. Every
// key's Config must be one well-formed ECHConfig.
func ECHConfigList(keys ...tls.EncryptedClientHelloKey) ([]byte, error) {
	b := []byte{0, 0}
	for i, k := range keys {
		if err := checkECHKeyConfig(k.Config); err != nil {
			return nil, fmt.Errorf("tlsflow: ECH key %d: %w", i, err)
		}
		b = append(b, k.Config...)
	}
	if len(keys) == 0 {
		return nil, errors.New("tlsflow: ECHConfigList needs at least one key")
	}
	if len(b)-2 > 0xffff {
		return nil, errors.New("tlsflow: ECHConfigList longer than 65535 bytes")
	}
	binary.BigEndian.PutUint16(b, uint16(len(b)-2))
	return b, nil
}

// checkECHKeyConfig checks that config is exactly one ECHConfig of
// version ECHVersion.
func checkECHKeyConfig(config []byte) error {
	r := &reader{b: config}
	version := r.u16("version")
	contents := r.vec(2, "length")
	if r.err != nil {
		return r.err
	}
	if len(r.b) != 0 {
		return echErr("length", "trailing bytes after the config")
	}
	if version != ECHVersion {
		return echErr("version", fmt.Sprintf("%#04x is not %#04x", version, ECHVersion))
	}
	c, err := parseECHContents(contents)
	if err != nil {
		return err
	}
	return checkPublicName(c.PublicName)
}

// GenerateECHKey makes a new ECH key: an X25519 key pair
// (DHKEM(X25519, HKDF-SHA256)) whose ECHConfig offers HKDF-SHA256 with
// AES-128-GCM, names publicName as the outer ClientHello's server name,
// and has the given config ID. It returns the key for
// Config.ECHKeys (SendAsRetry set, so clients with a stale config get
// this one back) and the ECHConfigList holding its config, for clients
// (Config.ECHConfigList) and for an HTTPS record's ech key.
//
// The server's certificate must also be valid for publicName: a client
// whose ECH the server rejects verifies it against that name.
func GenerateECHKey(publicName string, configID uint8) (key tls.EncryptedClientHelloKey, configList []byte, err error) {
	priv, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		return tls.EncryptedClientHelloKey{}, nil, fmt.Errorf("tlsflow: generating ECH key: %w", err)
	}
	c := ECHConfig{
		ConfigID:     configID,
		KEM:          KEMX25519,
		PublicKey:    priv.PublicKey().Bytes(),
		CipherSuites: []ECHCipherSuite{{KDF: KDFHKDFSHA256, AEAD: AEADAES128GCM}},
		PublicName:   publicName,
	}
	config, err := c.MarshalBinary()
	if err != nil {
		return tls.EncryptedClientHelloKey{}, nil, err
	}
	key = tls.EncryptedClientHelloKey{Config: config, PrivateKey: priv.Bytes(), SendAsRetry: true}
	configList, err = ECHConfigList(key)
	if err != nil {
		return tls.EncryptedClientHelloKey{}, nil, err
	}
	return key, configList, nil
}

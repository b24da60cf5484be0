package tcp

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"net/netip"
	"time"

	"github.com/conduit-go/conduit/tcpflow/internal/seqnum"
)

// keys holds the secret of the ISN and port-offset hashes.
type keys struct {
	secret []byte
}

func newKeys(secret []byte) keys {
	if len(secret) == 0 {
		secret = make([]byte, 32)
		rand.Read(secret)
	}
	return keys{secret: append([]byte(nil), secret...)}
}

// maxExtra is the most extra bytes hash takes.
const maxExtra = 16

// hash returns 32 bits of SHA-256(label, addresses and ports, extra,
// secret); the secret is cut to 64 bytes.
func (k *keys) hash(label byte, a, b netip.AddrPort, withPorts bool, extra []byte) uint32 {
	var buf [1 + 12 + maxExtra + 64]byte
	buf[0] = label
	a4, b4 := a.Addr().As4(), b.Addr().As4()
	copy(buf[1:], a4[:])
	copy(buf[5:], b4[:])
	if withPorts {
		binary.BigEndian.PutUint16(buf[9:], a.Port())
		binary.BigEndian.PutUint16(buf[11:], b.Port())
	}
	n := 13 + copy(buf[13:13+maxExtra], extra)
	n += copy(buf[n:n+64], k.secret)
	h := sha256.Sum256(buf[:n])
	return binary.BigEndian.Uint32(h[:])
}

// isn returns the initial sequence number of a connection (RFC 6528):
// a keyed hash of the connection's addresses and ports plus a timer
// ticking every 4 microseconds.
func (k *keys) isn(id connID, now time.Time) seqnum.Value {
	m := uint32(now.UnixNano() / 4000)
	return seqnum.Value(m + k.hash('i', id.local, id.remote, true, nil))
}

// portOffset is F(local, remote, secret) of RFC 6056 algorithm 3.
func (k *keys) portOffset(local netip.Addr, remote netip.AddrPort) uint32 {
	return k.hash('p', netip.AddrPortFrom(local, 0), remote, true, nil)
}

package header

import (
	"encoding/hex"
	"net/netip"
	"testing"

	"github.com/stretchr/testify/require"
)

// Packets captured from Linux 6.x through a TUN device (IFF_TUN|IFF_NO_PI)
// in a network namespace, kernel side 10.99.7.1/24, our side 10.99.7.2.
const (
	// The kernel's connect() to 10.99.7.2:5001: SYN with MSS 1460,
	// SACK-permitted, timestamps, NOP, window scale 10.
	linuxSYNHex = "4500003c4f1140004006c8e20a6307010a630702af9413894a41be6d00000000" +
		"a002faf0f4380000020405b40402080a8d73dcca000000000103030a"
	// The kernel listening on 10.99.7.1:5002 answering a SYN from
	// 10.99.7.2:40000 (the SYN above with ports and addresses changed).
	linuxSYNACKHex = "4500003c00004000400617f40a6307010a630702138a9c40a439aabf4a41be6e" +
		"a012fe88b1e50000020405b40402080a88737a908d73dcca0103030a"
)

func mustHex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	require.NoError(t, err)
	return b
}

var (
	kernelAddr = netip.MustParseAddr("10.99.7.1")
	ourAddr    = netip.MustParseAddr("10.99.7.2")
)

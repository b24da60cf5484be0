//go:build armbe || arm64be || m68k || mips || mips64 || mips64p32 || ppc || ppc64 || s390 || s390x || shbe || sparc || sparc64

package vchan

// hostBigEndian: the shared page is little-endian (libxenvchan's layout);
// on this host every index, order and grant is byte-swapped on access.
const hostBigEndian = true

//go:build !(armbe || arm64be || m68k || mips || mips64 || mips64p32 || ppc || ppc64 || s390 || s390x || shbe || sparc || sparc64)

package vchan

// hostBigEndian: the shared page is little-endian (libxenvchan's layout),
// as is this host, so shared words are accessed as they are.
const hostBigEndian = false

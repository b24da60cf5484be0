package header

import "encoding/binary"

// TCP option kinds (RFC 9293, RFC 7323, RFC 2018).
const (
	TCPOptionEOL           = 0
	TCPOptionNOP           = 1
	TCPOptionMSS           = 2
	TCPOptionWS            = 3
	TCPOptionSACKPermitted = 4
	TCPOptionSACK          = 5
	TCPOptionTS            = 8

	tcpOptionMSSLen           = 4
	tcpOptionWSLen            = 3
	tcpOptionSACKPermittedLen = 2
	tcpOptionTSLen            = 10
	tcpSACKBlockLen           = 8

	// TCPMaxSACKBlocks is the most SACK blocks an option can carry.
	TCPMaxSACKBlocks = 4
)

// SACKBlock is one block of a SACK option: the sequence numbers of the
// first byte received and of the byte after the last.
type SACKBlock struct {
	Start, End uint32
}

// TCPOptions holds the options conduit understands. It is a plain value
// (comparable with ==); the zero value means no options.
type TCPOptions struct {
	HasMSS bool
	MSS    uint16

	HasWindowScale bool
	WindowScale    uint8 // as received; RFC 7323 caps its use at 14

	SACKPermitted bool

	HasTimestamps bool
	TSVal, TSEcr  uint32

	NumSACKBlocks int // 0 to TCPMaxSACKBlocks
	SACKBlocks    [TCPMaxSACKBlocks]SACKBlock
}

// SACK returns the SACK blocks present.
func (o *TCPOptions) SACK() []SACKBlock { return o.SACKBlocks[:o.NumSACKBlocks] }

// ParseTCPOptions parses the option bytes of a TCP header (TCP.Options).
// It stops at EOL and skips NOPs and options of unknown kind. Every
// option but EOL and NOP needs a length byte of at least 2 that stays
// within b, and the known options need their exact lengths (MSS 4,
// window scale 3, SACK-permitted 2, timestamps 10, SACK 2+8n with
// 1 <= n <= 4). A repeated option replaces the earlier one. The error is
// a *ParseError wrapping ErrBadOption; on error the returned options are
// the zero value. ParseTCPOptions never panics and does not allocate.
func ParseTCPOptions(b []byte) (TCPOptions, error) {
	var o TCPOptions
	for i := 0; i < len(b); {
		kind := b[i]
		switch kind {
		case TCPOptionEOL:
			return o, nil
		case TCPOptionNOP:
			i++
			continue
		}
		if i+1 >= len(b) {
			return TCPOptions{}, parseErr("tcp option", optionName(kind), ErrBadOption, "kind %d at offset %d has no length byte", kind, i)
		}
		l := int(b[i+1])
		if l < 2 {
			return TCPOptions{}, parseErr("tcp option", optionName(kind), ErrBadOption, "kind %d at offset %d has length %d < 2", kind, i, l)
		}
		if i+l > len(b) {
			return TCPOptions{}, parseErr("tcp option", optionName(kind), ErrBadOption, "kind %d at offset %d has length %d beyond the %d option bytes", kind, i, l, len(b))
		}
		v := b[i+2 : i+l]
		bad := func(want string) (TCPOptions, error) {
			return TCPOptions{}, parseErr("tcp option", optionName(kind), ErrBadOption, "length %d at offset %d, want %s", l, i, want)
		}
		switch kind {
		case TCPOptionMSS:
			if l != tcpOptionMSSLen {
				return bad("4")
			}
			o.HasMSS, o.MSS = true, binary.BigEndian.Uint16(v)
		case TCPOptionWS:
			if l != tcpOptionWSLen {
				return bad("3")
			}
			o.HasWindowScale, o.WindowScale = true, v[0]
		case TCPOptionSACKPermitted:
			if l != tcpOptionSACKPermittedLen {
				return bad("2")
			}
			o.SACKPermitted = true
		case TCPOptionTS:
			if l != tcpOptionTSLen {
				return bad("10")
			}
			o.HasTimestamps = true
			o.TSVal, o.TSEcr = binary.BigEndian.Uint32(v), binary.BigEndian.Uint32(v[4:])
		case TCPOptionSACK:
			n := (l - 2) / tcpSACKBlockLen
			if (l-2)%tcpSACKBlockLen != 0 || n < 1 || n > TCPMaxSACKBlocks {
				return bad("2+8n, 1 <= n <= 4")
			}
			o.NumSACKBlocks = n
			for j := range n {
				o.SACKBlocks[j] = SACKBlock{
					Start: binary.BigEndian.Uint32(v[j*8:]),
					End:   binary.BigEndian.Uint32(v[j*8+4:]),
				}
			}
		}
		i += l
	}
	return o, nil
}

func optionName(kind uint8) string {
	switch kind {
	case TCPOptionMSS:
		return "MSS"
	case TCPOptionWS:
		return "WindowScale"
	case TCPOptionSACKPermitted:
		return "SACKPermitted"
	case TCPOptionSACK:
		return "SACK"
	case TCPOptionTS:
		return "Timestamps"
	}
	return "unknown"
}

// alignedLen is the length of the four-byte-aligned layout Linux uses.
func (o *TCPOptions) alignedLen() int {
	n := 0
	if o.HasMSS {
		n += 4
	}
	switch {
	case o.HasTimestamps:
		n += 12 // SACK-permitted takes the place of two NOPs, if present
	case o.SACKPermitted:
		n += 4
	}
	if o.HasWindowScale {
		n += 4
	}
	if o.NumSACKBlocks > 0 {
		n += 4 + 8*o.NumSACKBlocks
	}
	return n
}

// packedLen is the length of the layout without NOPs, padded to four.
func (o *TCPOptions) packedLen() int {
	n := 0
	if o.HasMSS {
		n += tcpOptionMSSLen
	}
	if o.SACKPermitted {
		n += tcpOptionSACKPermittedLen
	}
	if o.HasTimestamps {
		n += tcpOptionTSLen
	}
	if o.HasWindowScale {
		n += tcpOptionWSLen
	}
	if o.NumSACKBlocks > 0 {
		n += 2 + 8*o.NumSACKBlocks
	}
	return (n + 3) &^ 3
}

// Len returns the number of bytes Marshal writes: a multiple of four,
// which may exceed TCPMaxOptionsSize (Marshal then fails).
func (o *TCPOptions) Len() int {
	if n := o.alignedLen(); n <= TCPMaxOptionsSize {
		return n
	}
	return o.packedLen()
}

// Marshal writes the options to b in the layout Linux uses (MSS;
// SACK-permitted or NOP NOP, then timestamps; NOP, window scale; NOP NOP
// SACK-permitted when there are no timestamps; NOP NOP SACK blocks), falling back to a layout without NOPs
// padded with EOL when the aligned one exceeds 40 bytes. b must be at
// least o.Len() bytes long. It returns the number of bytes written, a
// multiple of four, or a *ParseError wrapping ErrOptionsTooLong (or
// ErrBadOption for NumSACKBlocks out of range) without writing.
func (o *TCPOptions) Marshal(b []byte) (int, error) {
	if o.NumSACKBlocks < 0 || o.NumSACKBlocks > TCPMaxSACKBlocks {
		return 0, parseErr("tcp option", "SACK", ErrBadOption, "%d SACK blocks", o.NumSACKBlocks)
	}
	aligned := o.alignedLen() <= TCPMaxOptionsSize
	n := o.Len()
	if n > TCPMaxOptionsSize {
		return 0, parseErr("tcp option", "", ErrOptionsTooLong, "%d bytes > %d", n, TCPMaxOptionsSize)
	}
	b = b[:n]
	i := 0
	put := func(bs ...byte) { i += copy(b[i:], bs) }
	if o.HasMSS {
		put(TCPOptionMSS, tcpOptionMSSLen, byte(o.MSS>>8), byte(o.MSS))
	}
	if o.HasTimestamps {
		switch {
		case o.SACKPermitted:
			put(TCPOptionSACKPermitted, tcpOptionSACKPermittedLen)
		case aligned:
			put(TCPOptionNOP, TCPOptionNOP)
		}
		put(TCPOptionTS, tcpOptionTSLen)
		binary.BigEndian.PutUint32(b[i:], o.TSVal)
		binary.BigEndian.PutUint32(b[i+4:], o.TSEcr)
		i += 8
	}
	if o.HasWindowScale {
		if aligned {
			put(TCPOptionNOP)
		}
		put(TCPOptionWS, tcpOptionWSLen, o.WindowScale)
	}
	if o.SACKPermitted && !o.HasTimestamps {
		if aligned {
			put(TCPOptionNOP, TCPOptionNOP)
		}
		put(TCPOptionSACKPermitted, tcpOptionSACKPermittedLen)
	}
	if o.NumSACKBlocks > 0 {
		if aligned {
			put(TCPOptionNOP, TCPOptionNOP)
		}
		put(TCPOptionSACK, byte(2+8*o.NumSACKBlocks))
		for _, s := range o.SACK() {
			binary.BigEndian.PutUint32(b[i:], s.Start)
			binary.BigEndian.PutUint32(b[i+4:], s.End)
			i += 8
		}
	}
	clear(b[i:]) // EOL padding
	return n, nil
}

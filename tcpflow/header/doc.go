// Package header holds byte-slice views of the IPv4, TCP and ICMPv4 wire
// formats, their checksums and TCP option encoding, in the style of
// gVisor's pkg/tcpip/header.
//
// A view such as IPv4 is a []byte with accessors; it copies nothing and
// allocates nothing. Accessors assume the view has been checked with
// IsValid first: call IsValid once on untrusted bytes, then read fields
// freely. Encode methods write every field of a header into a view that
// is long enough (they panic on a short slice, like a slice index would).
//
//	ip := header.IPv4(pkt)
//	if err := ip.IsValid(len(pkt)); err != nil {
//		return err // errors.Is(err, header.ErrBadChecksum), ...
//	}
//	if ip.Protocol() == header.ProtocolTCP {
//		tcp := header.TCP(ip.Payload())
//		if err := tcp.IsValid(); err != nil || !tcp.IsChecksumValid(ip.Src(), ip.Dst()) {
//			return err
//		}
//		opts, err := header.ParseTCPOptions(tcp.Options())
//		...
//	}
//
// Views are plain slices: they are as safe for concurrent use as the
// bytes they view (concurrent reads are fine, writes need exclusion).
package header

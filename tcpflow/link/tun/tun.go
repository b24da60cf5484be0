// Package tun is a link endpoint on a Linux TUN device (/dev/net/tun,
// IFF_TUN|IFF_NO_PI): raw IPv4 packets, no link-layer header.
//
//	ep, err := tun.Open("ctun0", tun.Options{})
//	if err != nil {
//		return err
//	}
//	defer ep.Close()
//	ep.SetReceiver(func(pkt []byte) { ... }) // pkt is valid only during the call
//	err = ep.WritePacket(pkt)
package tun

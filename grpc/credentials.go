package conduitgrpc

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"

	"google.golang.org/grpc/credentials"
)

// Credentials returns the gRPC transport credentials of TLSByConduit: the
// flows of TLS endpoints arrive from the Conduit with their handshake
// done (conduit's TLS transport verified the certificate against the
// endpoint's server name with conduit.Config.TLS), and the credentials
// check, before the channel uses a flow, that
//
//   - it is TLS (a flow with a ConnectionState method, such as
//     *tlsflow.Conn);
//   - ALPN chose "h2", which gRPC servers require (conduit's
//     tlsflow.Config.NextProtos must offer it);
//   - the server's certificate is valid for the address's logical name
//     (the authority gRPC hands the handshake: Address.ServerName, or
//     the channel's :authority);
//
// and then tell gRPC the connection is secure (credentials.TLSInfo,
// privacy and integrity), so that per-RPC credentials that require
// transport security work. They cannot serve.
func Credentials() credentials.TransportCredentials { return conduitCreds{} }

type conduitCreds struct{}

// connectionStater is a TLS flow.
type connectionStater interface {
	ConnectionState() tls.ConnectionState
}

func (conduitCreds) ClientHandshake(_ context.Context, authority string, conn net.Conn) (net.Conn, credentials.AuthInfo, error) {
	cs, ok := tlsState(conn)
	if !ok {
		return nil, nil, fmt.Errorf("conduitgrpc: the flow to %s is not TLS (TLSByConduit needs TLS endpoints, such as tls:// or https+srv://)", authority)
	}
	if cs.NegotiatedProtocol != "h2" {
		return nil, nil, fmt.Errorf("conduitgrpc: TLS to %s chose ALPN %q, not h2 (offer \"h2\" in the Conduit's tlsflow.Config.NextProtos)", authority, cs.NegotiatedProtocol)
	}
	host := authority
	if h, _, err := net.SplitHostPort(authority); err == nil {
		host = h
	}
	if len(cs.PeerCertificates) == 0 {
		return nil, nil, fmt.Errorf("conduitgrpc: TLS to %s without a server certificate", authority)
	}
	if err := cs.PeerCertificates[0].VerifyHostname(host); err != nil {
		return nil, nil, fmt.Errorf("conduitgrpc: TLS to %s: %w", authority, err)
	}
	return conn, credentials.TLSInfo{
		State:          cs,
		CommonAuthInfo: credentials.CommonAuthInfo{SecurityLevel: credentials.PrivacyAndIntegrity},
	}, nil
}

func (conduitCreds) ServerHandshake(net.Conn) (net.Conn, credentials.AuthInfo, error) {
	return nil, nil, fmt.Errorf("conduitgrpc: Credentials() are for clients; serve with credentials.NewTLS")
}

func (conduitCreds) Info() credentials.ProtocolInfo {
	return credentials.ProtocolInfo{SecurityProtocol: "tls"}
}

func (c conduitCreds) Clone() credentials.TransportCredentials { return c }

// OverrideServerName does nothing: the name comes from the endpoint.
func (conduitCreds) OverrideServerName(string) error { return nil }

// tlsState finds the TLS state of conn or of a connection it wraps.
func tlsState(conn net.Conn) (tls.ConnectionState, bool) {
	for conn != nil {
		if s, ok := conn.(connectionStater); ok {
			return s.ConnectionState(), true
		}
		w, ok := conn.(interface{ NetConn() net.Conn })
		if !ok {
			break
		}
		conn = w.NetConn()
	}
	return tls.ConnectionState{}, false
}

// Package dnsstub is a DNS stub resolver built on github.com/miekg/dns:
// it asks recursive nameservers for A, AAAA and SRV records, with a
// search list, CNAME chains, EDNS0, TCP after a truncated UDP answer,
// timeouts and retries across servers, and a cache with TTL clamps,
// negative caching (RFC 2308), stale answers while the servers fail
// (RFC 8767) and one query in flight per name and type.
//
// A response is accepted only when its ID, question and flags match the
// query; others are dropped and counted in Stats. Records outside the
// CNAME chain of the question are ignored.
//
//	cfg, err := dnsstub.ReadResolvConf("/etc/resolv.conf")
//	if err != nil { … }
//	stub, err := dnsstub.New(cfg)
//	if err != nil { … }
//	defer stub.Close()
//	addrs, err := stub.LookupHost(ctx, "example.com")
//
// Errors are *Error values matching ErrNotFound (ErrNXDomain or
// ErrNoData), ErrTimeout, ErrRefused, ErrCNAMELoop or ErrClosed.
package dnsstub

package endpoint

// A Localer knows whether it is reachable only from this machine.
type Localer interface{ Local() bool }

// IsLocal reports whether ep can be reached only from this machine: a
// loopback TCP address or a Unix socket (a wrapper counts as its inner
// endpoint). Kinds that do not say are not local: a listener on them may
// be reached from elsewhere (vchan from other domains).
func IsLocal(ep Endpoint) bool {
	if l, ok := ep.(Localer); ok {
		return l.Local()
	}
	if in := Unwrap(ep); in != nil {
		return IsLocal(in)
	}
	return false
}

// Local reports whether the address is a loopback address.
func (e TCP) Local() bool { return e.Addr.Addr().Unmap().IsLoopback() }

// Local reports true: a Unix socket is reached only on this machine.
func (Unix) Local() bool { return true }

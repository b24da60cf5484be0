package endpoint

// Rewrap returns e over a new inner endpoint.
func (e TLS) Rewrap(inner Endpoint) Endpoint { e.Inner = inner; return e }

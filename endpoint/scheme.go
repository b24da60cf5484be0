package endpoint

// A Scheme is a transport scheme: a URI scheme that names an endpoint
// directly, with no service lookup (tcp://ADDR:PORT, unix:///PATH, …).
// The table of transport schemes is here and nowhere else: the resolver
// parses them and the registry refuses to let them be overridden.
type Scheme struct {
	// Name is the scheme, in lower case: "tcp", "tls+unix".
	Name string
	// Base is the grammar of the URI after the scheme, which is the name
	// of the plain scheme: "tcp" (HOST:PORT), "unix" (/PATH) or "vchan"
	// (DOMID/PORT or NAME/PORT).
	Base string
	// TLS is set when the scheme is TLS over its base ("tls" is TLS over
	// "tcp").
	TLS bool
}

var transportSchemes = [...]Scheme{
	{Name: "tcp", Base: "tcp"},
	{Name: "tls", Base: "tcp", TLS: true},
	{Name: "unix", Base: "unix"},
	{Name: "tls+unix", Base: "unix", TLS: true},
	{Name: "vchan", Base: "vchan"},
	{Name: "tls+vchan", Base: "vchan", TLS: true},
}

// TransportSchemes returns the transport schemes.
func TransportSchemes() []Scheme { return transportSchemes[:] }

// LookupScheme returns the transport scheme called name (in lower case).
func LookupScheme(name string) (Scheme, bool) { return lookupScheme(name) }

func lookupScheme(name string) (Scheme, bool) {
	for _, s := range transportSchemes {
		if s.Name == name {
			return s, true
		}
	}
	return Scheme{}, false
}

// TLSSchemeOf returns the TLS transport scheme over base ("tls+unix" over
// "unix").
func TLSSchemeOf(base string) (Scheme, bool) { return tlsSchemeOf(base) }

// tlsSchemeOf returns the TLS scheme over base.
func tlsSchemeOf(base string) (Scheme, bool) {
	for _, s := range transportSchemes {
		if s.Base == base && s.TLS {
			return s, true
		}
	}
	return Scheme{}, false
}

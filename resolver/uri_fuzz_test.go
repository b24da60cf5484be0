package resolver_test

import (
	"context"
	"errors"
	"testing"

	"github.com/conduit-go/conduit/endpoint"
	"github.com/conduit-go/conduit/resolver"
)

// FuzzParseURI checks that parsing and resolving never panic, that errors
// are *URIErrors naming the URI, and that what resolves is valid.
func FuzzParseURI(f *testing.F) {
	for _, tc := range goodURIs {
		f.Add(tc.uri)
	}
	for _, tc := range badURIs {
		f.Add(tc.uri)
	}
	for _, s := range []string{"tcp://:0", "https://:0/x", "tls+unix:///x?sni=a", "vchan://0/p"} {
		f.Add(s)
	}
	r, err := resolver.New(&resolver.Config{HostsFile: "testdata/hosts", LookupHost: fakeLookup})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { r.Close() })

	f.Fuzz(func(t *testing.T, uri string) {
		checkErr := func(what string, err error) {
			var ue *resolver.URIError
			if !errors.As(err, &ue) || ue.URI != uri {
				t.Fatalf("%s(%q): error %v (%T) is not a *URIError naming the URI", what, uri, err, err)
			}
		}
		u, perr := resolver.ParseURI(uri)
		if perr != nil {
			checkErr("ParseURI", perr)
			if !errors.Is(perr, resolver.ErrMalformedURI) {
				t.Fatalf("ParseURI(%q): %v is not ErrMalformedURI", uri, perr)
			}
		} else if u == nil {
			t.Fatalf("ParseURI(%q): nil URL and nil error", uri)
		}

		eps, err := r.Resolve(context.Background(), uri)
		if err != nil {
			checkErr("Resolve", err)
		} else {
			if perr != nil {
				t.Fatalf("Resolve(%q) succeeded where ParseURI failed: %v", uri, perr)
			}
			if len(eps) == 0 {
				t.Fatalf("Resolve(%q): no endpoints and no error", uri)
			}
			for _, e := range eps {
				if err := endpoint.Validate(e); err != nil {
					t.Fatalf("Resolve(%q): invalid endpoint: %v", uri, err)
				}
				if e.String() == "" {
					t.Fatalf("Resolve(%q): empty endpoint string", uri)
				}
			}
		}

		leps, err := r.ResolveListen(context.Background(), uri)
		if err != nil {
			checkErr("ResolveListen", err)
			return
		}
		if perr != nil {
			t.Fatalf("ResolveListen(%q) succeeded where ParseURI failed: %v", uri, perr)
		}
		if len(leps) == 0 {
			t.Fatalf("ResolveListen(%q): no endpoints and no error", uri)
		}
		for _, e := range leps {
			if e.String() == "" {
				t.Fatalf("ResolveListen(%q): empty endpoint string", uri)
			}
		}
		// A parsed URL prints as a URI that parses again.
		if _, err := resolver.ParseURI(u.String()); err != nil {
			t.Fatalf("ParseURI(%q) = %q, which does not parse: %v", uri, u.String(), err)
		}
	})
}

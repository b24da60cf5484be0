package resolver_test

import (
	"context"
	"fmt"
	"net/netip"

	"github.com/conduit-go/conduit/resolver"
)

func ExampleURIResolver_Resolve() {
	r, err := resolver.New(&resolver.Config{
		HostsFile: "-",
		Hosts: map[string][]netip.Addr{
			"db.internal": {netip.MustParseAddr("192.0.2.7"), netip.MustParseAddr("2001:db8::7")},
		},
		Services: map[string]resolver.Service{"gemini": {Port: 1965, TLS: true}},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer r.Close()
	for _, uri := range []string{
		"postgres://db.internal/orders",
		"gemini://db.internal",
		"unix:///run/app.sock",
		"tcp://db.internal",
	} {
		eps, err := r.Resolve(context.Background(), uri)
		if err != nil {
			fmt.Println(err)
			continue
		}
		for _, e := range eps {
			fmt.Println(e)
		}
	}
	// Output:
	// tcp://db.internal=192.0.2.7:5432
	// tcp://db.internal=[2001:db8::7]:5432
	// tls://db.internal@tcp://db.internal=192.0.2.7:1965
	// tls://db.internal@tcp://db.internal=[2001:db8::7]:1965
	// unix:///run/app.sock
	// resolver: URI "tcp://db.internal": malformed URI: missing port (want tcp://HOST:PORT)
}

// Command resolve shows how conduit turns URIs into endpoints without
// connecting anywhere: a TCP URI with an IP literal, a name from a static
// hosts table, a service scheme whose port and TLS come from the services
// table, and TLS over a Unix socket.
package main

import (
	"context"
	"fmt"
	"io"
	"log"
	"net/netip"
	"os"

	"github.com/conduit-go/conduit/resolver"
)

func run(ctx context.Context, w io.Writer) error {
	r, err := resolver.New(&resolver.Config{
		// A static hosts table: consulted before /etc/hosts and DNS.
		Hosts: map[string][]netip.Addr{
			"api.internal": {netip.MustParseAddr("10.0.0.7"), netip.MustParseAddr("fd00::7")},
		},
		HostsFile: "-", // do not read /etc/hosts: the output is the same everywhere
	})
	if err != nil {
		return err
	}
	defer r.Close()
	for _, uri := range []string{
		"tcp://192.0.2.10:8080",
		"tcp://api.internal:9000",
		"https://api.internal",
		"tls+unix:///run/app.sock?sni=app.internal",
		"vchan://4/web",
	} {
		eps, err := r.Resolve(ctx, uri)
		if err != nil {
			return err
		}
		fmt.Fprintln(w, uri)
		for _, ep := range eps {
			fmt.Fprintf(w, "  %-10s %s\n", ep.Kind(), ep)
		}
	}
	_, err = r.Resolve(ctx, "tcp://api.internal:99999")
	fmt.Fprintln(w, "error:", err)
	return nil
}

func main() {
	if err := run(context.Background(), os.Stdout); err != nil {
		log.Fatal(err)
	}
}

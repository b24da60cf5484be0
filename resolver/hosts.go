package resolver

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/netip"
	"os"
	"strings"

	"github.com/conduit-go/conduit/internal/netaddr"
)

// DefaultHostsFile is the hosts file a resolver reads when
// Config.HostsFile is empty.
const DefaultHostsFile = "/etc/hosts"

// maxHostsFile bounds how much of a hosts file is read.
const maxHostsFile = 16 << 20

// readHostsFile reads and parses a hosts file. A missing file is an empty
// table.
func readHostsFile(path string) (map[string][]netip.Addr, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("resolver: reading hosts file: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxHostsFile+1))
	if err != nil {
		return nil, fmt.Errorf("resolver: reading hosts file: %w", err)
	}
	if len(data) > maxHostsFile {
		return nil, fmt.Errorf("resolver: hosts file %s is larger than %d bytes", path, maxHostsFile)
	}
	return parseHosts(data), nil
}

// parseHosts parses hosts(5) text: "ADDRESS NAME [ALIAS…]" lines, '#'
// comments. Names are keyed by hostsKey; each name's addresses keep file
// order, without duplicates. Lines with an invalid address are skipped.
func parseHosts(data []byte) map[string][]netip.Addr {
	hosts := make(map[string][]netip.Addr)
	for line := range bytes.Lines(data) {
		if i := bytes.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		f := strings.Fields(string(line))
		if len(f) < 2 {
			continue
		}
		a, err := netip.ParseAddr(f[0])
		if err != nil {
			continue
		}
		for _, name := range f[1:] {
			k := hostsKey(name)
			hosts[k] = netaddr.AppendUnique(hosts[k], a)
		}
	}
	return hosts
}

// hostsKey is the key of a name in a hosts table: ASCII lower case,
// without a trailing dot.
func hostsKey(name string) string {
	return asciiLower(strings.TrimSuffix(name, "."))
}

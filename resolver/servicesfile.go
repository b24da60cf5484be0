package resolver

import (
	"bufio"
	"bytes"
	"errors"
	"io/fs"
	"os"
	"strconv"
	"strings"
)

// DefaultServicesFile is read by New when Config.ServicesFile is empty.
const DefaultServicesFile = "/etc/services"

// tlsServices are the services of /etc/services that are TLS from the
// first byte (implicit TLS), as assigned by IANA. The file itself does
// not say; every other entry is plain TCP.
var tlsServices = map[string]bool{
	"https": true, "imaps": true, "pop3s": true, "ldaps": true, "ftps": true,
	"ftps-data": true, "telnets": true, "nntps": true, "ircs-u": true,
	"submissions": true, "smtps": true, "domain-s": true, "sips": true,
	"amqps": true, "mqtts": true, "ircs": true, "dicom-tls": true,
	"xmpps-client": true, "xmpps-server": true, "syslog-tls": true, "coaps": true,
	"rsync-ssl": true,
}

// parseServices reads the TCP entries of a services(5) file: "NAME
// PORT/PROTO [ALIASES…] [# comment]". Malformed lines are skipped, as the
// C library does; the first entry of a name wins.
func parseServices(data []byte) map[string]Service {
	out := map[string]Service{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 4096), 64*1024)
	for sc.Scan() {
		line := sc.Text()
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		portStr, proto, ok := strings.Cut(f[1], "/")
		if !ok || proto != "tcp" {
			continue
		}
		port, err := strconv.ParseUint(portStr, 10, 16)
		if err != nil || port == 0 {
			continue
		}
		for _, name := range append([]string{f[0]}, f[2:]...) {
			if !validScheme(name) {
				continue
			}
			name = asciiLower(name)
			if _, seen := out[name]; seen {
				continue
			}
			if _, transport := transportScheme(name); transport {
				continue
			}
			out[name] = Service{Port: uint16(port), TLS: tlsServices[name]}
		}
	}
	return out
}

// readServicesFile reads path ("-" for none); a missing file is no error.
func readServicesFile(path string) (map[string]Service, error) {
	if path == "-" {
		return nil, nil
	}
	if path == "" {
		path = DefaultServicesFile
	}
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return parseServices(data), nil
}

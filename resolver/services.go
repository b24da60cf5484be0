package resolver

import (
	"fmt"
)

// A Service is what a service scheme (https, ssh, …) means: the default
// TCP port, whether the connection is TLS over TCP, and whether its
// HTTPS or SVCB records are asked (RFC 9460).
type Service struct {
	Port uint16
	TLS  bool
	// SVCB opts the scheme in to SVCB records: for https (on by default)
	// the HTTPS record of the host (or _PORT._https.HOST on a port other
	// than 443), for any other scheme the SVCB record of
	// _PORT._SCHEME.HOST (RFC 9460 §2.3). See docs/uris.md.
	SVCB bool
}

// builtinServices returns a fresh copy of the built-in service table.
func builtinServices() map[string]Service {
	return map[string]Service{
		"amqp":       {Port: 5672},
		"amqps":      {Port: 5671, TLS: true},
		"ftp":        {Port: 21},
		"http":       {Port: 80},
		"https":      {Port: 443, TLS: true, SVCB: true},
		"imap":       {Port: 143},
		"imaps":      {Port: 993, TLS: true},
		"irc":        {Port: 6667},
		"ircs":       {Port: 6697, TLS: true},
		"ldap":       {Port: 389},
		"ldaps":      {Port: 636, TLS: true},
		"mqtt":       {Port: 1883},
		"mqtts":      {Port: 8883, TLS: true},
		"mysql":      {Port: 3306},
		"pop3":       {Port: 110},
		"pop3s":      {Port: 995, TLS: true},
		"postgres":   {Port: 5432},
		"postgresql": {Port: 5432},
		"redis":      {Port: 6379},
		"smtp":       {Port: 25},
		"smtps":      {Port: 465, TLS: true},
		"ssh":        {Port: 22},
		"ws":         {Port: 80},
		"wss":        {Port: 443, TLS: true},
	}
}

// serviceTable builds the table: the services file's TCP entries, then
// the built-in table over them (it knows which are TLS), then extra,
// checking each of its entries.
func serviceTable(file, extra map[string]Service) (map[string]Service, error) {
	table := make(map[string]Service, len(file)+32)
	for name, svc := range file {
		table[name] = svc
	}
	for name, svc := range builtinServices() {
		table[name] = svc
	}
	for name, svc := range extra {
		if !validScheme(name) {
			return nil, fmt.Errorf("resolver: service %q: invalid scheme name", name)
		}
		scheme := asciiLower(name)
		if _, ok := transportScheme(scheme); ok {
			return nil, fmt.Errorf("resolver: service %q: cannot override a transport scheme", name)
		}
		if svc.Port == 0 {
			return nil, fmt.Errorf("resolver: service %q: port 0", name)
		}
		table[scheme] = svc
	}
	return table, nil
}

package conduit

import (
	"context"
	"net/url"

	"github.com/conduit-go/conduit/proxy"
)

// ProxyFromEnvironment returns a ProxyFunc that chooses a proxy by the
// environment as it is now (proxy.FromEnvironment): HTTP_PROXY for
// http:// destinations, HTTPS_PROXY for https:// and tls://, ALL_PROXY for
// every other host URI (tcp://, custom services) and for those whose own
// variable is unset, NO_PROXY for the exceptions, each also in lower case.
// As net/http does, localhost and loopback destinations are never
// proxied (the command, like curl, proxies them unless NO_PROXY says
// otherwise). docs/proxies.md has the rules.
func ProxyFromEnvironment() ProxyFunc { return ProxyFromEnv(proxy.FromEnvironment()) }

// ProxyFromEnv returns a ProxyFunc that chooses by env's rules.
func ProxyFromEnv(env *proxy.EnvConfig) ProxyFunc {
	choose := env.ProxyFunc()
	return func(_ context.Context, d ProxyDestination) ([]*url.URL, error) {
		u, err := choose(d.Scheme, d.Host, d.Port)
		if err != nil || u == nil {
			return nil, err
		}
		return []*url.URL{u}, nil
	}
}

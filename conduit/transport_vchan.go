package conduit

import (
	"context"
	"net"

	"github.com/conduit-go/conduit/endpoint"
	"github.com/conduit-go/conduit/vchan"
)

// VchanTransport is the built-in transport of endpoint.VchanDirect and
// endpoint.VchanNamed endpoints: vchan rings in shared memory between
// processes, found through the store directory of Config.
type VchanTransport struct {
	// Config configures the rings and the store; nil means defaults.
	Config *vchan.Config
}

// Dial connects to a vchan server by domain id (1..32751: domain id 0
// only asks a listener for a free one, and is refused here) or by name.
func (t *VchanTransport) Dial(ctx context.Context, ep endpoint.Endpoint, _ DialOptions) (net.Conn, error) {
	e, ok := ep.(endpoint.Vchan)
	if !ok {
		return nil, errorf("vchan transport cannot dial a %q endpoint", ep.Kind())
	}
	a := e.VchanAddress()
	if a.Name != "" {
		return dialVchan(vchan.DialName(ctx, t.Config, a.Name, a.Port))
	}
	return dialVchan(vchan.Dial(ctx, t.Config, a.Domid, a.Port))
}

func dialVchan(c *vchan.Conn, err error) (net.Conn, error) {
	if err != nil {
		return nil, err // not a typed nil inside net.Conn
	}
	return c, nil
}

// Listen serves a vchan port. A VchanDirect endpoint names the domain to
// listen as (vchan://0/PORT allocates a free domain id, which the
// listener's URI then shows); a VchanNamed endpoint registers its name
// for a freshly allocated domain.
func (t *VchanTransport) Listen(ctx context.Context, ep endpoint.Endpoint, _ ListenOptions) (net.Listener, error) {
	cfg := &vchan.Config{}
	if t.Config != nil {
		cfg = t.Config.Clone()
	}
	e, ok := ep.(endpoint.Vchan)
	if !ok {
		return nil, errorf("vchan transport cannot listen on a %q endpoint", ep.Kind())
	}
	a := e.VchanAddress()
	if a.Name != "" {
		cfg.Name = a.Name
	} else {
		cfg.Domid = a.Domid
	}
	port := a.Port
	l, err := vchan.Listen(ctx, cfg, port)
	if err != nil {
		return nil, err
	}
	return l, nil
}

package conduitgrpc

import (
	"errors"
	"net/netip"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/balancer"
	"google.golang.org/grpc/balancer/endpointsharding"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/metadata"
	gresolver "google.golang.org/grpc/resolver"

	"github.com/conduit-go/conduit/endpoint"
	"github.com/conduit-go/conduit/resolver/dnsstub"
)

func TestSchedule(t *testing.T) {
	count := func(s []int, n int) []int {
		c := make([]int, n)
		for _, i := range s {
			c[i]++
		}
		return c
	}
	assert.Equal(t, []int{6, 3, 1}, count(schedule([]int{60, 30, 10}), 3))
	assert.Equal(t, []int{1, 1, 1}, count(schedule([]int{0, 0, 0}), 3))
	assert.Equal(t, []int{0, 1, 0}, count(schedule([]int{0, 5, 0}), 3))
	assert.Equal(t, []int{1}, count(schedule([]int{65535}), 1))

	// Weights too fine for the schedule are scaled, keeping every one.
	big := schedule([]int{65535, 65534, 1})
	assert.LessOrEqual(t, len(big), maxSchedule+3)
	c := count(big, 3)
	assert.InDelta(t, c[0], c[1], 1)
	assert.GreaterOrEqual(t, c[2], 1)

	// Smooth: in every prefix, each index is within one pick of its share.
	w := []int{5, 3, 2}
	s := schedule(w)
	got := make([]int, 3)
	for n, i := range s {
		got[i]++
		for j := range w {
			share := float64((n+1)*w[j]) / 10
			assert.InDelta(t, share, got[j], 1.0, "prefix %d index %d", n+1, j)
		}
	}
}

// namedPicker answers every pick with its name in the metadata.
type namedPicker string

func (p namedPicker) Pick(balancer.PickInfo) (balancer.PickResult, error) {
	return balancer.PickResult{Metadata: metadata.Pairs("child", string(p))}, nil
}

type errPicker struct{ err error }

func (p errPicker) Pick(balancer.PickInfo) (balancer.PickResult, error) {
	return balancer.PickResult{}, p.err
}

func child(name string, srv *SRV, st connectivity.State) endpointsharding.ChildState {
	var p balancer.Picker = namedPicker(name)
	if st == connectivity.TransientFailure {
		p = errPicker{errors.New(name + " is down")}
	}
	return endpointsharding.ChildState{
		Endpoint: gresolver.Endpoint{Addresses: []gresolver.Address{{Addr: name}}, Attributes: endpointAttributes("svc", srv)},
		State:    balancer.State{ConnectivityState: st, Picker: p},
	}
}

func picks(t *testing.T, p balancer.Picker, n int) map[string]int {
	t.Helper()
	m := map[string]int{}
	for range n {
		r, err := p.Pick(balancer.PickInfo{})
		require.NoError(t, err)
		m[r.Metadata.Get("child")[0]]++
	}
	return m
}

func TestSRVState(t *testing.T) {
	p10w3 := &SRV{Target: "a", Priority: 10, Weight: 3}
	p10w1 := &SRV{Target: "b", Priority: 10, Weight: 1}
	p20 := &SRV{Target: "c", Priority: 20, Weight: 1}
	const (
		ready = connectivity.Ready
		conn  = connectivity.Connecting
		tf    = connectivity.TransientFailure
		idle  = connectivity.Idle
	)

	// The lowest priority, by weight.
	s := srvState([]endpointsharding.ChildState{child("c", p20, ready), child("a", p10w3, ready), child("b", p10w1, ready)}, new(atomic.Uint32))
	assert.Equal(t, ready, s.ConnectivityState)
	assert.Equal(t, map[string]int{"a": 300, "b": 100}, picks(t, s.Picker, 400))

	// Only the ready ones of it.
	s = srvState([]endpointsharding.ChildState{child("c", p20, ready), child("a", p10w3, tf), child("b", p10w1, ready)}, new(atomic.Uint32))
	assert.Equal(t, map[string]int{"b": 40}, picks(t, s.Picker, 40))

	// None of it is ready: the next priority, even while the first
	// reconnects.
	s = srvState([]endpointsharding.ChildState{child("c", p20, ready), child("a", p10w3, conn), child("b", p10w1, idle)}, new(atomic.Uint32))
	assert.Equal(t, ready, s.ConnectivityState)
	assert.Equal(t, map[string]int{"c": 40}, picks(t, s.Picker, 40))

	// Endpoints without SRV records come after every priority.
	s = srvState([]endpointsharding.ChildState{child("x", nil, ready), child("c", p20, ready)}, new(atomic.Uint32))
	assert.Equal(t, map[string]int{"c": 10}, picks(t, s.Picker, 10))
	s = srvState([]endpointsharding.ChildState{child("x", nil, ready), child("y", nil, ready)}, new(atomic.Uint32))
	assert.Equal(t, map[string]int{"x": 5, "y": 5}, picks(t, s.Picker, 10))

	// Nothing ready, something connecting: RPCs wait.
	s = srvState([]endpointsharding.ChildState{child("a", p10w3, tf), child("c", p20, conn)}, new(atomic.Uint32))
	assert.Equal(t, conn, s.ConnectivityState)
	_, err := s.Picker.Pick(balancer.PickInfo{})
	assert.ErrorIs(t, err, balancer.ErrNoSubConnAvailable)

	// Everything down: a child's error.
	s = srvState([]endpointsharding.ChildState{child("a", p10w3, tf), child("c", p20, tf)}, new(atomic.Uint32))
	assert.Equal(t, tf, s.ConnectivityState)
	_, err = s.Picker.Pick(balancer.PickInfo{})
	assert.ErrorContains(t, err, "is down")
}

func TestStateFromEndpoints(t *testing.T) {
	tcp4 := endpoint.TCP{Host: "t1.svc.test", Addr: netip.MustParseAddrPort("192.0.2.1:443")}
	tcp6 := endpoint.TCP{Host: "t1.svc.test", Addr: netip.MustParseAddrPort("[2001:db8::1]:443")}
	other := endpoint.TCP{Host: "t2.svc.test", Addr: netip.MustParseAddrPort("192.0.2.2:443")}
	sock := endpoint.TLS{ServerName: "localhost", Inner: endpoint.Unix{Path: "/run/app.sock"}}
	tap := &srvTap{answers: map[string][2][]dnsstub.SRV{}}
	tap.answers["_https._tcp.svc.test"] = [2][]dnsstub.SRV{{
		{Target: "t1.svc.test.", Port: 443, Priority: 1, Weight: 70},
		{Target: "T2.svc.test", Port: 443, Priority: 2, Weight: 30},
	}}
	eps := []endpoint.Endpoint{
		endpoint.TLS{ServerName: "svc.test", Inner: tcp4},
		endpoint.TLS{ServerName: "svc.test", Inner: other},
		endpoint.TLS{ServerName: "svc.test", Inner: tcp6},
		sock,
	}

	r := &ccResolver{b: &Builder{tap: tap}, name: "svc.test", srvName: "_https._tcp.svc.test"}
	st, _ := r.state(eps)
	require.Len(t, st.Endpoints, 3)
	e := st.Endpoints[0]
	assert.Equal(t, []string{"192.0.2.1:443", "[2001:db8::1]:443"}, []string{e.Addresses[0].Addr, e.Addresses[1].Addr})
	assert.Equal(t, "svc.test", e.Addresses[0].ServerName)
	srv, ok := SRVOf(e)
	assert.True(t, ok)
	assert.Equal(t, SRV{Target: "t1.svc.test", Port: 443, Priority: 1, Weight: 70}, srv)
	assert.Equal(t, "svc.test", LogicalNameOf(e))
	got, ok := EndpointOf(e.Addresses[1])
	assert.True(t, ok)
	assert.Equal(t, endpoint.Endpoint(endpoint.TLS{ServerName: "svc.test", Inner: tcp6}), got)
	srv, _ = SRVOf(st.Endpoints[1])
	assert.Equal(t, uint16(30), srv.Weight)
	_, ok = SRVOf(st.Endpoints[2])
	assert.False(t, ok, "a Unix socket has no SRV record")
	assert.Equal(t, "unix:///run/app.sock", st.Endpoints[2].Addresses[0].Addr)
	assert.Equal(t, "localhost", st.Endpoints[2].Addresses[0].ServerName)
	assert.Len(t, st.Addresses, 4)

	// TLSByConduit: the TLS endpoint itself, dialed as a URI.
	r.b.tlsMode = TLSByConduit
	st, _ = r.state(eps[:1])
	a := st.Endpoints[0].Addresses[0]
	assert.Equal(t, "tls://192.0.2.1:443?sni=svc.test", a.Addr)
	assert.Empty(t, a.ServerName)
}

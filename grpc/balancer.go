package conduitgrpc

import (
	"errors"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"google.golang.org/grpc/balancer"
	"google.golang.org/grpc/balancer/base"
	"google.golang.org/grpc/balancer/endpointsharding"
	"google.golang.org/grpc/balancer/pickfirst"
	"google.golang.org/grpc/connectivity"
	gresolver "google.golang.org/grpc/resolver"
)

// BalancerName is the name of the SRV balancer in gRPC service configs.
const BalancerName = "conduit_srv"

// ServiceConfig is a gRPC service config that selects the SRV balancer:
// pass it to grpc.WithDefaultServiceConfig after RegisterBalancer.
const ServiceConfig = `{"loadBalancingConfig":[{"` + BalancerName + `":{}}]}`

var registerOnce sync.Once

// RegisterBalancer registers the SRV balancer with gRPC under
// BalancerName. gRPC keeps its balancers in a global registry that must
// be filled before channels are created (balancer.Register is not safe
// for concurrent use): call RegisterBalancer from main or an init
// function, before grpc.NewClient. Calls after the first do nothing.
//
// The balancer follows RFC 2782 over the endpoints of the resolver
// (SRVOf): it sends every RPC to the lowest priority that has a ready
// connection, spread over that priority's ready endpoints in proportion
// to their weights, and fails over to the next priority when every
// endpoint of a priority is down, coming back as soon as one of them is
// ready again. It keeps a connection to every endpoint, backups
// included, so that a fail-over waits for no handshake. The spread is
// deterministic (a smooth weighted round robin, the one nginx uses):
// over any run of RPCs each endpoint's share is within a few RPCs of its
// weight's. A weight of 0 gets no traffic while an endpoint of the same
// priority with a weight is ready; endpoints that all have weight 0
// share evenly. Endpoints without an SRV record (a URI that is not an
// SRV URI) come after every SRV priority, with equal weights: for them
// the balancer is a round robin.
func RegisterBalancer() {
	registerOnce.Do(func() { balancer.Register(balancerBuilder{}) })
}

type balancerBuilder struct{}

func (balancerBuilder) Name() string { return BalancerName }

func (balancerBuilder) Build(cc balancer.ClientConn, opts balancer.BuildOptions) balancer.Balancer {
	child := balancer.Get(pickfirst.Name).Build
	next := new(atomic.Uint32)
	next.Store(rand.Uint32()) // clients do not start in step
	return &srvBalancer{Balancer: endpointsharding.NewBalancer(srvClientConn{cc, next}, opts, child, endpointsharding.Options{})}
}

// srvBalancer is endpointsharding (one pick_first per endpoint, each
// reconnecting when it goes idle) with a picker of its own.
type srvBalancer struct {
	balancer.Balancer
}

func (b *srvBalancer) UpdateClientConnState(s balancer.ClientConnState) error {
	return b.Balancer.UpdateClientConnState(balancer.ClientConnState{
		ResolverState: pickfirst.EnableHealthListener(s.ResolverState),
	})
}

// srvClientConn replaces endpointsharding's picker by the SRV picker.
// Its pickers share one position in their schedule, so that a new
// picker (a connection came or went) goes on where the last one was.
type srvClientConn struct {
	balancer.ClientConn
	next *atomic.Uint32
}

func (cc srvClientConn) UpdateState(s balancer.State) {
	children := endpointsharding.ChildStatesFromPicker(s.Picker)
	if len(children) == 0 {
		cc.ClientConn.UpdateState(s) // no endpoints: endpointsharding's error
		return
	}
	cc.ClientConn.UpdateState(srvState(children, cc.next))
}

// unrecorded is the priority of endpoints without an SRV record: after
// every priority a record can have.
const unrecorded = 1 << 16

// srvState picks the children to send RPCs to.
func srvState(children []endpointsharding.ChildState, next *atomic.Uint32) balancer.State {
	type ready struct {
		priority, weight int
		picker           balancer.Picker
		key              string
	}
	var (
		readies    []ready
		waiting    bool
		failPicker balancer.Picker
	)
	for _, c := range children {
		switch c.State.ConnectivityState {
		case connectivity.Ready:
			r := ready{priority: unrecorded, weight: 1, picker: c.State.Picker, key: endpointKeyOf(c.Endpoint)}
			if s, ok := SRVOf(c.Endpoint); ok {
				r.priority, r.weight = int(s.Priority), int(s.Weight)
			}
			readies = append(readies, r)
		case connectivity.Connecting, connectivity.Idle:
			waiting = true
		case connectivity.TransientFailure:
			if failPicker == nil {
				failPicker = c.State.Picker
			}
		}
	}
	if len(readies) > 0 {
		// endpointsharding lists its children in no set order: sort
		// them, so that successive pickers agree on the schedule.
		slices.SortFunc(readies, func(a, b ready) int { return strings.Compare(a.key, b.key) })
		best := slices.MinFunc(readies, func(a, b ready) int { return a.priority - b.priority }).priority
		var pickers []balancer.Picker
		var weights []int
		for _, r := range readies {
			if r.priority == best {
				pickers = append(pickers, r.picker)
				weights = append(weights, r.weight)
			}
		}
		return balancer.State{ConnectivityState: connectivity.Ready, Picker: &weightedPicker{pickers: pickers, schedule: schedule(weights), next: next}}
	}
	if waiting {
		return balancer.State{ConnectivityState: connectivity.Connecting, Picker: base.NewErrPicker(balancer.ErrNoSubConnAvailable)}
	}
	if failPicker == nil {
		failPicker = base.NewErrPicker(errors.New("conduitgrpc: no endpoint to pick"))
	}
	return balancer.State{ConnectivityState: connectivity.TransientFailure, Picker: failPicker}
}

// endpointKeyOf identifies a gRPC endpoint by its addresses.
func endpointKeyOf(e gresolver.Endpoint) string {
	var b strings.Builder
	for _, a := range e.Addresses {
		b.WriteString(a.Addr)
		b.WriteByte(' ')
	}
	return b.String()
}

// maxSchedule bounds the length of a weighted picker's schedule: weights
// whose sum (divided by their greatest common divisor) is larger are
// scaled down to it.
const maxSchedule = 1024

// weightedPicker goes round a schedule of its children in which each
// appears as often as its weight says.
type weightedPicker struct {
	pickers  []balancer.Picker
	schedule []int
	next     *atomic.Uint32 // the balancer's
}

// Pick picks the next child of the schedule. It is safe for concurrent
// use.
func (p *weightedPicker) Pick(info balancer.PickInfo) (balancer.PickResult, error) {
	i := p.next.Add(1)
	return p.pickers[p.schedule[i%uint32(len(p.schedule))]].Pick(info)
}

// schedule returns an order of indices of weights in which each index
// with a positive weight appears in proportion to it, spread evenly (the
// smooth weighted round robin): a weight of 0 is left out unless every
// weight is 0, when all count as 1.
func schedule(weights []int) []int {
	w := make([]int, len(weights))
	total := 0
	for i, x := range weights {
		w[i] = max(x, 0)
		total += w[i]
	}
	if total == 0 {
		for i := range w {
			w[i] = 1
		}
		total = len(w)
	}
	g := 0
	for _, x := range w {
		g = gcd(g, x)
	}
	total = 0
	for i := range w {
		w[i] /= g
		total += w[i]
	}
	if total > maxSchedule {
		scaled := 0
		for i, x := range w {
			if x > 0 {
				w[i] = max(1, x*maxSchedule/total)
				scaled += w[i]
			}
		}
		total = scaled
	}
	current := make([]int, len(w))
	out := make([]int, 0, total)
	for range total {
		best := -1
		for i, x := range w {
			if x == 0 {
				continue
			}
			current[i] += x
			if best < 0 || current[i] > current[best] {
				best = i
			}
		}
		current[best] -= total
		out = append(out, best)
	}
	return out
}

func gcd(a, b int) int {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

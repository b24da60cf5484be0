package conduitgrpc

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/conduit-go/conduit/resolver/dnsstub"
)

func TestSRVTap(t *testing.T) {
	answers := [][]dnsstub.SRV{
		{{Target: "A.svc.test.", Port: 1, Priority: 1, Weight: 5, TTL: 0}},
		{{Target: "b.svc.test.", Port: 2, Priority: 2, Weight: 7, TTL: 3 * time.Second}},
	}
	n := 0
	tap := &srvTap{realTTL: true, lookup: func(_ context.Context, name string) ([]dnsstub.SRV, error) {
		assert.Equal(t, "_grpc._tcp.svc.test.", name)
		if n == len(answers) {
			return nil, errors.New("dns: server failed")
		}
		n++
		return answers[n-1], nil
	}}
	recs, err := tap.LookupSRV(context.Background(), "_grpc._tcp.svc.test.")
	require.NoError(t, err)
	// A DNS TTL of 0 ("do not cache") stays one for the resolver, which
	// takes a hook's 0 for "no TTL".
	assert.Equal(t, time.Nanosecond, recs[0].TTL)
	assert.Zero(t, answers[0][0].TTL, "the lookup's answer is not modified")

	_, err = tap.LookupSRV(context.Background(), "_grpc._tcp.svc.test.")
	require.NoError(t, err)
	// The newest answer, and the one before (an Update read late).
	got, ok := tap.find("_GRPC._tcp.svc.test", "b.svc.test", 2)
	assert.True(t, ok)
	assert.Equal(t, SRV{Target: "b.svc.test", Port: 2, Priority: 2, Weight: 7}, got)
	got, ok = tap.find("_grpc._tcp.svc.test", "a.svc.test", 1)
	assert.True(t, ok)
	assert.Equal(t, uint16(5), got.Weight)
	_, ok = tap.find("_grpc._tcp.svc.test", "a.svc.test", 2)
	assert.False(t, ok, "another port")

	// A failed lookup forgets nothing.
	_, err = tap.LookupSRV(context.Background(), "_grpc._tcp.svc.test.")
	assert.Error(t, err)
	_, ok = tap.find("_grpc._tcp.svc.test", "b.svc.test", 2)
	assert.True(t, ok)

	// A hook's TTLs are passed on as they are.
	hook := &srvTap{lookup: func(context.Context, string) ([]dnsstub.SRV, error) { return answers[0], nil }}
	recs, err = hook.LookupSRV(context.Background(), "x")
	require.NoError(t, err)
	assert.Zero(t, recs[0].TTL)
}

package dnsstub

import (
	"context"
	"errors"
	"strings"

	"github.com/miekg/dns"
)

// flight is a query in progress, shared by the lookups waiting for it.
type flight struct {
	done chan struct{}
	e    *entry
	err  *Error
}

// begin returns the fresh cached entry for (fqdn, qtype), or the flight
// to wait for (starting one if none is in progress).
func (s *Stub) begin(fqdn string, qtype uint16) (*entry, *flight, *Error) {
	key := cacheKey{strings.ToLower(fqdn), qtype}
	now := s.now()
	s.mu.RLock()
	if s.closed {
		s.mu.RUnlock()
		return nil, nil, &Error{Name: fqdn, Type: dns.TypeToString[qtype], Err: ErrClosed}
	}
	if e := s.cache[key]; e != nil && now.Before(e.expires) {
		s.mu.RUnlock()
		s.stats.hits.Add(1)
		return e.result(fqdn, qtype)
	}
	s.mu.RUnlock()

	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, nil, &Error{Name: fqdn, Type: dns.TypeToString[qtype], Err: ErrClosed}
	}
	if e := s.cache[key]; e != nil && now.Before(e.expires) {
		s.stats.hits.Add(1)
		return e.result(fqdn, qtype)
	}
	if f := s.flights[key]; f != nil {
		s.stats.shared.Add(1)
		return nil, f, nil
	}
	s.stats.misses.Add(1)
	f := &flight{done: make(chan struct{})}
	s.flights[key] = f
	s.wg.Add(1) // under mu, before Close can see closed and Wait
	go s.fly(key, fqdn, qtype, f)
	return nil, f, nil
}

// result returns a cached entry as begin does: a negative entry as its
// error too.
func (e *entry) result(fqdn string, qtype uint16) (*entry, *flight, *Error) {
	if e.err != nil {
		return e, nil, &Error{Name: fqdn, Type: dns.TypeToString[qtype], Err: e.err}
	}
	return e, nil, nil
}

// wait waits for a flight, or for ctx.
func wait(ctx context.Context, f *flight) (*entry, *Error) {
	select {
	case <-f.done:
		return f.e, f.err
	case <-ctx.Done():
		return nil, &Error{Err: ctx.Err()}
	}
}

// fly runs a query for (fqdn, qtype), caches the answer and completes f.
func (s *Stub) fly(key cacheKey, fqdn string, qtype uint16, f *flight) {
	defer s.wg.Done()
	e, err := s.resolve(s.ctx, fqdn, qtype)
	if err != nil && s.ctx.Err() != nil {
		err.Err = ErrClosed
	}
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case err == nil:
		s.store(key, e, now)
		if e.err != nil {
			err = &Error{Name: fqdn, Type: dns.TypeToString[qtype], Err: e.err}
		}
	case errors.Is(err.Err, ErrTimeout) || errors.Is(err.Err, ErrRefused):
		if old := s.cache[key]; old != nil && now.Before(old.stale) {
			// RFC 8767: serve stale, and do not ask again for a while.
			s.stats.stale.Add(1)
			fresh := &entry{addrs: old.addrs, srvs: old.srvs, svcbs: old.svcbs, err: old.err, expires: now.Add(staleTTL), stale: old.stale, cached: true}
			old.dead = true
			s.cache[key] = fresh
			e, err = fresh, nil
			if fresh.err != nil {
				err = &Error{Name: fqdn, Type: dns.TypeToString[qtype], Err: fresh.err}
			}
		}
	}
	delete(s.flights, key)
	f.e, f.err = e, err
	close(f.done)
}

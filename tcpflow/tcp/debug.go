package tcp

import "fmt"

func (p *Protocol) debug(msg string, args ...any) {
	if p.o.Logger != nil {
		p.o.Logger.Debug(msg, args...)
	}
}

// DebugStates returns the states of the connections, space-separated,
// for tests and logs.
func (p *Protocol) DebugStates() string {
	p.mu.Lock()
	var es []*endpoint
	for _, e := range p.conns {
		es = append(es, e)
	}
	p.mu.Unlock()
	s := ""
	for i, e := range es {
		if i > 0 {
			s += " "
		}
		e.mu.Lock()
		s += e.state.String()
		e.mu.Unlock()
	}
	return s
}

// DebugDump describes every connection's variables, for debugging.
func (p *Protocol) DebugDump() string {
	p.mu.Lock()
	var es []*endpoint
	for _, e := range p.conns {
		es = append(es, e)
	}
	p.mu.Unlock()
	s := ""
	for _, e := range es {
		e.mu.Lock()
		s += fmt.Sprintf("%v->%v %v una=%d nxt=%d max=%d wnd=%d cwnd=%d ssthresh=%d sndBuf=%d bufStart=%d fin=%v rcvNxt=%d adv=%d rcvBuf=%d ooo=%d rto=%v rtoArmed=%v persist=%v retries=%d recovery=%v dup=%d charged=%d err=%v\n",
			e.id.local, e.id.remote, e.state, e.sndUna-e.iss, e.sndNxt-e.iss, e.sndMax-e.iss, e.sndWnd, e.cwnd, e.ssthresh,
			e.sndBuf.Len(), e.sndBufStart-e.iss, e.finQueued, e.rcvNxt-e.irs, e.rcvAdvEdge-e.irs, e.rcvBuf.Len(), len(e.ooo),
			e.rto, e.rtoTimer.armed(), e.persistTimer.armed(), e.retries, e.inRecovery, e.dupAcks, e.charged, e.err)
		e.mu.Unlock()
	}
	return s
}

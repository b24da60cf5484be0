package resolver

import "context"

// resolveSVCB resolves a host by its HTTPS or SVCB records when its
// service opts in; ok is false when it does not.
func (r *URIResolver) resolveSVCB(ctx context.Context, uri string, p *parsedURI, port int, tls, listen bool, out *collector) (a answer, ok bool, err error) {
	return answer{}, false, nil
}

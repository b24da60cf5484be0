package resolver_test

import (
	"context"
	"errors"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/conduit-go/conduit/endpoint"
	"github.com/conduit-go/conduit/resolver"
)

// docExample is one row of an example table in docs/uris.md.
type docExample struct {
	line      int
	listen    bool
	rewritten bool // from the table of the rewrites section
	uri       string
	want      []string // endpoint strings, or nil for an error
	err       string   // "ErrMalformedURI", "ErrUnknownScheme", "ErrNotFound" or "ErrServiceUnavailable"
}

var backticked = regexp.MustCompile("`([^`]*)`")

// readDocExamples reads the "| URI | endpoints |" tables of docs/uris.md.
func readDocExamples(t *testing.T) []docExample {
	t.Helper()
	data, err := os.ReadFile("../docs/uris.md")
	require.NoError(t, err)
	var (
		out       []docExample
		inside    bool
		listen    bool
		rewritten bool
	)
	for i, line := range strings.Split(string(data), "\n") {
		if !strings.HasPrefix(line, "|") {
			inside = false
			continue
		}
		cells := strings.Split(strings.Trim(line, "|"), "|")
		for j := range cells {
			cells[j] = strings.TrimSpace(cells[j])
		}
		switch {
		case len(cells) == 2 && cells[0] == "URI":
			inside, listen, rewritten = true, false, false
			continue
		case len(cells) == 2 && cells[0] == "URI (listen)":
			inside, listen, rewritten = true, true, false
			continue
		case len(cells) == 2 && cells[0] == "URI (rewritten)":
			inside, listen, rewritten = true, false, true
			continue
		case !inside || strings.HasPrefix(cells[0], "---"):
			continue
		}
		require.Len(t, cells, 2, "docs/uris.md:%d", i+1)
		uri := backticked.FindStringSubmatch(cells[0])
		require.NotNil(t, uri, "docs/uris.md:%d: URI not in backticks", i+1)
		ex := docExample{line: i + 1, listen: listen, rewritten: rewritten, uri: uri[1]}
		if strings.HasPrefix(cells[1], "Err") {
			ex.err, _, _ = strings.Cut(cells[1], ":")
		} else {
			for _, m := range backticked.FindAllStringSubmatch(cells[1], -1) {
				ex.want = append(ex.want, m[1])
			}
			require.NotEmpty(t, ex.want, "docs/uris.md:%d: no endpoints", i+1)
		}
		out = append(out, ex)
	}
	return out
}

// TestDocExamples resolves every example of docs/uris.md.
func TestDocExamples(t *testing.T) {
	examples := readDocExamples(t)
	require.Greater(t, len(examples), 50, "too few examples found in docs/uris.md")
	r := newTestResolver(t, nil)
	// The rules of the rewrites section of docs/uris.md.
	rw := newTestResolver(t, &resolver.Config{Rewrites: []resolver.Rewrite{
		resolver.VchanByName("vm"),
		{Suffix: "db.internal", Func: func(ctx context.Context, q *resolver.RewriteRequest) ([]endpoint.Endpoint, error) {
			return []endpoint.Endpoint{q.WrapTLS(endpoint.Unix{Path: "/run/db.sock"})}, nil
		}},
	}})
	sentinels := map[string]error{
		"ErrMalformedURI":       resolver.ErrMalformedURI,
		"ErrUnknownScheme":      resolver.ErrUnknownScheme,
		"ErrNotFound":           resolver.ErrNotFound,
		"ErrServiceUnavailable": resolver.ErrServiceUnavailable,
	}
	for _, ex := range examples {
		t.Run(ex.uri, func(t *testing.T) {
			resolve := r.Resolve
			if ex.rewritten {
				resolve = rw.Resolve
			}
			if ex.listen {
				resolve = r.ResolveListen
			}
			eps, err := resolve(context.Background(), ex.uri)
			if ex.want != nil {
				require.NoError(t, err, "docs/uris.md:%d", ex.line)
				assert.Equal(t, ex.want, strs(eps), "docs/uris.md:%d", ex.line)
				if !ex.listen {
					for _, e := range eps {
						assert.NoError(t, endpoint.Validate(e))
					}
				}
				return
			}
			sentinel, ok := sentinels[ex.err]
			require.True(t, ok, "docs/uris.md:%d: unknown error %q", ex.line, ex.err)
			require.Error(t, err, "docs/uris.md:%d", ex.line)
			assert.ErrorIs(t, err, sentinel, "docs/uris.md:%d", ex.line)
			var ue *resolver.URIError
			require.True(t, errors.As(err, &ue), "%T", err)
			assert.Equal(t, ex.uri, ue.URI)
			assert.Contains(t, err.Error(), ex.uri)
			t.Log(err)
		})
	}
}

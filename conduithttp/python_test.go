package conduithttp_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/conduit-go/conduit/conduit"
	"github.com/conduit-go/conduit/conduithttp"
	"github.com/conduit-go/conduit/internal/testutil"
)

// pythonUnix starts python3's http.server on a Unix socket serving the
// files of root, and returns the socket's path.
func pythonUnix(t *testing.T, root string) string {
	t.Helper()
	py := testutil.RequirePeer(t, "python3", "python3")
	sock := filepath.Join(t.TempDir(), "app.sock")
	p := testutil.StartProcess(t, py, "testdata/unix_http_server.py", sock, root)
	p.WaitLine(t, regexp.MustCompile(`^READY$`), 30*time.Second)
	return sock
}

// TestPythonOverUnix: a GET and a 20 MiB upload through http+unix://
// against python3's http.server on a Unix socket.
func TestPythonOverUnix(t *testing.T) {
	root := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(root, "health"), []byte("ok\n"), 0o644))
	sock := pythonUnix(t, root)
	c := conduit.New(nil)
	defer c.Close()
	client := conduithttp.NewClient(c, nil)
	defer client.CloseIdleConnections()
	base := "http+unix://" + url.PathEscape(sock)
	require.Contains(t, base, "%2F")

	get := func() (string, bool) {
		var reused bool
		req, err := conduithttp.NewRequest(http.MethodGet, base+"/health", nil)
		require.NoError(t, err)
		req = req.WithContext(httptrace.WithClientTrace(req.Context(), &httptrace.ClientTrace{
			GotConn: func(i httptrace.GotConnInfo) { reused = i.Reused },
		}))
		resp, err := client.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, resp.StatusCode)
		assert.Equal(t, base+"/health", resp.Request.URL.String())
		return string(body), reused
	}
	body, _ := get()
	assert.Equal(t, "ok\n", body)
	body, reused := get()
	assert.Equal(t, "ok\n", body)
	assert.True(t, reused, "the second request reuses the pooled connection")

	resp, err := client.Get(base + "/missing")
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusNotFound, resp.StatusCode)

	// 20 MiB up, its length and digest back.
	data := make([]byte, 20<<20)
	r := rand.New(rand.NewPCG(1, 2))
	for i := range data {
		data[i] = byte(r.Uint32())
	}
	req, err := conduithttp.NewRequest(http.MethodPut, base+"/upload", bytes.NewReader(data))
	require.NoError(t, err)
	resp, err = client.Do(req)
	require.NoError(t, err)
	got, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.NoError(t, err)
	assert.Equal(t, fmt.Sprintf("%d %x", len(data), sha256.Sum256(data)), string(got))
}

// TestUnixURLErrors: malformed http+unix URLs fail before any dial.
func TestUnixURLErrors(t *testing.T) {
	c := conduit.New(nil)
	defer c.Close()
	client := conduithttp.NewClient(c, nil)
	for _, u := range []string{
		"http+unix://run%2Fapp.sock/x", // not absolute
		"http+unix://%2Frun%00x/x",
		"http+unix://%zz/x",
		"http+vchan://7/a.b/x",
		"http+vchan://7:80/p/x",
		"http+srv://api.example:80/x",
	} {
		_, err := client.Get(u)
		if assert.Error(t, err, u) {
			assert.ErrorIs(t, err, conduithttp.ErrURL, u)
		}
	}
}

// killingReader gives bytes forever; after the first MiB it calls kill
// once.
type killingReader struct {
	n    int
	kill func()
}

func (r *killingReader) Read(b []byte) (int, error) {
	r.n += len(b)
	if r.kill != nil && r.n > 1<<20 {
		r.kill()
		r.kill = nil
	}
	return len(b), nil
}

// TestPythonDiesMidUpload: the server dies while the body is being
// sent; the request fails, it does not hang.
func TestPythonDiesMidUpload(t *testing.T) {
	py := testutil.RequirePeer(t, "python3", "python3")
	sock := filepath.Join(t.TempDir(), "app.sock")
	p := testutil.StartProcess(t, py, "testdata/unix_http_server.py", sock, t.TempDir())
	p.WaitLine(t, regexp.MustCompile(`^READY$`), 30*time.Second)
	c := conduit.New(nil)
	defer c.Close()
	client := conduithttp.NewClient(c, nil)
	defer client.CloseIdleConnections()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute) // hang guard only
	defer cancel()
	body := &killingReader{kill: func() { p.Signal(os.Kill) }}
	req, err := conduithttp.NewRequestWithContext(ctx, http.MethodPut, "http+unix://"+url.PathEscape(sock)+"/upload", io.LimitReader(body, 1<<40))
	require.NoError(t, err)
	req.ContentLength = 1 << 40
	resp, err := client.Do(req)
	if err == nil {
		resp.Body.Close()
	}
	require.Error(t, err)
	require.NoError(t, ctx.Err(), "the request ended at the hang guard, not on the server's death")
	<-p.Exited()
}

package conduithttp

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/conduit-go/conduit/conduit"
)

// A Client is an *http.Client over NewTransport whose Get, Head, Post
// and PostForm also take the URLs url.Parse refuses
// ("http+unix://%2Frun%2Fapp.sock/health"). Do takes any request. It is
// safe for concurrent use, as http.Client.
type Client struct {
	*http.Client
}

// NewClient returns a Client over NewTransport(c, opts).
func NewClient(c *conduit.Conduit, opts *TransportOptions) *Client {
	return &Client{&http.Client{Transport: NewTransport(c, opts)}}
}

// NewRequest is http.NewRequest with URLs parsed by ParseURL.
func NewRequest(method, rawURL string, body io.Reader) (*http.Request, error) {
	return NewRequestWithContext(context.Background(), method, rawURL, body)
}

// NewRequestWithContext is http.NewRequestWithContext with URLs parsed
// by ParseURL.
func NewRequestWithContext(ctx context.Context, method, rawURL string, body io.Reader) (*http.Request, error) {
	u, err := ParseURL(rawURL)
	if err != nil {
		return nil, err
	}
	if !strings.HasSuffix(u.Scheme, "+unix") {
		return http.NewRequestWithContext(ctx, method, rawURL, body)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://localhost/", body)
	if err != nil {
		return nil, err
	}
	req.URL, req.Host = u, "" // the transport sets the Host header
	return req, nil
}

// Get issues a GET to rawURL.
func (c *Client) Get(rawURL string) (*http.Response, error) {
	req, err := NewRequest(http.MethodGet, rawURL, nil)
	if err != nil {
		return nil, err
	}
	return c.Do(req)
}

// Head issues a HEAD to rawURL.
func (c *Client) Head(rawURL string) (*http.Response, error) {
	req, err := NewRequest(http.MethodHead, rawURL, nil)
	if err != nil {
		return nil, err
	}
	return c.Do(req)
}

// Post issues a POST to rawURL with the body and content type given.
func (c *Client) Post(rawURL, contentType string, body io.Reader) (*http.Response, error) {
	req, err := NewRequest(http.MethodPost, rawURL, body)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", contentType)
	return c.Do(req)
}

// PostForm issues a POST to rawURL with data URL-encoded as its body.
func (c *Client) PostForm(rawURL string, data url.Values) (*http.Response, error) {
	return c.Post(rawURL, "application/x-www-form-urlencoded", strings.NewReader(data.Encode()))
}

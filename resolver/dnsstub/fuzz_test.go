package dnsstub

import (
	"testing"

	"github.com/miekg/dns"
	"github.com/stretchr/testify/assert"
)

func FuzzReadResolvConf(f *testing.F) {
	for _, s := range []string{
		"nameserver 10.0.0.1\nsearch a.example b.example\noptions ndots:3 timeout:2 attempts:4\n",
		"domain x.example\nnameserver ::1\nnameserver fe80::1%eth0\n# comment\n;c\n",
		"options ndots:0 timeout:999 attempts:-1\n",
		"nameserver\nsearch\noptions :\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg := parseResolvConf(data)
		for _, ns := range cfg.Nameservers {
			if !ns.Addr().IsValid() || ns.Port() != 53 {
				t.Fatalf("bad nameserver %v", ns)
			}
		}
		if cfg.Ndots > 15 || cfg.Timeout < 0 || cfg.Timeout > 30e9 || cfg.Attempts > 5 {
			t.Fatalf("option out of range: %+v", cfg)
		}
	})
}

func TestParseResolvConf(t *testing.T) {
	cfg := parseResolvConf([]byte("nameserver 10.0.0.1\nnameserver bogus\nnameserver ::ffff:10.0.0.2\nsearch a.example b.example\noptions ndots:3 timeout:2 attempts:4 rotate\n"))
	assert.Equal(t, "[10.0.0.1:53 10.0.0.2:53]", fmtAddrs(cfg))
	assert.Equal(t, []string{"a.example", "b.example"}, cfg.Search)
	assert.Equal(t, 3, cfg.Ndots)
	assert.Equal(t, 2e9, float64(cfg.Timeout))
	assert.Equal(t, 4, cfg.Attempts)
	cfg = parseResolvConf([]byte("search a.example\ndomain d.example\noptions ndots:0"))
	assert.Equal(t, []string{"d.example"}, cfg.Search)
	assert.Equal(t, 0, cfg.ndots())
	_, err := ReadResolvConf("testdata/does-not-exist")
	assert.Error(t, err)
	cfg, err = ReadResolvConf("testdata/resolv.conf")
	assert.NoError(t, err)
	assert.Equal(t, "[192.0.2.53:53 [2001:db8::53]:53]", fmtAddrs(cfg))
}

func fmtAddrs(cfg *Config) string {
	s := "["
	for i, a := range cfg.Nameservers {
		if i > 0 {
			s += " "
		}
		s += a.String()
	}
	return s + "]"
}

// responseCases are inputs for the response validator, including crashers
// kept as table entries.
var responseCases = [][]byte{
	nil,
	{0x12, 0x34},
	{0x12, 0x34, 0x83, 0x00, 0, 1, 0, 0, 0, 0, 0, 0},           // truncated, header only
	{0x12, 0x34, 0x81, 0x80, 0, 1, 0, 1, 0, 0, 0, 0, 0xc0, 12}, // compression loop in the question
}

func FuzzResponse(f *testing.F) {
	q := newQuery("web.test.", dns.TypeA, 1232)
	q.Id = 0x1234
	good := new(dns.Msg)
	good.SetReply(q)
	rr, _ := dns.NewRR("web.test. 60 IN CNAME x.test.")
	rr2, _ := dns.NewRR("x.test. 60 IN A 192.0.2.1")
	good.Answer = []dns.RR{rr, rr2}
	b, _ := good.Pack()
	f.Add(b)
	for _, c := range responseCases {
		f.Add(c)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := validateResponse(q, data)
		if err != nil {
			return
		}
		if m.Id != q.Id || !m.Response {
			t.Fatal("accepted a mismatched response")
		}
		if m.Rcode == dns.RcodeSuccess || m.Rcode == dns.RcodeNameError {
			a := extract(m, "web.test.", dns.TypeA, 8)
			for _, rr := range a.rrs {
				if _, ok := rr.(*dns.A); !ok {
					t.Fatalf("non-A record %v", rr)
				}
			}
		}
	})
}

func TestResponseCases(t *testing.T) {
	q := newQuery("web.test.", dns.TypeA, 1232)
	q.Id = 0x1234
	for _, c := range responseCases {
		m, err := validateResponse(q, c)
		if err == nil {
			extract(m, "web.test.", dns.TypeA, 8)
		}
	}
	m, err := validateResponse(q, responseCases[2])
	assert.NoError(t, err)
	assert.True(t, m.Truncated)
}

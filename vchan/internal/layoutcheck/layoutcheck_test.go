//go:build cgo && linux

package layoutcheck

import (
	"testing"

	"github.com/conduit-go/conduit/vchan/internal/wire"
	"github.com/stretchr/testify/assert"
)

func TestLayoutMatchesHeader(t *testing.T) {
	c := Layout()
	for _, tc := range []struct {
		name string
		got  int
	}{
		{"OffLeftCons", wire.OffLeftCons},
		{"OffLeftProd", wire.OffLeftProd},
		{"OffRightCons", wire.OffRightCons},
		{"OffRightProd", wire.OffRightProd},
		{"OffLeftOrder", wire.OffLeftOrder},
		{"OffRightOrder", wire.OffRightOrder},
		{"OffCliLive", wire.OffCliLive},
		{"OffSrvLive", wire.OffSrvLive},
		{"OffCliNotify", wire.OffCliNotify},
		{"OffSrvNotify", wire.OffSrvNotify},
		{"OffGrants", wire.OffGrants},
		{"SizeofRingShared", wire.SizeofRingShared},
		{"SizeofInterface", wire.SizeofInterface},
		{"SizeofOrder", wire.SizeofOrder},
		{"SizeofFlag", wire.SizeofFlag},
		{"SizeofGrant", wire.SizeofGrant},
		{"NotifyWrite", wire.NotifyWrite},
		{"NotifyRead", wire.NotifyRead},
	} {
		want, ok := c[tc.name]
		if assert.True(t, ok, tc.name) {
			assert.Equal(t, want, tc.got, "%s: Go constant differs from libxenvchan.h", tc.name)
		}
	}
	assert.Len(t, c, 18)
}

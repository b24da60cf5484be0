package vchan

import (
	"os"
	"testing"

	"github.com/conduit-go/conduit/internal/testutil"
)

func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) != "" {
		os.Exit(helperMain())
	}
	testutil.VerifyNoLeaks(m)
}

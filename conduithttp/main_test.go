package conduithttp_test

import (
	"os"
	"testing"

	"github.com/conduit-go/conduit/internal/testutil"
)

func TestMain(m *testing.M) { testutil.VerifyNoLeaks(m) }

func osWriteFile(name string, b []byte) error { return os.WriteFile(name, b, 0o600) }

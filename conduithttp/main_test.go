package conduithttp_test

import (
	"testing"

	"github.com/conduit-go/conduit/internal/testutil"
)

func TestMain(m *testing.M) { testutil.VerifyNoLeaks(m) }

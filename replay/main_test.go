package replay

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain checks that neither store leaves a goroutine behind once closed.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

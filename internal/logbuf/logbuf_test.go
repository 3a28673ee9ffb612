package logbuf_test

import (
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/jwtauthz/jwt-authz/internal/logbuf"
)

// TestConcurrentLines: lines written by many goroutines through slog arrive
// whole, none lost, while readers look.
func TestConcurrentLines(t *testing.T) {
	t.Parallel()
	var buf logbuf.Buffer
	log := slog.New(slog.NewTextHandler(&buf, nil))
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 100 {
				log.Info("line", "g", g, "i", i)
				_ = buf.Contains("never")
			}
		})
	}
	wg.Wait()
	lines := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
	if len(lines) != 800 {
		t.Fatalf("%d lines, want 800", len(lines))
	}
	for _, want := range []string{"g=0 i=0", "g=7 i=99"} {
		if !buf.Contains(want) {
			t.Errorf("no line with %q", want)
		}
	}
	if buf.Contains(fmt.Sprint("g=", 8)) {
		t.Error("a line from a goroutine that never ran")
	}
}

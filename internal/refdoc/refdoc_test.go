package refdoc_test

import (
	"flag"
	"os"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/jwtauthz/jwt-authz/internal/refdoc"
)

var update = flag.Bool("update", false, "rewrite docs/reference.md from the code")

const (
	protoPath = "../../proto/jwtauthz/config/v1/config.proto"
	refPath   = "../../docs/reference.md"
)

// TestReferenceUpToDate holds docs/reference.md to what the code says:
// every config field (with its comment, default and an example), every
// metric, every reason. After changing any of them:
// go test ./internal/refdoc -update.
func TestReferenceUpToDate(t *testing.T) {
	src, err := os.ReadFile(protoPath)
	if err != nil {
		t.Fatal(err)
	}
	got, err := refdoc.Generate(src)
	if err != nil {
		t.Fatal(err)
	}
	if *update {
		if err := os.WriteFile(refPath, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(refPath)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(string(want), string(got)); diff != "" {
		t.Errorf("docs/reference.md is out of date; run go test ./internal/refdoc -update (-file +code):\n%s", diff)
	}
}

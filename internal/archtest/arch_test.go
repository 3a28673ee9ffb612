// Package archtest keeps the dependency arrows pointing one way
// (README, "Layout"): authz imports no gRPC, no Envoy types and none of our other
// packages; jwks imports no gRPC or Envoy types; only cmd/ and config read
// the config proto.
package archtest

import (
	"go/build"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const module = "github.com/jwtauthz/jwt-authz"

// imports returns the non-test imports of the package in dir, following
// our own packages transitively.
func imports(t *testing.T, root, pkg string, seen map[string]bool) map[string]bool {
	t.Helper()
	if seen[pkg] {
		return seen
	}
	seen[pkg] = true
	dir := filepath.Join(root, strings.TrimPrefix(strings.TrimPrefix(pkg, module), "/"))
	p, err := build.ImportDir(dir, 0)
	if err != nil {
		t.Fatalf("%s: %v", pkg, err)
	}
	for _, imp := range p.Imports {
		if strings.HasPrefix(imp, module+"/") {
			imports(t, root, imp, seen)
		} else {
			seen[imp] = true
		}
	}
	return seen
}

func TestDependencyDirection(t *testing.T) {
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatal("not at the module root")
	}
	rules := []struct {
		pkg       string
		forbidden []string
	}{
		{"authz", []string{"google.golang.org/grpc", "github.com/envoyproxy/go-control-plane", module + "/jwks",
			module + "/envoy", module + "/config", module + "/proto", module + "/cmd", "net/http"}},
		{"jwks", []string{"google.golang.org/grpc", "github.com/envoyproxy/go-control-plane", module + "/envoy",
			module + "/config", module + "/proto"}},
		{"envoy", []string{module + "/jwks", module + "/config", module + "/proto"}},
		{"httpauthz", []string{module + "/jwks", module + "/config", module + "/proto", "google.golang.org/grpc"}},
	}
	for _, r := range rules {
		if _, err := os.Stat(filepath.Join(root, r.pkg)); err != nil {
			continue
		}
		got := imports(t, root, module+"/"+r.pkg, map[string]bool{})
		for imp := range got {
			for _, f := range r.forbidden {
				if imp == f || strings.HasPrefix(imp, f+"/") {
					t.Errorf("%s imports %s (directly or through our packages)", r.pkg, imp)
				}
			}
		}
	}
}

// Package archtest keeps the dependency arrows pointing one way
// (README, "Layout"): authz imports no gRPC, no Envoy types and none of our other
// packages; jwks imports no gRPC or Envoy types; only cmd/, config and stack
// read the config proto; stack (the running service) may import config,
// authz, jwks, envoy and httpauthz, and only cmd/ and internal test helpers
// import it.
package archtest

import (
	"go/build"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
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
		{"config", []string{module + "/stack", module + "/envoy", module + "/cmd"}},
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

// TestStackImporters: the running service is the program's to use (cmd/)
// and its test helpers' (internal/); no library imports it, so the arrows
// from config, authz, jwks and the adapters never point back at it.
func TestStackImporters(t *testing.T) {
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	var dirs []string
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == ".git" || d.Name() == "testdata" || d.Name() == "node_modules") {
			return filepath.SkipDir
		}
		if d.IsDir() {
			dirs = append(dirs, path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	found := 0
	for _, dir := range dirs {
		rel, _ := filepath.Rel(root, dir)
		rel = filepath.ToSlash(rel)
		p, err := build.ImportDir(dir, 0)
		if err != nil {
			continue // no Go files
		}
		if !slices.Contains(p.Imports, module+"/stack") {
			continue
		}
		found++
		if !strings.HasPrefix(rel, "cmd/") && !strings.HasPrefix(rel, "internal/") {
			t.Errorf("%s imports stack: only cmd/ and internal test helpers may", rel)
		}
	}
	if found == 0 {
		t.Error("nothing imports stack: the walk is broken")
	}
	p, err := build.ImportDir(filepath.Join(root, "stack"), 0)
	if err != nil {
		t.Fatal(err)
	}
	allowed := []string{"config", "authz", "jwks", "envoy", "httpauthz", "replay", "proto/jwtauthz/config/v1"}
	for _, imp := range p.Imports {
		if rest, ours := strings.CutPrefix(imp, module+"/"); ours && !slices.Contains(allowed, rest) {
			t.Errorf("stack imports %s: of ours it may import only %v", imp, allowed)
		}
	}
}

// TestReplayStandsAlone: the DPoP replay stores know nothing of ours; authz
// declares the interface they satisfy and stack wires them.
func TestReplayStandsAlone(t *testing.T) {
	t.Parallel()
	p, err := build.ImportDir("../../replay", 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, imp := range p.Imports {
		if strings.HasPrefix(imp, module+"/") {
			t.Errorf("replay imports %s: it must import nothing of ours", imp)
		}
	}
}

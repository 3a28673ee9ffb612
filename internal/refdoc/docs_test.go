package refdoc_test

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/jwtauthz/jwt-authz/authz"
	"github.com/jwtauthz/jwt-authz/config"
)

// TestTroubleshootingCoversEveryReason: docs/troubleshooting.md has a
// section for every reason and for each kind of /readyz error.
func TestTroubleshootingCoversEveryReason(t *testing.T) {
	b, err := os.ReadFile("../../docs/troubleshooting.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	for _, r := range authz.Reasons {
		if !strings.Contains(doc, "\n### `"+string(r)+"`\n") {
			t.Errorf("docs/troubleshooting.md has no section \"### `%s`\"", r)
		}
	}
	// The errors a provider's key source reports (jwks: fetch, discovery,
	// key set checks, key file, redirects).
	for _, e := range []string{
		"fetch URL: unexpected status N", "discovery URL: unexpected status N", "discovery URL: issuer mismatch",
		"key set has no usable key", "key set drops every known key", "parse key set", "read key file",
		"refusing a redirect from https to http", "x509: certificate signed by unknown authority",
		"connection refused",
	} {
		if !strings.Contains(doc, e) {
			t.Errorf("docs/troubleshooting.md does not explain the /readyz error %q", e)
		}
	}
}

// TestNoPointersOutsideTheRepo: nothing in the repository refers to notes
// that are not in it, or to issue numbers of a tracker a reader cannot
// see; what they said lives in the repository's own docs.
func TestNoPointersOutsideTheRepo(t *testing.T) {
	// Built from parts so that this file does not match itself.
	bad := regexp.MustCompile(`(?i)` + strings.Join([]string{`CONTRACT\.md`, `STYLE\.md`, `FACTS\.md`, `issue #?[0-9]`}, "|"))
	root := filepath.Join("..", "..")
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			switch d.Name() {
			case ".git", ".run", "bin", "dist", "node_modules":
				return filepath.SkipDir
			}
			return nil
		}
		info, err := d.Info()
		if err != nil || info.Size() > 4<<20 {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for i, line := range strings.Split(string(b), "\n") {
			if bad.MatchString(line) {
				t.Errorf("%s:%d: %s", path, i+1, strings.TrimSpace(line))
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestAuth0GuideConfigsAreValid: every whole config in docs/auth0.md (a
// yaml block that starts at a top-level key) passes validation, with the
// tenant's domain filled in.
func TestAuth0GuideConfigsAreValid(t *testing.T) {
	b, err := os.ReadFile("../../docs/auth0.md")
	if err != nil {
		t.Fatal(err)
	}
	blocks := regexp.MustCompile("(?s)```yaml\n(.*?)```").FindAllStringSubmatch(string(b), -1)
	n := 0
	for _, m := range blocks {
		if !strings.HasPrefix(m[1], "listen:") && !strings.HasPrefix(m[1], "providers:") {
			continue
		}
		n++
		doc := strings.ReplaceAll(m[1], "YOUR_DOMAIN", "example.eu.auth0.com")
		if _, err := config.Parse([]byte(doc)); err != nil {
			t.Errorf("docs/auth0.md config %d: %v\n%s", n, err, doc)
		}
	}
	if n < 2 {
		t.Errorf("found %d configs in docs/auth0.md, want the main one and the RFC 9068 one", n)
	}
}

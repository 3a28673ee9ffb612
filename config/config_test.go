package config_test

import (
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/jwtauthz/jwt-authz/config"
)

var update = flag.Bool("update", false, "rewrite testdata/bad/*.err from the current messages")

func messages(err error) []string {
	var j interface{ Unwrap() []error }
	if errors.As(err, &j) {
		var out []string
		for _, e := range j.Unwrap() {
			out = append(out, e.Error())
		}
		return out
	}
	return []string{err.Error()}
}

// TestBadConfigs holds every fixture in testdata/bad to its exact
// messages: all problems at once, each with its field path.
func TestBadConfigs(t *testing.T) {
	t.Parallel()
	files, _ := filepath.Glob("testdata/bad/*.yaml")
	if len(files) == 0 {
		t.Fatal("no fixtures")
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			t.Parallel()
			_, err := config.Load(f)
			if err == nil {
				t.Fatal("Load accepted a bad config")
			}
			got := messages(err)
			errFile := strings.TrimSuffix(f, ".yaml") + ".err"
			if *update {
				os.WriteFile(errFile, []byte(strings.Join(got, "\n")+"\n"), 0o644)
			}
			b, err := os.ReadFile(errFile)
			if err != nil {
				t.Fatal(err)
			}
			want := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("messages (-want +got):\n%s", diff)
			}
		})
	}
}

func TestGoodConfigs(t *testing.T) {
	t.Parallel()
	files, _ := filepath.Glob("testdata/good/*.yaml")
	files = append(files, "../examples/local.yaml", "../deploy/compose/jwt-authz.yaml")
	for _, f := range files {
		if _, err := os.Stat(f); err != nil {
			continue
		}
		t.Run(filepath.Base(f), func(t *testing.T) {
			t.Parallel()
			cfg, err := config.Load(f)
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			if len(cfg.GetProviders()) == 0 {
				t.Fatal("no providers")
			}
		})
	}
}

func TestDefaults(t *testing.T) {
	t.Parallel()
	cfg, err := config.Parse([]byte(`
providers:
- name: auth0
  issuer: "https://example.auth0.com/"
  audiences: ["urn:apigee:target:api"]
  jwks: {inline: '{"keys":[]}'}
`))
	if err != nil {
		t.Fatal(err)
	}
	p := cfg.GetProviders()[0]
	if p.ForwardToken != nil || p.GetClockSkew() != nil || cfg.GetTokenCache() != nil {
		t.Errorf("unset fields came back set: %v", p)
	}
}

func FuzzConfig(f *testing.F) {
	files, _ := filepath.Glob("testdata/*/*.yaml")
	for _, file := range files {
		b, _ := os.ReadFile(file)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		cfg, err := config.Parse(b)
		if err == nil && len(cfg.GetProviders()) == 0 {
			t.Fatal("a config without providers was accepted")
		}
		if err != nil && err.Error() == "" {
			t.Fatal("empty error")
		}
	})
}

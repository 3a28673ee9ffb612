package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil/promlint"

	"github.com/jwtauthz/jwt-authz/internal/logbuf"
	"github.com/jwtauthz/jwt-authz/internal/stacktest"
	"github.com/jwtauthz/jwt-authz/jwks/jwkstest"
)

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond) // polling interval, not a wait for an event
	}
}

func TestValidateBadFixtures(t *testing.T) {
	t.Parallel()
	files, _ := filepath.Glob("../../config/testdata/bad/*.yaml")
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			t.Parallel()
			var out, errb bytes.Buffer
			if code := run(t.Context(), []string{"validate", "-config", f}, &out, &errb); code != 1 {
				t.Fatalf("exit %d, want 1", code)
			}
			want, _ := os.ReadFile(strings.TrimSuffix(f, ".yaml") + ".err")
			if errb.String() != string(want) {
				t.Errorf("stderr:\n%s\nwant:\n%s", errb.String(), want)
			}
		})
	}
	var out, errb bytes.Buffer
	if code := run(t.Context(), []string{"validate", "--config", "../../config/testdata/good/full.yaml"}, &out, &errb); code != 0 {
		t.Fatalf("good config: exit %d: %s", code, errb.String())
	}
}

func TestVersionAndUsage(t *testing.T) {
	t.Parallel()
	var out, errb bytes.Buffer
	if code := run(t.Context(), []string{"version"}, &out, &errb); code != 0 || !strings.HasPrefix(out.String(), "jwt-authz ") {
		t.Errorf("version: exit %d, %q", code, out.String())
	}
	if code := run(t.Context(), []string{"bogus"}, &out, &errb); code != 2 {
		t.Errorf("unknown command: exit %d, want 2", code)
	}
}

// proc is a jwt-authz serve running in this process.
type proc struct {
	grpc, http string
	logs       *logbuf.Buffer
	cancel     context.CancelFunc
	done       chan struct{} // closed when serve returned
	code       int
}

var servingRE = regexp.MustCompile(`"msg":"serving","grpc":"([^"]+)","http":"([^"]+)"`)

func startServe(t *testing.T, cfgPath string) *proc {
	t.Helper()
	return startServeWith(t, cfgPath, watchOptions{})
}

// startServeWith is startServe with the config watcher's settings.
func startServeWith(t *testing.T, cfgPath string, wo watchOptions) *proc {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	p := &proc{logs: &logbuf.Buffer{}, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(p.done)
		p.code = serveWith(ctx, []string{"-config", cfgPath, "-grpc-addr", "127.0.0.1:0", "-http-addr", "127.0.0.1:0"}, io.Discard, p.logs, wo)
	}()
	eventually(t, "serving log line", func() bool {
		m := servingRE.FindStringSubmatch(p.logs.String())
		if m != nil {
			p.grpc, p.http = m[1], m[2]
		}
		return m != nil
	})
	t.Cleanup(func() {
		cancel()
		select {
		case <-p.done:
		case <-time.After(20 * time.Second):
			t.Error("serve did not stop")
		}
	})
	return p
}

func (p *proc) get(t *testing.T, path string) (int, string) {
	t.Helper()
	resp, err := http.Get("http://" + p.http + path)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func (p *proc) check(t *testing.T, args ...string) (int, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(t.Context(), append([]string{"check", "-addr", p.grpc}, args...), &out, &errb)
	return code, out.String() + errb.String()
}

func writeConfig(t *testing.T, path, yaml string) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	// Rename, as editors and ConfigMap swaps do.
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// serveYAML is the config most serve tests run: iss as provider auth0 with
// an x-jwt-sub claim header, and one rule that wants scope everywhere.
func serveYAML(iss *jwkstest.Issuer, scope string) string {
	return "providers:\n" + stacktest.Provider("auth0", iss, "", `claim_headers: [{claim: sub, header: x-jwt-sub}]`) +
		fmt.Sprintf("rules:\n- name: api\n  match: {path_prefix: \"/\"}\n  require: {scopes: [%q]}\n", scope)
}

func TestServeEndpointsCheckReloadAndShutdown(t *testing.T) {
	iss := jwkstest.New(t, jwkstest.Options{})
	dir := t.TempDir()
	cfg := filepath.Join(dir, "jwt-authz.yaml")
	writeConfig(t, cfg, serveYAML(iss, "read:target"))
	p := startServe(t, cfg)

	eventually(t, "readyz 200", func() bool { code, _ := p.get(t, "/readyz"); return code == 200 })
	if code, body := p.get(t, "/healthz"); code != 200 {
		t.Errorf("healthz = %d %s", code, body)
	}
	code, body := p.get(t, "/debug/keys")
	if code != 200 || !strings.Contains(body, iss.KID()) || strings.Contains(body, `"d"`) {
		t.Errorf("debug/keys = %d %s", code, body)
	}

	tok := iss.Sign(t, iss.Claims("client-1@clients"))
	if code, out := p.check(t, "-token", tok, "-path", "/echo", "-header", "x-jwt-sub: spoof"); code != 0 ||
		!strings.Contains(out, "set header: x-jwt-sub: client-1@clients") {
		t.Fatalf("check: exit %d\n%s", code, out)
	}
	if code, out := p.check(t, "-path", "/echo"); code != 1 || !strings.Contains(out, "reason: missing_token") ||
		!strings.Contains(out, `header: www-authenticate: Bearer realm="jwt-authz"`) {
		t.Fatalf("check without token: exit %d\n%s", code, out)
	}
	if code, out := p.check(t, "-addr", "127.0.0.1:1", "-timeout", "1s"); code != 2 {
		t.Fatalf("check against nothing: exit %d\n%s", code, out)
	}

	// Reload on a change of the file: the rule now needs another scope.
	writeConfig(t, cfg, serveYAML(iss, "write:target"))
	eventually(t, "reloaded config to deny", func() bool {
		code, _ := p.check(t, "-token", tok, "-path", "/echo")
		return code == 1
	})
	// A bad config is refused, counted, and the old one keeps serving.
	writeConfig(t, cfg, "providers: [{name: BAD}]\n")
	eventually(t, "reload error counted", func() bool {
		_, m := p.get(t, "/metrics")
		return strings.Contains(m, `jwt_authz_config_reloads_total{result="error"} 1`)
	})
	if code, out := p.check(t, "-token", tok, "-path", "/echo"); code != 1 || !strings.Contains(out, "insufficient_scope") {
		t.Fatalf("after a bad reload: exit %d\n%s", code, out)
	}
	// SIGHUP reloads too.
	writeConfig(t, cfg, serveYAML(iss, "read:target"))
	syscall.Kill(os.Getpid(), syscall.SIGHUP)
	eventually(t, "reloaded config to allow", func() bool {
		code, _ := p.check(t, "-token", tok, "-path", "/echo")
		return code == 0
	})

	_, metrics := p.get(t, "/metrics")
	for _, want := range []string{
		`jwt_authz_checks_total{decision="allow",provider="auth0",reason="ok"}`,
		`jwt_authz_checks_total{decision="deny",provider="none",reason="missing_token"} 1`,
		`jwt_authz_check_duration_seconds_bucket{decision="allow"`,
		`jwt_authz_jwks_fetches_total{provider="auth0",result="success"}`,
		`jwt_authz_jwks_keys{provider="auth0"} 1`,
		`jwt_authz_jwks_last_success_timestamp_seconds{provider="auth0"}`,
		`jwt_authz_build_info{goversion="go`,
		`jwt_authz_token_cache_lookups_total{result="hit"}`,
		`go_goroutines`,
		`process_resident_memory_bytes`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if strings.Contains(p.logs.String(), tok) || strings.Contains(p.logs.String(), strings.Split(tok, ".")[2]) {
		t.Error("a token reached the log")
	}

	p.cancel()
	select {
	case <-p.done:
		if p.code != 0 {
			t.Errorf("serve exit %d, want 0; logs:\n%s", p.code, p.logs.String())
		}
	case <-time.After(15 * time.Second):
		t.Fatal("serve did not stop")
	}
}

func TestReadyzNamesProvidersWithoutKeys(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "c.yaml")
	writeConfig(t, cfg, `
providers:
- name: down
  issuer: "http://127.0.0.1:1/"
  audiences: ["urn:apigee:target:api"]
  jwks: {uri: "http://127.0.0.1:1/jwks.json", fetch_timeout: "1s"}
`)
	p := startServe(t, cfg)
	eventually(t, "readyz names the provider", func() bool {
		code, body := p.get(t, "/readyz")
		var v struct {
			NotReady []struct{ Provider, Error string } `json:"not_ready"`
		}
		json.Unmarshal([]byte(body), &v)
		return code == 503 && len(v.NotReady) == 1 && v.NotReady[0].Provider == "down" && v.NotReady[0].Error != ""
	})
	if code, out := p.check(t, "-token", "a.b.c"); code != 1 || !strings.Contains(out, "malformed_token") {
		t.Errorf("check: %d %s", code, out)
	}
}

func TestServeHTTPAuthzMode(t *testing.T) {
	t.Parallel()
	iss := jwkstest.New(t, jwkstest.Options{})
	cfg := filepath.Join(t.TempDir(), "c.yaml")
	writeConfig(t, cfg, serveYAML(iss, "read:target")+"http_authz: {enabled: true}\n")
	p := startServe(t, cfg)
	eventually(t, "ready", func() bool { c, _ := p.get(t, "/readyz"); return c == 200 })
	req, _ := http.NewRequest("GET", "http://"+p.http+"/authz/echo", nil)
	req.Header.Set("Authorization", "Bearer "+iss.Sign(t, iss.Claims("client-1@clients")))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("X-Jwt-Sub") != "client-1@clients" {
		t.Errorf("allowed: %d, x-jwt-sub %q", resp.StatusCode, resp.Header.Get("X-Jwt-Sub"))
	}
	if code, _ := p.get(t, "/authz/echo"); code != 401 {
		t.Errorf("no token: %d, want 401", code)
	}
}

// TestReloadOnConfigMapSymlinkSwap: Kubernetes mounts a ConfigMap as
// config.yaml -> ..data/config.yaml with ..data -> ..2026_v1, and updates
// it by pointing ..data at a new directory in one rename.
func TestReloadOnConfigMapSymlinkSwap(t *testing.T) {
	t.Parallel()
	iss := jwkstest.New(t, jwkstest.Options{})
	dir := t.TempDir()
	version := func(name, scope string) {
		if err := os.MkdirAll(filepath.Join(dir, name), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name, "config.yaml"), []byte(serveYAML(iss, scope)), 0o644); err != nil {
			t.Fatal(err)
		}
		tmp := filepath.Join(dir, "..data_tmp")
		if err := os.Symlink(name, tmp); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, filepath.Join(dir, "..data")); err != nil {
			t.Fatal(err)
		}
	}
	version("..v1", "read:target")
	if err := os.Symlink(filepath.Join("..data", "config.yaml"), filepath.Join(dir, "config.yaml")); err != nil {
		t.Fatal(err)
	}
	p := startServe(t, filepath.Join(dir, "config.yaml"))
	eventually(t, "ready", func() bool { c, _ := p.get(t, "/readyz"); return c == 200 })
	tok := iss.Sign(t, iss.Claims("s"))
	if code, out := p.check(t, "-token", tok); code != 0 {
		t.Fatalf("before the swap: %s", out)
	}
	version("..v2", "write:target")
	eventually(t, "reload after the symlink swap", func() bool {
		code, _ := p.check(t, "-token", tok)
		return code == 1
	})
}

// TestMetricNamesLint runs Prometheus' own linter over everything /metrics
// serves. That every jwt_authz_* family is documented, with its type, is
// TestReferenceListsEveryMetric's.
func TestMetricNamesLint(t *testing.T) {
	t.Parallel()
	iss := jwkstest.New(t, jwkstest.Options{})
	p, _ := serveReady(t, iss, "")
	p.check(t, "-token", iss.Sign(t, iss.Claims("s")))
	_, text := p.get(t, "/metrics")
	problems, err := promlint.New(strings.NewReader(text)).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, pr := range problems {
		if strings.HasPrefix(pr.Metric, "jwt_authz_") {
			t.Errorf("%s: %s", pr.Metric, pr.Text)
		}
	}
}

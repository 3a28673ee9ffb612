package main

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jwtauthz/jwt-authz/internal/stacktest"
	"github.com/jwtauthz/jwt-authz/jwks/jwkstest"
)

// TestFileWatchLoadsOnlySettledVersions writes generated versions of a
// config file in place (truncated, then written in chunks) and polls the
// watcher between the writes on a fake clock, the writer never pausing as
// long as the quiet period. The watcher must never hand out a version that
// has not stayed the same for the quiet period (so never a partial one),
// must hand out each finished version exactly once, and its content must be
// the finished version byte for byte.
func TestFileWatchLoadsOnlySettledVersions(t *testing.T) {
	t.Parallel()
	const (
		seed  = 20261202 // fixed, so a failure replays
		quiet = 500 * time.Millisecond
		tick  = 250 * time.Millisecond
	)
	t.Logf("seed %d", seed)
	r := rand.New(rand.NewPCG(seed, 16))
	path := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(path, []byte("# version 0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	clk := jwkstest.NewClock(time.Time{})
	w := newFileWatch(path, watchOptions{Quiet: quiet, Now: clk.Now})
	var lastChange time.Time
	// poll polls once and fails on anything handed out while writing.
	poll := func(writing bool, version int) (snapshot, bool) {
		t.Helper()
		s, ok := w.poll()
		if ok && clk.Now().Sub(lastChange) < quiet {
			t.Fatalf("version %d: handed out %d bytes %v after the last change, before the quiet period", version, len(s.data), clk.Now().Sub(lastChange))
		}
		if ok && writing {
			t.Fatalf("version %d: handed out a version while it was being written (%d bytes)", version, len(s.data))
		}
		return s, ok
	}
	// between polls a few times while the writer pauses, less than the
	// quiet period in all.
	between := func(version int) {
		budget := quiet - time.Millisecond
		for range r.IntN(4) {
			d := time.Duration(r.Int64N(int64(budget)/2 + 1))
			budget -= d
			clk.Advance(d)
			poll(true, version)
		}
	}
	for version := 1; version <= 80; version++ {
		content := fmt.Sprintf("# version %d\n%s\n", version, strings.Repeat("rules: []\n", r.IntN(300)))
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_TRUNC, 0)
		if err != nil {
			t.Fatal(err)
		}
		lastChange = clk.Now()
		between(version)
		for rest := content; rest != ""; {
			n := 1 + r.IntN(len(rest))
			if _, err := f.WriteString(rest[:n]); err != nil {
				t.Fatal(err)
			}
			rest = rest[n:]
			lastChange = clk.Now()
			between(version)
		}
		f.Close()
		// The writer is done: the version is handed out once it settled.
		var got snapshot
		loaded := false
		for i := 0; i < 8 && !loaded; i++ {
			clk.Advance(tick)
			got, loaded = poll(false, version)
		}
		if !loaded {
			t.Fatalf("version %d: not handed out %v after the write ended", version, 8*tick)
		}
		if string(got.data) != content {
			t.Fatalf("version %d: handed out %q, want the finished version", version, got.data)
		}
		clk.Advance(time.Second)
		if _, again := poll(false, version); again {
			t.Fatalf("version %d: handed out twice", version)
		}
	}
	// SIGHUP reads at once, and the watcher takes that as loaded.
	if err := os.WriteFile(path, []byte("# by hand\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if s := w.readNow(); string(s.data) != "# by hand\n" || s.err != nil {
		t.Fatalf("readNow = %q, %v", s.data, s.err)
	}
	clk.Advance(time.Second)
	if _, ok := w.poll(); ok {
		t.Fatal("a version read by readNow was handed out again")
	}
}

// TestReloadWaitsForTheFileToSettle runs the server and rewrites its config
// in place, the way `cat new > config.yaml` or a slow editor does: the file
// is truncated, then written in chunks, and after each chunk it is a valid
// config that is looser than both the old and the new one (no rules, then a
// rule cut off before its `require`). A token that only those partial
// versions allow is checked without pause over gRPC and over the HTTP mode
// until the new config is in force: it must never be allowed, and the
// empty file must never be loaded either.
func TestReloadWaitsForTheFileToSettle(t *testing.T) {
	t.Parallel()
	iss := jwkstest.New(t, jwkstest.Options{})
	cfg := filepath.Join(t.TempDir(), "c.yaml")
	head := "http_authz: {enabled: true, forwarded_headers: x-forwarded}\nproviders:\n" + stacktest.Provider("auth0", iss, "")
	rule := "rules:\n- name: api\n  match: {path_prefix: \"/\"}\n"
	writeConfig(t, cfg, head+rule+"  require: {scopes: [\"write:target\"]}\n")
	// A quiet period far longer than the writer's pauses: the partial
	// versions must not be loaded however slowly this machine runs.
	p := startServeWith(t, cfg, watchOptions{Quiet: 2 * time.Second})
	eventually(t, "ready", func() bool { c, _ := p.get(t, "/readyz"); return c == 200 })

	loose := iss.Sign(t, iss.Claims("loose@clients")) // read:target only
	adminClaims := iss.Claims("admin@clients")
	adminClaims["scope"] = "admin:write"
	admin := iss.Sign(t, adminClaims)
	if code, out := p.check(t, "-token", loose, "-path", "/echo"); code != 1 {
		t.Fatalf("before: the loose token is not denied: %s", out)
	}
	viaHTTP := func(tok string) int {
		req, _ := http.NewRequestWithContext(t.Context(), "GET", "http://"+p.http+"/authz", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		req.Header.Set("X-Forwarded-Method", "GET")
		req.Header.Set("X-Forwarded-Uri", "/echo")
		req.Header.Set("X-Forwarded-Host", "api.example.com")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0
		}
		resp.Body.Close()
		return resp.StatusCode
	}

	var allowed, checks atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			if code, _ := p.check(t, "-token", loose, "-path", "/echo"); code == 0 {
				allowed.Add(1)
			}
			if viaHTTP(loose) == 200 {
				allowed.Add(1)
			}
			checks.Add(2)
		}
	}()

	f, err := os.OpenFile(cfg, os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, chunk := range []string{head, rule, "  require: {scopes: [\"admin:write\"]}\n"} {
		// The writer's pace is what is under test (each partial version
		// outlives the 250 ms poll), not a wait for an event.
		time.Sleep(400 * time.Millisecond)
		if _, err := f.WriteString(chunk); err != nil {
			t.Fatal(err)
		}
	}
	f.Close()
	eventually(t, "the new config in force", func() bool {
		code, _ := p.check(t, "-token", admin, "-path", "/echo")
		return code == 0 && viaHTTP(admin) == 200
	})
	close(stop)
	wg.Wait()
	if n := allowed.Load(); n > 0 {
		t.Errorf("the loose token was allowed %d times in %d checks while the config was being written", n, checks.Load())
	}
	_, m := p.get(t, "/metrics")
	if !strings.Contains(m, `jwt_authz_config_reloads_total{result="success"} 1`) || !strings.Contains(m, `jwt_authz_config_reloads_total{result="error"} 0`) {
		t.Errorf("want exactly one successful reload and no refused one:\n%s", grepLines(m, "jwt_authz_config_reloads_total"))
	}
	t.Logf("%d checks while writing and settling", checks.Load())
}

// grepLines returns the lines of s that contain sub.
func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// Package interop runs, for tests, OAuth software that jwt-authz did not
// write: the Node project in interop/dpop, where oidc-provider (an
// OpenID-certified authorization server) issues DPoP-bound JWT access tokens
// by client credentials and oauth4webapi (a client library) makes the DPoP
// proofs. A Go test gets a real token, proof, issuer and JWKS URL from it, to
// feed to jwt-authz.
//
// It owns the Node side's life cycle: it skips the test when node is missing,
// installs the pinned packages (npm ci) once into a cache directory outside
// the repository (keyed by the lock file's hash; skipping when npm cannot
// install), starts server.mjs on a free loopback port, waits for its ready
// line within a deadline, and stops it at cleanup.
//
// Concurrency: a DPoPServer may be used by parallel subtests; each Request
// runs its own client process.
package interop

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Bounds of the harness: StartDPoPServer and two Requests stay within a
// minute even with a first npm ci (measured here: npm ci 7 s, start 1 s, a
// request 2 s).
const (
	installTimeout = 30 * time.Second
	startTimeout   = 10 * time.Second
	requestTimeout = 10 * time.Second
	minNodeMajor   = 20
)

// projectFiles are copied from interop/dpop into the cache directory.
var projectFiles = []string{"package.json", "package-lock.json", ".npmrc", "server.mjs", "client.mjs"}

// Client is oauth4webapi (interop/dpop/client.mjs) set up for one client of
// one authorization server.
type Client struct {
	Issuer       string `json:"issuer"` // found through its discovery document
	ClientID     string `json:"client_id"`
	ClientSecret string `json:"client_secret"` // sent with client_secret_basic
	Resource     string `json:"resource"`      // sent as resource and as Auth0's audience
	dir          string
}

// DPoPServer is a running interop/dpop/server.mjs: an oidc-provider with one
// client-credentials client, issuing JWT access tokens bound with cnf.jkt.
// Its Client is that client.
type DPoPServer struct {
	Client
	JWKSURI       string `json:"jwks_uri"`       // its signing keys
	TokenEndpoint string `json:"token_endpoint"` // POST, client_secret_basic, DPoP header
	Scope         string `json:"scope"`
	Alg           string `json:"alg"` // of the access tokens
}

// NewClient sets up oauth4webapi for another authorization server (such as
// dev-issuer), or skips t as StartDPoPServer does.
func NewClient(t testing.TB, issuer, clientID, clientSecret, resource string) *Client {
	t.Helper()
	requireNode(t)
	return &Client{Issuer: issuer, ClientID: clientID, ClientSecret: clientSecret, Resource: resource, dir: installProject(t)}
}

// DPoPRequest is a resource request made by oauth4webapi but not sent: the
// access token it got and the headers it would send.
type DPoPRequest struct {
	AccessToken   string `json:"access_token"`
	TokenType     string `json:"token_type"`    // as the client library reports it ("dpop")
	Proof         string `json:"dpop"`          // the DPoP header
	Authorization string `json:"authorization"` // "DPoP <access token>"
	Method        string `json:"method"`
	URL           string `json:"url"`
}

// StartDPoPServer starts the interop authorization server, or skips t when
// node is missing or the packages cannot be installed.
func StartDPoPServer(t testing.TB) *DPoPServer {
	t.Helper()
	node := requireNode(t)
	dir := installProject(t)

	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, node, "server.mjs", "0")
	cmd.Dir = dir
	// stderr goes to a file: read only to explain a failure, no locking.
	stderrPath := filepath.Join(t.TempDir(), "server.stderr")
	stderr, err := os.Create(stderrPath)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	defer stderr.Close() // the child has its own descriptor
	cmd.Stderr = stderr
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = 5 * time.Second // then killed
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatalf("interop: start server.mjs: %v", err)
	}
	t.Cleanup(func() {
		cancel()
		_ = cmd.Wait()
	})

	ready := make(chan *DPoPServer, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			var s struct {
				Ready bool `json:"ready"`
				DPoPServer
			}
			if json.Unmarshal(sc.Bytes(), &s) == nil && s.Ready {
				ready <- &s.DPoPServer
				break
			}
		}
		close(ready)
		_, _ = io.Copy(io.Discard, stdout) // keep the pipe drained
	}()
	select {
	case s, ok := <-ready:
		if !ok {
			t.Fatalf("interop: server.mjs exited before its ready line; stderr:\n%s", readFile(stderrPath))
		}
		s.dir = dir
		t.Logf("interop: oidc-provider at %s", s.Issuer)
		return s
	case <-time.After(startTimeout):
		t.Fatalf("interop: no ready line from server.mjs within %v; stderr:\n%s", startTimeout, readFile(stderrPath))
	}
	return nil
}

// Request has oauth4webapi get a DPoP-bound token by client credentials from
// the issuer and make the proof for method and url.
func (s *Client) Request(t testing.TB, method, url string) DPoPRequest {
	t.Helper()
	node := requireNode(t)
	ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "client.mjs", s.Issuer, s.ClientID, s.ClientSecret, s.Resource, method, url)
	cmd.Dir = s.dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("interop: client.mjs %s %s: %v; stderr:\n%s", method, url, err, stderr.String())
	}
	var r DPoPRequest
	if err := json.Unmarshal(bytes.TrimSpace(out), &r); err != nil {
		t.Fatalf("interop: client.mjs output %q: %v", out, err)
	}
	return r
}

// requireNode returns the path of a recent enough node, or skips t.
func requireNode(t testing.TB) string {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("interop: node is not installed (Debian: apt-get install nodejs npm); skipping the test against oidc-provider and oauth4webapi")
	}
	out, err := exec.Command(node, "--version").Output()
	if err != nil {
		t.Skipf("interop: node --version: %v; skipping", err)
	}
	v := strings.TrimPrefix(strings.TrimSpace(string(out)), "v")
	major, _ := strconv.Atoi(strings.SplitN(v, ".", 2)[0])
	if major < minNodeMajor {
		t.Skipf("interop: node %s is older than %d, which oidc-provider needs; skipping", v, minNodeMajor)
	}
	return node
}

// ProjectDir is interop/dpop in this source tree.
func ProjectDir() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "interop", "dpop")
}

// installProject returns a directory holding the project's scripts and its
// installed packages: a cache directory per lock-file hash, filled by npm ci
// the first time. The packages never land in the source tree.
func installProject(t testing.TB) string {
	t.Helper()
	src := ProjectDir()
	lock, err := os.ReadFile(filepath.Join(src, "package-lock.json"))
	if err != nil {
		t.Fatalf("interop: %v", err)
	}
	sum := sha256.Sum256(lock)
	base := os.Getenv("JWT_AUTHZ_INTEROP_CACHE")
	if base == "" {
		if base, err = os.UserCacheDir(); err != nil {
			base = os.TempDir()
		}
		base = filepath.Join(base, "jwt-authz")
	}
	dir := filepath.Join(base, "interop-dpop-"+hex.EncodeToString(sum[:8]))

	if _, err := os.Stat(filepath.Join(dir, "node_modules", ".package-lock.json")); err != nil {
		npm, err := exec.LookPath("npm")
		if err != nil {
			t.Skip("interop: npm is not installed and the interop packages are not in the cache; skipping")
		}
		if err := os.MkdirAll(base, 0o755); err != nil {
			t.Fatalf("interop: %v", err)
		}
		// Install beside the final place and rename, so that a concurrent
		// or interrupted install never leaves a half-filled cache.
		tmp, err := os.MkdirTemp(base, "install-*")
		if err != nil {
			t.Fatalf("interop: %v", err)
		}
		defer os.RemoveAll(tmp)
		if err := copyFiles(src, tmp); err != nil {
			t.Fatalf("interop: %v", err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), installTimeout)
		defer cancel()
		cmd := exec.CommandContext(ctx, npm, "ci", "--ignore-scripts", "--no-audit", "--no-fund", "--prefer-offline")
		cmd.Dir = tmp
		cmd.Env = append(os.Environ(), "npm_config_update_notifier=false")
		start := time.Now()
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Skipf("interop: npm ci failed after %v (%v), skipping the test; output:\n%s", time.Since(start).Round(time.Millisecond), err, tail(out, 2000))
		}
		t.Logf("interop: npm ci into %s took %v", dir, time.Since(start).Round(time.Millisecond))
		if err := os.Rename(tmp, dir); err != nil && !errors.Is(err, os.ErrExist) {
			if _, statErr := os.Stat(filepath.Join(dir, "node_modules", ".package-lock.json")); statErr != nil {
				t.Fatalf("interop: %v", err) // not another test's install
			}
		}
	}
	// The scripts are copied every time, so that edits to them apply.
	if err := copyFiles(src, dir); err != nil {
		t.Fatalf("interop: %v", err)
	}
	return dir
}

func copyFiles(src, dst string) error {
	for _, name := range projectFiles {
		b, err := os.ReadFile(filepath.Join(src, name))
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dst, name), b, 0o644); err != nil {
			return fmt.Errorf("copy %s: %w", name, err)
		}
	}
	return nil
}

func readFile(path string) string {
	b, _ := os.ReadFile(path)
	return string(tail(b, 4000))
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}

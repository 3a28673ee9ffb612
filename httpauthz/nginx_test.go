package httpauthz_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"text/template"
	"time"

	"github.com/jwtauthz/jwt-authz/httpauthz"
	"github.com/jwtauthz/jwt-authz/internal/mocktarget"
	"github.com/jwtauthz/jwt-authz/internal/stacktest"
	"github.com/jwtauthz/jwt-authz/jwks/jwkstest"
)

// nginxConf puts nginx's auth_request in front of mock-target, the way
// the README tells operators to: the original URI, method and host in
// X-Original-* headers, claim headers copied with auth_request_set and
// proxy_set_header (an empty value drops the header, so a client's own
// x-jwt-sub never passes). nginx copies only WWW-Authenticate, and only
// from a 401; the challenge of a 403 and the reason are relayed with
// auth_request_set and an error_page.
var nginxConf = template.Must(template.New("nginx.conf").Parse(`
{{if .Root}}user root;{{end}}
daemon off;
master_process on;
worker_processes 1;
pid {{.Dir}}/nginx.pid;
error_log {{.Dir}}/error.log info;
events { worker_connections 64; }
http {
  access_log {{.Dir}}/access.log;
  {{range .TempPaths}}{{.}} {{$.Dir}}/{{.}};
  {{end}}
  server {
    listen 127.0.0.1:{{.Port}};

    location / {
      auth_request /_authz;
      auth_request_set $jwt_sub $upstream_http_x_jwt_sub;
      auth_request_set $jwt_scope $upstream_http_x_jwt_scope;
      auth_request_set $auth_challenge $upstream_http_www_authenticate;
      auth_request_set $auth_reason $upstream_http_x_jwt_authz_reason;
      proxy_set_header x-jwt-sub $jwt_sub;
      proxy_set_header x-jwt-scope $jwt_scope;
      error_page 401 = @denied401;
      error_page 403 = @denied403;
      proxy_pass http://{{.Target}};
    }

    location = /_authz {
      internal;
      proxy_pass http://{{.Authz}}/authz;
      proxy_pass_request_body off;
      proxy_set_header Content-Length "";
      proxy_set_header X-Original-URI $request_uri;
      proxy_set_header X-Original-Method $request_method;
      proxy_set_header X-Original-Host $host;
    }

    # auth_request copies WWW-Authenticate of a 401 itself; adding it
    # here again would send it twice. A 403's must be relayed.
    location @denied401 {
      add_header X-Jwt-Authz-Reason $auth_reason always;
      return 401;
    }
    location @denied403 {
      add_header WWW-Authenticate $auth_challenge always;
      add_header X-Jwt-Authz-Reason $auth_reason always;
      return 403;
    }
  }
}
`))

// nginxRules are the rules of the nginx test's stack (after its provider).
const nginxRules = `
rules:
- name: public
  match: {path_prefix: "/echo", hosts: ["public.example.com"]}
  allow_anonymous: true
- name: admin
  match: {path_prefix: "/admin"}
  require: {scopes: ["admin:write"]}
- name: api
  match: {path_prefix: "/"}
  require: {scopes: ["read:target"]}
`

// TestNginxAuthRequest runs a real nginx with auth_request in front of
// mock-target and proves allow, deny with the challenge passed through,
// and claim headers reaching the target (and a client's own never).
func TestNginxAuthRequest(t *testing.T) {
	bin, err := exec.LookPath("nginx")
	if err != nil {
		t.Skip("nginx is not on PATH: install it (apt-get install -y nginx-light) to run the nginx auth_request end-to-end test")
	}
	iss := jwkstest.New(t, jwkstest.Options{})
	provider := stacktest.Provider("auth0", iss, "", `claim_headers: [{claim: sub, header: x-jwt-sub}, {claim: scope, header: x-jwt-scope}]`)
	st := stacktest.Start(t, "providers:\n"+provider+nginxRules, stacktest.Options{})
	authzSrv := httptest.NewServer(httpauthz.Route("/authz",
		httpauthz.NewHandler(httpauthz.Options{Authorizer: st.Current, Forwarded: httpauthz.ForwardedXOriginal}),
		http.NotFoundHandler()))
	t.Cleanup(authzSrv.Close)
	target := httptest.NewServer(mocktarget.New(mocktarget.Options{}))
	t.Cleanup(target.Close)

	base := startNginx(t, bin, authzSrv.Listener.Addr().String(), target.Listener.Addr().String())
	good := iss.Sign(t, iss.Claims("client-1@clients"))
	const realm = `Bearer realm="jwt-authz"`

	t.Run("allowed: claim headers reach the target, spoofed ones do not", func(t *testing.T) {
		resp, body := get(t, base+"/echo?a=1", "", map[string]string{
			"Authorization": "Bearer " + good,
			"X-Jwt-Sub":     "admin@spoofed",
			"X-Jwt-Scope":   "admin:write",
		})
		if resp.StatusCode != 200 {
			t.Fatalf("status %d, want 200; body %s", resp.StatusCode, body)
		}
		var e mocktarget.Echo
		if err := json.Unmarshal(body, &e); err != nil {
			t.Fatalf("echo %s: %v", body, err)
		}
		for k, want := range map[string]string{
			"x-jwt-sub":     "client-1@clients",
			"x-jwt-scope":   "read:target",
			"authorization": "Bearer " + good,
		} {
			if got := e.Headers[k]; got != want {
				t.Errorf("target saw %s = %q, want %q", k, got, want)
			}
		}
		if e.URL != "/echo?a=1" {
			t.Errorf("target saw %q, want /echo?a=1", e.URL)
		}
	})

	t.Run("anonymous route: spoofed claim headers removed", func(t *testing.T) {
		resp, body := get(t, base+"/echo", "public.example.com", map[string]string{"X-Jwt-Sub": "admin@spoofed"})
		if resp.StatusCode != 200 {
			t.Fatalf("status %d, want 200; body %s", resp.StatusCode, body)
		}
		var e mocktarget.Echo
		if err := json.Unmarshal(body, &e); err != nil {
			t.Fatalf("echo %s: %v", body, err)
		}
		if v, ok := e.Headers["x-jwt-sub"]; ok {
			t.Errorf("target saw the client's x-jwt-sub %q", v)
		}
	})

	// nginx replaces a client's X-Original-* with its own
	// (proxy_set_header); a client's X-Forwarded-* reaches jwt-authz, which
	// trusts x-original only and refuses a disagreeing one with 400, which
	// auth_request turns into 500. The upstream is never reached.
	t.Run("forwarded headers from the client", func(t *testing.T) {
		resp, body := get(t, base+"/admin/users", "", map[string]string{
			"X-Original-Uri": "/echo", "X-Original-Host": "public.example.com", "X-Original-Method": "GET",
		})
		if resp.StatusCode != 401 || resp.Header.Get("X-Jwt-Authz-Reason") != "missing_token" {
			t.Errorf("client's X-Original-*: %d %q, want 401 missing_token; body %s", resp.StatusCode, resp.Header.Get("X-Jwt-Authz-Reason"), body)
		}
		resp, body = get(t, base+"/admin/users", "", map[string]string{"X-Forwarded-Uri": "/echo", "Authorization": "Bearer " + good})
		if resp.StatusCode != 500 || bytes.Contains(body, []byte(`"url"`)) {
			t.Errorf("client's disagreeing X-Forwarded-Uri: %d, want 500 (auth_request's answer to a 400); body %s", resp.StatusCode, body)
		}
		resp, body = get(t, base+"/echo", "public.example.com", map[string]string{"X-Forwarded-Uri": "/echo", "X-Forwarded-Host": "public.example.com"})
		if resp.StatusCode != 200 {
			t.Errorf("client's agreeing X-Forwarded-*: %d, want 200; body %s", resp.StatusCode, body)
		}
	})

	denials := []struct {
		name      string
		path      string
		token     string
		status    int
		challenge string
		reason    string
	}{
		{name: "no token", path: "/echo", status: 401, challenge: realm, reason: "missing_token"},
		{name: "bad token", path: "/echo", token: "a.b.c", status: 401, reason: "malformed_token",
			challenge: realm + `, error="invalid_token", error_description="the token is malformed: header is not base64url"`},
		{name: "scope missing", path: "/admin/users", token: good, status: 403, reason: "insufficient_scope",
			challenge: realm + `, error="insufficient_scope", scope="admin:write"`},
		{name: "dot segments in the URI", path: "/echo/../admin", token: good, status: 403, reason: "insufficient_scope",
			challenge: realm + `, error="insufficient_scope", scope="admin:write"`},
	}
	for _, tt := range denials {
		t.Run("denied: "+tt.name, func(t *testing.T) {
			hdr := map[string]string{}
			if tt.token != "" {
				hdr["Authorization"] = "Bearer " + tt.token
			}
			resp, body := get(t, base+tt.path, "", hdr)
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d; body %s", resp.StatusCode, tt.status, body)
			}
			if got := resp.Header.Values("Www-Authenticate"); len(got) != 1 || got[0] != tt.challenge {
				t.Errorf("WWW-Authenticate %q, want [%q]", got, tt.challenge)
			}
			if got := resp.Header.Get("X-Jwt-Authz-Reason"); got != tt.reason {
				t.Errorf("reason %q, want %q", got, tt.reason)
			}
		})
	}
}

// get sends a GET through nginx. Go's client sends the path as given, dot
// segments included.
func get(t *testing.T, url, host string, hdr map[string]string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), "GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if host != "" {
		req.Host = host
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, body
}

// startNginx writes the config into a temporary directory, runs nginx in
// the foreground on a free loopback port, waits until it answers, and
// stops it (SIGQUIT, then SIGKILL) when the test ends.
func startNginx(t *testing.T, bin, authzAddr, targetAddr string) string {
	t.Helper()
	dir := t.TempDir()
	v, _ := exec.Command(bin, "-V").CombinedOutput()
	temps := []string{"client_body_temp_path", "proxy_temp_path"}
	for _, m := range []string{"fastcgi", "uwsgi", "scgi"} {
		// Debian builds put every temp path under /var/lib/nginx; keep
		// them all in the test's directory, for modules that are built in.
		if !bytes.Contains(v, []byte("--without-http_"+m+"_module")) {
			temps = append(temps, m+"_temp_path")
		}
	}
	var lastErr error
	for range 3 { // the free port can be taken between Close and nginx's bind
		port := freePort(t)
		conf := filepath.Join(dir, "nginx.conf")
		var b bytes.Buffer
		if err := nginxConf.Execute(&b, map[string]any{
			"Root": os.Geteuid() == 0, "Dir": dir, "Port": port, "TempPaths": temps,
			"Authz": authzAddr, "Target": targetAddr,
		}); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(conf, b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		cmd := exec.Command(bin, "-p", dir, "-c", conf, "-e", filepath.Join(dir, "error.log"))
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatalf("start nginx: %v", err)
		}
		exited := make(chan struct{}) // closed when nginx has exited
		go func() { cmd.Wait(); close(exited) }()
		base := fmt.Sprintf("http://127.0.0.1:%d", port)
		if err := waitHTTP(base+"/", exited); err != nil {
			logs, _ := os.ReadFile(filepath.Join(dir, "error.log"))
			lastErr = fmt.Errorf("nginx did not answer: %v\noutput: %s\nerror.log: %s", err, out.String(), logs)
			stopNginx(t, cmd, exited)
			continue
		}
		t.Cleanup(func() {
			stopNginx(t, cmd, exited)
			if t.Failed() {
				logs, _ := os.ReadFile(filepath.Join(dir, "error.log"))
				t.Logf("nginx error.log:\n%s", logs)
			}
		})
		return base
	}
	t.Fatal(lastErr)
	return ""
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// waitHTTP polls url until it answers at all, nginx exits, or 10 s pass.
func waitHTTP(url string, exited <-chan struct{}) error {
	deadline := time.Now().Add(10 * time.Second)
	c := &http.Client{Timeout: time.Second}
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return errors.New("nginx exited")
		default:
		}
		if resp, err := c.Get(url); err == nil {
			resp.Body.Close()
			return nil
		}
		time.Sleep(20 * time.Millisecond) // polling with a deadline, not waiting for an event
	}
	return errors.New("timed out")
}

func stopNginx(t *testing.T, cmd *exec.Cmd, exited <-chan struct{}) {
	t.Helper()
	select {
	case <-exited:
		return
	default:
	}
	_ = cmd.Process.Signal(syscall.SIGQUIT) // graceful shutdown
	select {
	case <-exited:
	case <-time.After(5 * time.Second):
		_ = cmd.Process.Kill()
		<-exited
	}
}

package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthgrpc "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/jwtauthz/jwt-authz/jwks/jwkstest"
)

// readyz is the body of /readyz.
type readyz struct {
	Ready     bool   `json:"ready"`
	Status    string `json:"status"`
	Providers map[string]struct {
		Ready bool   `json:"ready"`
		Error string `json:"error"`
	} `json:"providers"`
	NotReady []struct{ Provider, Error string } `json:"not_ready"`
}

func (p *proc) readyz(t *testing.T) (int, readyz) {
	t.Helper()
	code, body := p.get(t, "/readyz")
	var r readyz
	if err := json.Unmarshal([]byte(body), &r); err != nil {
		t.Fatalf("/readyz body %q: %v", body, err)
	}
	return code, r
}

// health opens a grpc.health.v1 client on the server's gRPC listener.
func (p *proc) health(t *testing.T) healthgrpc.HealthClient {
	t.Helper()
	conn, err := grpc.NewClient(p.grpc, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return healthgrpc.NewHealthClient(conn)
}

func healthStatus(t *testing.T, h healthgrpc.HealthClient) healthgrpc.HealthCheckResponse_ServingStatus {
	t.Helper()
	r, err := h.Check(t.Context(), &healthgrpc.HealthCheckRequest{})
	if err != nil {
		t.Fatalf("health Check: %v", err)
	}
	return r.GetStatus()
}

func providerYAML(name string, iss *jwkstest.Issuer, extra string) string {
	return fmt.Sprintf(`- name: %s
  issuer: %q
  audiences: ["urn:apigee:target:api"]
  jwks: {uri: %q, min_refresh_interval: "0.2s", fetch_timeout: "1s"%s}
`, name, iss.IssuerURL(), iss.JWKSURL(), extra)
}

// TestReadinessGatesOnlyTheFirstStart: at start the instance is out of
// service until every provider has keys; afterwards a reload that adds a
// provider whose IdP is down leaves it in service (gRPC health SERVING,
// /readyz 200 "degraded" naming the provider), the new provider answers its
// own tokens 503 keys_unavailable, the others keep serving, and
// jwt_authz_provider_ready shows which one lacks keys.
func TestReadinessGatesOnlyTheFirstStart(t *testing.T) {
	t.Parallel()
	a := jwkstest.New(t, jwkstest.Options{})
	late := jwkstest.New(t, jwkstest.Options{})
	down := jwkstest.New(t, jwkstest.Options{})
	late.SetFailure(jwkstest.Status500)
	down.SetFailure(jwkstest.Status500)
	cfg := filepath.Join(t.TempDir(), "c.yaml")
	first := "providers:\n" + providerYAML("auth0", a, "") + providerYAML("late", late, "")
	writeConfig(t, cfg, first)
	p := startServe(t, cfg)
	health := p.health(t)

	// First start: out of service while "late" has no keys.
	eventually(t, "readyz names late with its error", func() bool {
		code, r := p.readyz(t)
		return code == 503 && !r.Ready && r.Status == "starting" && len(r.NotReady) == 1 &&
			r.NotReady[0].Provider == "late" && strings.Contains(r.NotReady[0].Error, "500") &&
			r.Providers["auth0"].Ready && !r.Providers["late"].Ready
	})
	if s := healthStatus(t, health); s != healthgrpc.HealthCheckResponse_NOT_SERVING {
		t.Fatalf("health before every provider had keys = %v, want NOT_SERVING", s)
	}
	late.SetFailure(jwkstest.None)
	eventually(t, "readyz 200 ok", func() bool {
		code, r := p.readyz(t)
		return code == 200 && r.Ready && r.Status == "ok" && len(r.NotReady) == 0
	})
	eventually(t, "health SERVING", func() bool { return healthStatus(t, health) == healthgrpc.HealthCheckResponse_SERVING })

	// Watch from now on: not one NOT_SERVING may come.
	watch, err := health.Watch(t.Context(), &healthgrpc.HealthCheckRequest{})
	if err != nil {
		t.Fatal(err)
	}
	statuses := make(chan healthgrpc.HealthCheckResponse_ServingStatus, 100)
	go func() {
		for {
			r, err := watch.Recv()
			if err != nil {
				return
			}
			statuses <- r.GetStatus()
		}
	}()

	// A reload adds a provider whose IdP is down.
	writeConfig(t, cfg, first+providerYAML("down", down, ""))
	eventually(t, "reload counted", func() bool {
		_, m := p.get(t, "/metrics")
		return strings.Contains(m, `jwt_authz_config_reloads_total{result="success"} 1`)
	})
	eventually(t, "readyz 200 degraded naming down", func() bool {
		code, r := p.readyz(t)
		return code == 200 && r.Ready && r.Status == "degraded" && len(r.NotReady) == 1 &&
			r.NotReady[0].Provider == "down" && strings.Contains(r.NotReady[0].Error, "500") &&
			r.Providers["auth0"].Ready && r.Providers["late"].Ready && !r.Providers["down"].Ready
	})
	// A second reload: its tick evaluates health after the first one's did.
	writeConfig(t, cfg, first+providerYAML("down", down, `, refresh_interval: "600s"`))
	eventually(t, "second reload counted", func() bool {
		_, m := p.get(t, "/metrics")
		return strings.Contains(m, `jwt_authz_config_reloads_total{result="success"} 2`)
	})
	if s := healthStatus(t, health); s != healthgrpc.HealthCheckResponse_SERVING {
		t.Fatalf("health after adding a provider without keys = %v, want SERVING", s)
	}
	for done := false; !done; {
		select {
		case s := <-statuses:
			if s != healthgrpc.HealthCheckResponse_SERVING {
				t.Fatalf("health watch saw %v after the reload", s)
			}
		default:
			done = true
		}
	}

	// Each provider answers its own tokens.
	if code, out := p.check(t, "-token", down.Sign(t, down.Claims("s"))); code != 1 ||
		!strings.Contains(out, "reason: keys_unavailable") || !strings.Contains(out, "status: 503") ||
		!strings.Contains(out, "grpc code: 14") {
		t.Errorf("token of the provider without keys: exit %d\n%s", code, out)
	}
	for _, iss := range []*jwkstest.Issuer{a, late} {
		if code, out := p.check(t, "-token", iss.Sign(t, iss.Claims("s"))); code != 0 || !strings.Contains(out, "reason: ok") {
			t.Errorf("token of a provider with keys: exit %d\n%s", code, out)
		}
	}
	_, m := p.get(t, "/metrics")
	for _, want := range []string{
		`jwt_authz_provider_ready{provider="auth0"} 1`,
		`jwt_authz_provider_ready{provider="late"} 1`,
		`jwt_authz_provider_ready{provider="down"} 0`,
	} {
		if !strings.Contains(m, want+"\n") {
			t.Errorf("/metrics lacks %s", want)
		}
	}

	// The IdP returns: the provider becomes ready, the instance "ok".
	down.SetFailure(jwkstest.None)
	eventually(t, "readyz ok again", func() bool {
		code, r := p.readyz(t)
		return code == 200 && r.Status == "ok"
	})
	_, m = p.get(t, "/metrics")
	if !strings.Contains(m, `jwt_authz_provider_ready{provider="down"} 1`+"\n") {
		t.Error("provider_ready of down did not turn 1")
	}
}

// TestReloadOfTuningKeepsKeysDuringOutage: the IdP is down and a reload
// changes only the tuning of the key set (refresh_interval,
// min_refresh_interval, fetch_timeout, algorithms): its keys stay, tokens
// keep being allowed, the instance stays in service, and no fetch is needed.
func TestReloadOfTuningKeepsKeysDuringOutage(t *testing.T) {
	t.Parallel()
	iss := jwkstest.New(t, jwkstest.Options{})
	cfg := filepath.Join(t.TempDir(), "c.yaml")
	doc := func(jwksExtra, providerExtra string) string {
		return fmt.Sprintf(`providers:
- name: auth0
  issuer: %q
  audiences: ["urn:apigee:target:api"]
  jwks: {uri: %q%s}
%s`, iss.IssuerURL(), iss.JWKSURL(), jwksExtra, providerExtra)
	}
	writeConfig(t, cfg, doc(`, refresh_interval: "900s"`, ""))
	p := startServe(t, cfg)
	eventually(t, "ready", func() bool { c, _ := p.get(t, "/readyz"); return c == 200 })
	tok := iss.Sign(t, iss.Claims("client-1@clients"))
	if code, out := p.check(t, "-token", tok); code != 0 {
		t.Fatalf("before the outage: %s", out)
	}
	_, before := p.get(t, "/debug/keys")
	fetchedAt := func(body string) string {
		var v struct {
			Providers []struct {
				FetchedAt string `json:"fetched_at"`
				Keys      []struct{ KID string }
			} `json:"providers"`
		}
		json.Unmarshal([]byte(body), &v)
		if len(v.Providers) != 1 || len(v.Providers[0].Keys) == 0 {
			return ""
		}
		return v.Providers[0].FetchedAt + " " + v.Providers[0].Keys[0].KID
	}
	iss.SetFailure(jwkstest.Status500)

	for i, change := range []struct{ jwks, provider string }{
		{jwks: `, refresh_interval: "600s"`},
		{jwks: `, refresh_interval: "600s", min_refresh_interval: "0.5s", fetch_timeout: "1s"`},
		{jwks: `, refresh_interval: "600s"`, provider: `  algorithms: ["RS256", "ES256"]` + "\n"},
	} {
		writeConfig(t, cfg, doc(change.jwks, change.provider))
		eventually(t, "reload counted", func() bool {
			_, m := p.get(t, "/metrics")
			return strings.Contains(m, fmt.Sprintf(`jwt_authz_config_reloads_total{result="success"} %d`, i+1))
		})
		if code, out := p.check(t, "-token", tok); code != 0 || !strings.Contains(out, "reason: ok") {
			t.Fatalf("reload %d (%+v) during the outage: exit %d\n%s", i+1, change, code, out)
		}
		code, r := p.readyz(t)
		if code != 200 || r.Status != "ok" || !r.Providers["auth0"].Ready {
			t.Errorf("reload %d: readyz %d %+v", i+1, code, r)
		}
		if _, after := p.get(t, "/debug/keys"); fetchedAt(after) == "" || fetchedAt(after) != fetchedAt(before) {
			t.Errorf("reload %d: keys or last-success time changed:\nbefore %s\nafter  %s", i+1, before, after)
		}
	}
	// A new source is a new key set: it has to fetch, and the IdP is down.
	writeConfig(t, cfg, strings.Replace(doc(`, refresh_interval: "600s"`, ""), jwkstest.JWKSPath, jwkstest.JWKSPath+"?v=2", 1))
	eventually(t, "reload to a new source", func() bool {
		code, out := p.check(t, "-token", tok)
		return code == 1 && strings.Contains(out, "reason: keys_unavailable")
	})
}

// TestAudiencesRequired: a config without audiences is refused by validate
// and serve, naming the field; skip_audience_check accepts tokens of any
// audience and is warned about at start and at every reload; with
// audiences, a token for another API of the same issuer is denied.
func TestAudiencesRequired(t *testing.T) {
	t.Parallel()
	iss := jwkstest.New(t, jwkstest.Options{})
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing.yaml")
	writeConfig(t, missing, fmt.Sprintf("providers:\n- {name: auth0, issuer: %q, jwks: {uri: %q}}\n", iss.IssuerURL(), iss.JWKSURL()))
	for _, cmd := range []string{"validate", "serve"} {
		var out, errb bytes.Buffer
		if code := run(t.Context(), []string{cmd, "-config", missing}, &out, &errb); code != 1 ||
			!strings.HasPrefix(errb.String(), "providers[0].audiences: is required") {
			t.Errorf("%s without audiences: exit %d, stderr %q", cmd, code, errb.String())
		}
	}

	skip := filepath.Join(dir, "skip.yaml")
	skipDoc := fmt.Sprintf("providers:\n- {name: auth0, issuer: %q, skip_audience_check: true, jwks: {uri: %q}}\n", iss.IssuerURL(), iss.JWKSURL())
	writeConfig(t, skip, skipDoc)
	p := startServe(t, skip)
	eventually(t, "ready", func() bool { c, _ := p.get(t, "/readyz"); return c == 200 })
	mgmt := iss.Claims("client-1@clients")
	mgmt["aud"] = "https://tenant.example/api/v2/" // a Management API token
	mgmtTok := iss.Sign(t, mgmt)
	if code, out := p.check(t, "-token", mgmtTok); code != 0 {
		t.Errorf("skip_audience_check: exit %d\n%s", code, out)
	}
	warnings := func() int { return strings.Count(p.logs.String(), `"msg":"audience check skipped`) }
	if warnings() != 1 {
		t.Errorf("start: %d audience warnings, want 1", warnings())
	}
	writeConfig(t, skip, skipDoc+"realm: \"r2\"\n")
	eventually(t, "warned again at the reload", func() bool { return warnings() == 2 })

	// With audiences, the Management API token is refused.
	writeConfig(t, skip, fmt.Sprintf("providers:\n- {name: auth0, issuer: %q, audiences: [\"urn:apigee:target:api\"], jwks: {uri: %q}}\n", iss.IssuerURL(), iss.JWKSURL()))
	eventually(t, "audience enforced after the reload", func() bool {
		code, out := p.check(t, "-token", mgmtTok)
		return code == 1 && strings.Contains(out, "reason: invalid_audience") && strings.Contains(out, "status: 401")
	})
	if code, out := p.check(t, "-token", iss.Sign(t, iss.Claims("client-1@clients"))); code != 0 {
		t.Errorf("token for our audience: exit %d\n%s", code, out)
	}
	if warnings() != 2 {
		t.Errorf("%d audience warnings after a reload that sets audiences, want still 2", warnings())
	}
}

// TestInsecureKeySourcesRefused: validate refuses plain-http key sources
// for hosts that are not loopback; at run time a discovery document whose
// jwks_uri is plain http to another host leaves the provider not ready
// with the error named in /readyz, and nothing is fetched from there.
func TestInsecureKeySourcesRefused(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	writeConfig(t, bad, `providers:
- {name: a, issuer: "https://a.example/", audiences: [x], jwks: {uri: "http://a.example/jwks.json"}}
- {name: b, issuer: "http://b.example/", audiences: [x], jwks: {discovery: true}}
`)
	var out, errb bytes.Buffer
	if code := run(t.Context(), []string{"validate", "-config", bad}, &out, &errb); code != 1 ||
		!strings.Contains(errb.String(), "providers[0].jwks.uri: \"http://a.example/jwks.json\": plain http:// is refused") ||
		!strings.Contains(errb.String(), "providers[1].jwks.discovery: issuer \"http://b.example/\": plain http:// is refused") {
		t.Errorf("validate: exit %d\n%s", code, errb.String())
	}

	// A discovery document on loopback that points its jwks_uri elsewhere
	// over plain http.
	var idp *httptest.Server
	idp = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"issuer":%q,"jwks_uri":"http://keys.example/jwks.json"}`, idp.URL+"/")
	}))
	t.Cleanup(idp.Close)
	cfg := filepath.Join(dir, "c.yaml")
	writeConfig(t, cfg, fmt.Sprintf(`providers:
- {name: moved, issuer: %q, audiences: [x], jwks: {discovery: true, min_refresh_interval: "0.2s"}}
`, idp.URL+"/"))
	p := startServe(t, cfg)
	eventually(t, "readyz names the refused jwks_uri", func() bool {
		code, r := p.readyz(t)
		return code == 503 && len(r.NotReady) == 1 && r.NotReady[0].Provider == "moved" &&
			strings.Contains(r.NotReady[0].Error, `jwks_uri: http://keys.example/jwks.json: plain http:// is refused`)
	})
}

// TestNoSecretInURIsIsShown: key-source URIs carrying credentials (userinfo,
// query values, fragments) against live, failing, unreachable, slow and
// redirecting sources, and a bad config full of them: no secret reaches
// /readyz, /debug/keys, /metrics, the log or validate's output.
func TestNoSecretInURIsIsShown(t *testing.T) {
	t.Parallel()
	const seed = 20261202
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 0x6b657973))
	var secrets []string
	secret := func() string {
		const alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
		b := make([]byte, 12+rng.IntN(12))
		for i := range b {
			b[i] = alphabet[rng.IntN(len(alphabet))]
		}
		s := "S" + string(b) // never a substring of anything else printed
		secrets = append(secrets, s)
		return s
	}
	live := jwkstest.New(t, jwkstest.Options{})
	failing := jwkstest.New(t, jwkstest.Options{})
	failing.SetFailure(jwkstest.Status500)
	slow := jwkstest.New(t, jwkstest.Options{})
	slow.SetFailure(jwkstest.Timeout)
	dead := httptest.NewServer(http.NotFoundHandler())
	deadHost := strings.TrimPrefix(dead.URL, "http://")
	dead.Close()
	redirect := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// To a plain-http host that is not loopback, with secrets in it:
		// refused, and the refusal must not print them.
		http.Redirect(w, r, "http://"+r.URL.Query().Get("u")+"@keys.example/jwks.json?key="+r.URL.Query().Get("k"), http.StatusFound)
	}))
	t.Cleanup(redirect.Close)

	hosts := []string{
		strings.TrimPrefix(live.URL(), "http://"), strings.TrimPrefix(failing.URL(), "http://"),
		strings.TrimPrefix(slow.URL(), "http://"), deadHost,
	}
	// URI shapes that carry secrets.
	shapes := []func(host string) string{
		func(h string) string { return "http://" + secret() + ":" + secret() + "@" + h + jwkstest.JWKSPath },
		func(h string) string {
			return "http://" + secret() + "@" + h + jwkstest.JWKSPath + "?api_key=" + secret()
		},
		func(h string) string {
			return "http://" + h + jwkstest.JWKSPath + "?tenant=t1&access_token=" + secret() + "&sig=" + secret()
		},
		func(h string) string { return "http://" + h + jwkstest.JWKSPath + "?" + secret() },
		func(h string) string { return "http://" + h + jwkstest.JWKSPath + "#" + secret() },
		func(h string) string {
			return "http://" + secret() + ":" + secret() + "@" + h + jwkstest.JWKSPath + "?k=" + secret() + "#" + secret()
		},
	}
	var yaml strings.Builder
	yaml.WriteString("logging: {level: debug}\nproviders:\n")
	n := 0
	add := func(uri string) {
		fmt.Fprintf(&yaml, "- {name: p%d, issuer: \"https://p%d.example/\", audiences: [x], jwks: {uri: %q, fetch_timeout: \"0.5s\", min_refresh_interval: \"1s\"}}\n", n, n, uri)
		n++
	}
	for _, h := range hosts {
		for _, shape := range shapes {
			add(shape(h))
		}
	}
	add("http://" + strings.TrimPrefix(redirect.URL, "http://") + "/r?u=" + secret() + "&k=" + secret())
	// A discovery issuer with userinfo: the document's issuer differs, and
	// the mismatch error prints both.
	fmt.Fprintf(&yaml, "- {name: disc, issuer: %q, audiences: [x], jwks: {discovery: true, min_refresh_interval: \"1s\"}}\n",
		"http://"+secret()+":"+secret()+"@"+strings.TrimPrefix(live.URL(), "http://")+"/")
	cfg := filepath.Join(t.TempDir(), "c.yaml")
	writeConfig(t, cfg, yaml.String())
	p := startServe(t, cfg)

	// Every source tried at least once (and the live ones got keys).
	eventually(t, "every provider fetched or failed", func() bool {
		_, r := p.readyz(t)
		if len(r.Providers) != n+1 {
			return false
		}
		for _, st := range r.Providers {
			if !st.Ready && st.Error == "" {
				return false
			}
		}
		for i := range shapes { // the live issuer's providers get keys
			if !r.Providers[fmt.Sprintf("p%d", i)].Ready {
				return false
			}
		}
		return true
	})
	_, readyBody := p.get(t, "/readyz")
	_, keysBody := p.get(t, "/debug/keys")
	_, metrics := p.get(t, "/metrics")
	if !strings.Contains(keysBody, "REDACTED") || !strings.Contains(keysBody, "keys.example") && !strings.Contains(readyBody, "keys.example") {
		t.Errorf("the redacted URIs are not shown at all:\n%s\n%s", keysBody, readyBody)
	}
	for _, want := range []string{"unexpected status 500", "connection refused", "deadline exceeded", "refusing a redirect", "issuer mismatch"} {
		if !strings.Contains(readyBody+keysBody, want) {
			t.Errorf("no provider shows %q: the error path was not exercised", want)
		}
	}

	// validate on a config whose URIs are all refused.
	var bad strings.Builder
	bad.WriteString("providers:\n")
	for i, shape := range shapes {
		uri := shape("keys.example")
		if i%2 == 1 {
			uri = "ftp" + strings.TrimPrefix(uri, "http")
		}
		fmt.Fprintf(&bad, "- {name: b%d, issuer: \"https://b%d.example/\", audiences: [x], jwks: {uri: %q}}\n", i, i, uri)
	}
	badPath := filepath.Join(t.TempDir(), "bad.yaml")
	writeConfig(t, badPath, bad.String())
	var vout, verr bytes.Buffer
	if code := run(t.Context(), []string{"validate", "-config", badPath}, &vout, &verr); code != 1 || strings.Count(verr.String(), "\n") != len(shapes) {
		t.Errorf("validate: exit %d, want 1 and %d problems:\n%s", code, len(shapes), verr.String())
	}

	for where, text := range map[string]string{
		"/readyz": readyBody, "/debug/keys": keysBody, "/metrics": metrics, "log": p.logs.String(),
		"validate": vout.String() + verr.String(),
	} {
		for _, s := range secrets {
			if strings.Contains(text, s) {
				t.Errorf("%s shows the secret %s", where, s)
			}
		}
	}
}

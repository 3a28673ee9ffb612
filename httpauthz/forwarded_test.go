package httpauthz_test

import (
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/jwtauthz/jwt-authz/httpauthz"
)

// send does one request over a real connection to srv and reads the
// answer as a proxy would.
func send(t *testing.T, srv *httptest.Server, method, target, host string, hdr http.Header) result {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, srv.URL+target, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Host = host
	for k, vs := range hdr {
		req.Header[k] = vs // kept as spelled: X_Forwarded_Uri, x-original-uri
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	return readResult(t, resp)
}

// oneViewField is a member of both families, with the values the
// generator draws for it.
type oneViewField struct {
	suffix   string
	required bool
	fold     bool
	values   []string
}

var oneViewFields = []oneViewField{
	{suffix: "method", required: true, fold: true, values: []string{"GET", "get", "POST", "DELETE", "HEAD"}},
	{suffix: "uri", required: true, values: []string{"/healthz", "/healthz?x=1", "/admin/delete", "/json", "/internal/x", "/healthz/../admin"}},
	{suffix: "host", required: true, fold: true, values: []string{"api.example.com", "internal.example.com", "INTERNAL.example.com"}},
	{suffix: "proto", fold: true, values: []string{"http", "https", "HTTPS"}},
}

// spell writes a member name the ways clients and proxies do.
func spell(r *rand.Rand, name string) string {
	switch r.IntN(4) {
	case 0:
		return strings.ToLower(name)
	case 1:
		return strings.ReplaceAll(name, "-", "_")
	}
	return http.CanonicalHeaderKey(name)
}

// TestOneViewOfTheRequest holds the decision rule over generated header
// combinations, for every setting, over real HTTP: each member of each
// family absent, once, repeated (under one or two spellings), agreeing or
// disagreeing with the other family. The rule, written here independently
// of the handler:
//   - forwarded_headers "": every forwarded header is ignored; the answer is
//     that of the subrequest alone.
//   - a family F: a member of F repeated, or a required member (method,
//     uri, host) missing → 400 bad_request; a member of the other family
//     that differs from F's (case-insensitively but for the URI) → 400
//     bad_request; otherwise the answer is exactly that of a direct request
//     with F's method, URI and host and no forwarded headers at all.
func TestOneViewOfTheRequest(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	const seed = 20261202 // fixed, so a failure replays; change it to explore
	t.Logf("seed %d", seed)
	r := rand.New(rand.NewPCG(seed, 0x0e1e))
	servers := map[httpauthz.Forwarded]*httptest.Server{}
	for _, fam := range []httpauthz.Forwarded{httpauthz.ForwardedNone, httpauthz.ForwardedXForwarded, httpauthz.ForwardedXOriginal} {
		srv := httptest.NewServer(httpauthz.NewHandler(httpauthz.Options{Authorizer: f.current, Forwarded: fam}))
		t.Cleanup(srv.Close)
		servers[fam] = srv
	}
	tokens := []string{"", f.good, f.admin}
	families := []string{"x-forwarded", "x-original"}
	const perSetting = 300
	counts := map[string]int{}
	for _, setting := range []httpauthz.Forwarded{httpauthz.ForwardedNone, httpauthz.ForwardedXForwarded, httpauthz.ForwardedXOriginal} {
		for i := range perSetting {
			hdr := http.Header{}
			sent := map[string][]string{} // lower-case member name → values
			for _, fam := range families {
				for _, fd := range oneViewFields {
					name := fam + "-" + fd.suffix
					var n int
					switch r.IntN(12) {
					case 0:
						n = 0
					case 1:
						n = 2
					default:
						n = 1
					}
					for range n {
						v := fd.values[r.IntN(len(fd.values))]
						if len(sent[name]) == 1 && r.IntN(2) == 0 {
							v = sent[name][0] // the same value twice is still two
						}
						key := spell(r, name)
						hdr[key] = append(hdr[key], v)
						sent[name] = append(sent[name], v)
					}
				}
			}
			// Make the other family agree now and then, so both branches
			// of the rule are exercised.
			if setting != httpauthz.ForwardedNone && r.IntN(3) != 0 {
				other := "x-original"
				if setting == httpauthz.ForwardedXOriginal {
					other = "x-forwarded"
				}
				for _, fd := range oneViewFields {
					if tv := sent[string(setting)+"-"+fd.suffix]; len(tv) == 1 {
						for k := range hdr {
							if strings.EqualFold(strings.ReplaceAll(k, "_", "-"), other+"-"+fd.suffix) {
								delete(hdr, k)
							}
						}
						delete(sent, other+"-"+fd.suffix)
						if r.IntN(2) == 0 {
							hdr[spell(r, other+"-"+fd.suffix)] = []string{tv[0]}
							sent[other+"-"+fd.suffix] = []string{tv[0]}
						}
					}
				}
			}
			tok := tokens[r.IntN(len(tokens))]
			if tok != "" {
				hdr.Set("Authorization", "Bearer "+tok)
			}
			ownPath := oneViewFields[1].values[r.IntN(len(oneViewFields[1].values))]
			ownMethod := []string{"GET", "POST"}[r.IntN(2)]

			// The rule.
			method, uri, host := ownMethod, ownPath, "api.example.com"
			bad := ""
			if setting != httpauthz.ForwardedNone {
				other := "x-original"
				if setting == httpauthz.ForwardedXOriginal {
					other = "x-forwarded"
				}
				eff := map[string]string{}
				for _, fd := range oneViewFields {
					tv := sent[string(setting)+"-"+fd.suffix]
					if len(tv) == 0 {
						if fd.required {
							bad = "missing"
							break
						}
						continue
					}
					if len(tv) > 1 {
						bad = "repeated"
						break
					}
					for _, ov := range sent[other+"-"+fd.suffix] {
						if ov != tv[0] && !(fd.fold && strings.EqualFold(ov, tv[0])) {
							bad = "disagrees"
						}
					}
					if bad != "" {
						break
					}
					eff[fd.suffix] = tv[0]
				}
				method, uri, host = eff["method"], eff["uri"], eff["host"]
			}
			got := send(t, servers[setting], ownMethod, "/authz"+ownPath, "api.example.com", hdr)
			var want result
			if bad != "" {
				want = result{Status: 400, Reason: "bad_request", BodyError: "invalid_request", Detail: got.Detail}
				if !strings.Contains(got.Detail, bad) {
					t.Errorf("case %d (%q): detail %q, want it to say %q", i, setting, got.Detail, bad)
				}
			} else {
				direct := http.Header{}
				if tok != "" {
					direct.Set("Authorization", "Bearer "+tok)
				}
				want = send(t, servers[httpauthz.ForwardedNone], method, "/authz"+uri, host, direct)
				if method == "HEAD" {
					want.BodyError = got.BodyError // a HEAD answer has no body; the reason is compared
				}
			}
			counts[fmt.Sprintf("%s/%s", setting, want.Reason)]++
			if diff := cmp.Diff(want, got); diff != "" {
				t.Fatalf("case %d, setting %q: %s /authz%s headers %v (-want +got):\n%s", i, setting, ownMethod, ownPath, hdr, diff)
			}
		}
	}
	t.Logf("answers by setting/reason: %v", counts)
	// The table must have reached both sides of the rule in each setting.
	for _, k := range []string{"x-forwarded/bad_request", "x-original/bad_request", "x-forwarded/anonymous", "x-original/anonymous", "/anonymous"} {
		if counts[k] == 0 {
			t.Errorf("no generated case ended as %s", k)
		}
	}
}

// forwardAuthProxy is a proxy written the way Traefik's forwardAuth works:
// it copies every client header into a GET to authURL, sets
// X-Forwarded-Method, -Proto, -Host and -Uri (replacing a client's), and
// on a 2xx deletes the client's copies of responseHeaders, sets them from
// the answer and forwards the request to upstream; on any other status it
// relays the answer.
func forwardAuthProxy(authURL string, upstream *url.URL, responseHeaders []string) http.Handler {
	rp := httputil.NewSingleHostReverseProxy(upstream)
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		areq, err := http.NewRequestWithContext(r.Context(), http.MethodGet, authURL, nil)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		for k, vs := range r.Header {
			areq.Header[k] = append([]string(nil), vs...)
		}
		areq.Header.Set("X-Forwarded-Method", r.Method)
		areq.Header.Set("X-Forwarded-Proto", "http")
		areq.Header.Set("X-Forwarded-Host", r.Host)
		areq.Header.Set("X-Forwarded-Uri", r.URL.RequestURI())
		resp, err := client.Do(areq)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode < 200 || resp.StatusCode > 299 {
			for k, vs := range resp.Header {
				w.Header()[k] = vs
			}
			w.WriteHeader(resp.StatusCode)
			w.Write(body)
			return
		}
		for _, h := range responseHeaders {
			r.Header.Del(h)
			if vs := resp.Header.Values(h); len(vs) > 0 {
				r.Header[http.CanonicalHeaderKey(h)] = vs
			}
		}
		rp.ServeHTTP(w, r)
	})
}

// TestForwardAuthProxyEndToEnd: client → forwardAuth-style proxy →
// jwt-authz's HTTP mode on a real listener → upstream. The attack of the
// old "X-Original-* first" rule (a client's X-Original-Uri naming an
// anonymous path beside the proxy's X-Forwarded-Uri) is refused before the
// upstream sees anything.
func TestForwardAuthProxyEndToEnd(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	authSrv := httptest.NewServer(httpauthz.Route("/authz",
		httpauthz.NewHandler(httpauthz.Options{Authorizer: f.current, Forwarded: httpauthz.ForwardedXForwarded}),
		http.NotFoundHandler()))
	t.Cleanup(authSrv.Close)
	type seen struct {
		uri string
		hdr http.Header
	}
	var mu sync.Mutex
	var reached []seen
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		reached = append(reached, seen{r.URL.RequestURI(), r.Header.Clone()})
		mu.Unlock()
		io.WriteString(w, "upstream")
	}))
	t.Cleanup(upstream.Close)
	u, _ := url.Parse(upstream.URL)
	proxy := httptest.NewServer(forwardAuthProxy(authSrv.URL+"/authz", u, []string{"X-Jwt-Sub", "X-Jwt-Scope", "X-Jwt-Permissions"}))
	t.Cleanup(proxy.Close)

	tests := []struct {
		name   string
		path   string
		host   string
		hdr    http.Header
		want   result
		upsURI string // "" = the upstream must not be reached
		upsSub string
	}{
		{name: "client's X-Original-Uri naming an anonymous path", path: "/admin/delete",
			hdr:  http.Header{"X-Original-Uri": {"/healthz"}, "X-Original-Method": {"GET"}},
			want: result{Status: 400, Reason: "bad_request", BodyError: "invalid_request", Detail: "x-original-uri header disagrees with x-forwarded-uri"}},
		{name: "client's X-Original-Uri alone", path: "/admin/delete",
			hdr:  http.Header{"X-Original-Uri": {"/healthz"}},
			want: result{Status: 400, Reason: "bad_request", BodyError: "invalid_request", Detail: "x-original-uri header disagrees with x-forwarded-uri"}},
		{name: "client's X-Original-Host naming an anonymous host", path: "/internal/x",
			hdr:  http.Header{"X-Original-Host": {"internal.example.com"}},
			want: result{Status: 400, Reason: "bad_request", BodyError: "invalid_request", Detail: "x-original-host header disagrees with x-forwarded-host"}},
		{name: "client's X-Forwarded-Uri is replaced by the proxy's", path: "/admin/delete",
			hdr:  http.Header{"X-Forwarded-Uri": {"/healthz"}},
			want: result{Status: 401, Reason: "missing_token", Challenge: realm + "\n" + dpopNoToken, BodyError: "unauthorized"}},
		{name: "the real anonymous host still works", path: "/internal/x", host: "internal.example.com",
			want:   result{Status: 200, Reason: "upstream"},
			upsURI: "/internal/x"},
		{name: "an agreeing X-Original-Uri is ignored", path: "/healthz?probe=1",
			hdr:    http.Header{"X-Original-Uri": {"/healthz?probe=1"}, "X-Jwt-Sub": {"admin@spoofed"}},
			want:   result{Status: 200, Reason: "upstream"},
			upsURI: "/healthz?probe=1"},
		{name: "allowed: the claim header replaces the client's", path: "/json",
			hdr:    http.Header{"Authorization": {"Bearer " + f.good}, "X-Jwt-Sub": {"admin@spoofed"}},
			want:   result{Status: 200, Reason: "upstream"},
			upsURI: "/json", upsSub: "client-1@clients"},
		{name: "token lacks the scope", path: "/admin/delete", hdr: http.Header{"Authorization": {"Bearer " + f.good}},
			want: result{Status: 403, Reason: "insufficient_scope", BodyError: "insufficient_scope",
				Challenge: realm + `, error="insufficient_scope", scope="admin:write"`}},
	}
	for _, tt := range tests {
		mu.Lock()
		before := len(reached)
		mu.Unlock()
		host := tt.host
		if host == "" {
			host = "api.example.com"
		}
		got := send(t, proxy, "GET", tt.path, host, tt.hdr)
		if got.Status == 200 {
			got.Reason = "upstream" // the upstream's answer carries no reason
		}
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("%s (-want +got):\n%s", tt.name, diff)
		}
		mu.Lock()
		newly := reached[before:]
		mu.Unlock()
		switch {
		case tt.upsURI == "" && len(newly) > 0:
			t.Errorf("%s: the upstream was reached: %v", tt.name, newly[0].uri)
		case tt.upsURI != "" && len(newly) != 1:
			t.Errorf("%s: the upstream was reached %d times, want once", tt.name, len(newly))
		case tt.upsURI != "":
			if newly[0].uri != tt.upsURI {
				t.Errorf("%s: upstream saw %q, want %q", tt.name, newly[0].uri, tt.upsURI)
			}
			if got := newly[0].hdr.Values("X-Jwt-Sub"); (tt.upsSub == "" && len(got) > 0) || (tt.upsSub != "" && (len(got) != 1 || got[0] != tt.upsSub)) {
				t.Errorf("%s: upstream saw x-jwt-sub %q, want %q", tt.name, got, tt.upsSub)
			}
		}
	}
}

// TestUnknownFamilyFailsClosed: a family name the handler does not know
// denies every request; it never falls back to trusting none (which would
// decide on the subrequest's own path, "/" behind Traefik).
func TestUnknownFamilyFailsClosed(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	srv := httptest.NewServer(httpauthz.NewHandler(httpauthz.Options{Authorizer: f.current, Forwarded: "X-Forwarded"}))
	t.Cleanup(srv.Close)
	got := send(t, srv, "GET", "/authz/healthz", "api.example.com",
		http.Header{"X-Forwarded-Method": {"GET"}, "X-Forwarded-Uri": {"/healthz"}, "X-Forwarded-Host": {"api.example.com"}})
	want := result{Status: 500, Reason: "internal_error", BodyError: "server_error"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

// TestEveryMember: for each family and each of its four members, a
// repeat, a disagreeing member of the other family and (for the three
// required ones) an absence are refused, each naming the header; the same
// member sent only by the other family, agreeing, changes nothing.
func TestEveryMember(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	values := map[string][2]string{ // member → the proxy's value, another one
		"method": {"GET", "DELETE"},
		"uri":    {"/healthz", "/admin/delete"},
		"host":   {"api.example.com", "internal.example.com"},
		"proto":  {"https", "http"},
	}
	members := []string{"method", "uri", "host", "proto"}
	anonymous := result{Status: 200, Reason: "anonymous", Remove: "x-jwt-sub,x-jwt-scope,x-jwt-permissions"}
	bad := func(detail string) result {
		return result{Status: 400, Reason: "bad_request", BodyError: "invalid_request", Detail: detail}
	}
	for _, fam := range []httpauthz.Forwarded{httpauthz.ForwardedXForwarded, httpauthz.ForwardedXOriginal} {
		other := "x-original"
		if fam == httpauthz.ForwardedXOriginal {
			other = "x-forwarded"
		}
		srv := httptest.NewServer(httpauthz.NewHandler(httpauthz.Options{Authorizer: f.current, Forwarded: fam}))
		t.Cleanup(srv.Close)
		full := func() http.Header {
			h := http.Header{}
			for _, m := range members {
				h.Set(string(fam)+"-"+m, values[m][0])
			}
			return h
		}
		for _, m := range members {
			name := string(fam) + "-" + m
			cases := map[string]struct {
				edit func(http.Header)
				want result
			}{
				"repeated": {func(h http.Header) { h.Add(name, values[m][0]) }, bad("repeated " + name + " header")},
				"other family disagrees": {func(h http.Header) { h.Set(other+"-"+m, values[m][1]) },
					bad(other + "-" + m + " header disagrees with " + name)},
				"other family agrees": {func(h http.Header) { h.Set(other+"-"+m, values[m][0]) }, anonymous},
			}
			if m != "proto" {
				cases["missing"] = struct {
					edit func(http.Header)
					want result
				}{func(h http.Header) { h.Del(name) }, bad("missing " + name + " header")}
			}
			for what, c := range cases {
				h := full()
				c.edit(h)
				got := send(t, srv, "GET", "/authz", "api.example.com", h)
				if diff := cmp.Diff(c.want, got); diff != "" {
					t.Errorf("%s %s (-want +got):\n%s", name, what, diff)
				}
			}
		}
		if got := send(t, srv, "GET", "/authz", "api.example.com", full()); got != anonymous {
			t.Errorf("%s: the full family alone: %+v, want %+v", fam, got, anonymous)
		}
	}
}

package envoy_test

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/protobuf/proto"

	"github.com/jwtauthz/jwt-authz/authz"
	"github.com/jwtauthz/jwt-authz/internal/stacktest"
	"github.com/jwtauthz/jwt-authz/jwks/jwkstest"
)

// Stored answers and sender-constrained tokens: only the token's
// verification is reused; the DPoP proof and the client certificate are
// checked on every request, before a stored answer may be sent.

// storedFor reports whether the authorizer in force holds an encoded
// answer for r's token and rule: a decision on r (which must be allowed)
// carries it.
func storedFor(t *testing.T, w *dpopWorld, r authz.Request) bool {
	t.Helper()
	d := w.Current.Load().Check(context.Background(), &r)
	if !d.Allow {
		t.Fatalf("direct check of %s denied: %s (%s)", r.Path, d.Reason, d.Description)
	}
	return d.Answer.Load() != nil
}

// TestStoredAnswerNeedsFreshProof: a DPoP-bound token allowed twice over
// gRPC (the second time from the cache, which stores its encoded answer)
// is still refused with a replayed proof, without a proof, as Bearer, with
// another key's proof or a proof for another URL; a fresh proof then gets
// the stored bytes again. The same for a certificate-bound token and its
// certificate.
func TestStoredAnswerNeedsFreshProof(t *testing.T) {
	t.Parallel()
	w := newDPoPWorld(t)
	key, other := jwkstest.NewDPoPKey(t, "ES256"), jwkstest.NewDPoPKey(t, "ES256")
	bound := w.a.Sign(t, with(w.a, map[string]any{"cnf": map[string]any{"jkt": key.JKT}}))
	fresh := func() string { return key.SignClaims(t, w.proofClaims("GET", apiURL+"/items", bound)) }
	ok := want{allow: true, reason: "ok", http: 200}
	assertDPoP := func(resp *authv3.CheckResponse) {
		t.Helper()
		if metaOf(resp, "cnf_method") != "dpop" || metaOf(resp, "cnf_thumbprint") != key.JKT {
			t.Errorf("cnf_method %q cnf_thumbprint %q, want dpop %s", metaOf(resp, "cnf_method"), metaOf(resp, "cnf_thumbprint"), key.JKT)
		}
	}

	resp := w.Check(t, dpopReq("GET", "/items", bound, fresh()))
	assertDecision(t, resp, ok)
	assertDPoP(resp)
	second := fresh()
	first := checkRaw(t, w.Stack, dpopReq("GET", "/items", bound, second)) // a cache hit: its answer is stored
	var got authv3.CheckResponse
	if err := proto.Unmarshal(first, &got); err != nil {
		t.Fatal(err)
	}
	assertDecision(t, &got, ok)
	assertDPoP(&got)
	direct := authz.Request{Method: "GET", Path: "/items", Host: "api.example.com", Scheme: "http",
		Headers: map[string]string{":authority": "api.example.com", "authorization": "DPoP " + bound, "dpop": fresh()}}
	if !storedFor(t, w, direct) {
		t.Fatal("no answer stored for the token after its second allow")
	}

	for _, tc := range []struct {
		name string
		req  stacktest.Req
		want want
	}{
		{"replayed proof", dpopReq("GET", "/items", bound, second), badProof("the DPoP proof was already used")},
		{"proof of the direct check replayed", dpopReq("GET", "/items", bound, direct.Headers["dpop"]), badProof("the DPoP proof was already used")},
		{"no proof", dpopReq("GET", "/items", bound, ""), dpopInvalid("missing_proof", "the DPoP token came without a DPoP proof")},
		{"as Bearer", stacktest.Req{Path: "/items", Token: bound}, dpopInvalid("missing_proof", "the DPoP-bound token was sent without the DPoP scheme and proof")},
		{"another key's proof", dpopReq("GET", "/items", bound, other.SignClaims(t, w.proofClaims("GET", apiURL+"/items", bound))),
			dpopInvalid("sender_mismatch", "the DPoP proof's key is not the one the token is bound to")},
		{"proof for another URL", dpopReq("GET", "/items", bound, key.SignClaims(t, w.proofClaims("GET", apiURL+"/elsewhere", bound))),
			badProof("the DPoP proof is for another URL")},
		{"proof for another method", dpopReq("DELETE", "/items", bound, fresh()), badProof("the DPoP proof is for another method")},
	} {
		assertDecision(t, w.Check(t, tc.req), tc.want)
		if t.Failed() {
			t.Fatalf("%s: allowed or misworded with an answer stored", tc.name)
		}
	}
	if again := checkRaw(t, w.Stack, dpopReq("GET", "/items", bound, fresh())); !bytes.Equal(again, first) {
		t.Errorf("a fresh proof after the refusals: answer\n%x\nwant the stored\n%x", again, first)
	}

	// mTLS: the certificate is read from every request.
	cert, another := newTestCert(t), newTestCert(t)
	cbound := w.a.Sign(t, with(w.a, map[string]any{"cnf": map[string]any{"x5t#S256": cert.thumb()}}))
	withCert := stacktest.Req{Path: "/items", Token: cbound, Certificate: cert.urlPEM()}
	assertDecision(t, w.Check(t, withCert), ok)
	stored := checkRaw(t, w.Stack, withCert)
	if !storedFor(t, w, authz.Request{Method: "GET", Path: "/items", Host: "api.example.com", Scheme: "http", Certificate: cert.urlPEM(),
		Headers: map[string]string{":authority": "api.example.com", "authorization": "Bearer " + cbound}}) {
		t.Fatal("no answer stored for the certificate-bound token after its second allow")
	}
	el := `By=spiffe://cluster.local/ns/api/sa/api;Hash=` + cert.hash()
	for _, tc := range []struct {
		name string
		req  stacktest.Req
		want want
	}{
		{"no certificate", stacktest.Req{Path: "/items", Token: cbound}, bearerInvalid("missing_proof", "the certificate-bound token came without a client certificate")},
		{"another certificate", stacktest.Req{Path: "/items", Token: cbound, Certificate: another.urlPEM()},
			bearerInvalid("sender_mismatch", "the client certificate is not the one the token is bound to")},
		{"the certificate in an untrusted XFCC", stacktest.Req{Path: "/items", Token: cbound, Headers: map[string]string{"x-forwarded-client-cert": el}},
			bearerInvalid("missing_proof", "the certificate-bound token came without a client certificate")},
	} {
		assertDecision(t, w.Check(t, tc.req), tc.want)
		if t.Failed() {
			t.Fatalf("%s: allowed or misworded with an answer stored", tc.name)
		}
	}
	if again := checkRaw(t, w.Stack, withCert); !bytes.Equal(again, stored) {
		t.Errorf("the certificate after the refusals: answer\n%x\nwant the stored\n%x", again, stored)
	}
}

// TestSenderChecksThroughCodecAndCache sends one generated sequence of
// requests with sender-constrained and plain tokens (DPoP or Bearer;
// fresh, replayed, foreign, misdirected or no proofs; the bound, another
// or no certificate from Envoy or XFCC; forwarded headers or not) to three
// stacks: codec and token cache (stored answers), codec without a cache,
// full decode with a cache. Every answer must be the same message: the
// codec keeps what the sender checks read, and a stored answer never
// stands in for a check.
func TestSenderChecksThroughCodecAndCache(t *testing.T) {
	t.Parallel()
	w := newDPoPWorld(t)
	yaml := fmt.Sprintf(dpopYAML, w.a.IssuerURL(), w.a.JWKSURL(), w.strict.IssuerURL(), w.strict.JWKSURL(),
		w.mesh.IssuerURL(), w.mesh.JWKSURL(), w.plain.IssuerURL(), w.plain.JWKSURL())
	uncached := stacktest.Start(t, yaml+"token_cache: {max_entries: 0}\n", stacktest.Options{Now: w.now})
	full := stacktest.Start(t, yaml, stacktest.Options{Now: w.now, FullDecode: true})

	key, other := jwkstest.NewDPoPKey(t, "ES256"), jwkstest.NewDPoPKey(t, "ES256")
	cert, another := newTestCert(t), newTestCert(t)
	jkt := map[string]any{"jkt": key.JKT}
	x5t := map[string]any{"x5t#S256": cert.thumb()}
	both := map[string]any{"jkt": key.JKT, "x5t#S256": cert.thumb()}
	toks := []string{
		w.a.Sign(t, with(w.a, map[string]any{"cnf": jkt})),
		w.a.Sign(t, with(w.a, map[string]any{"cnf": x5t})),
		w.a.Sign(t, with(w.a, map[string]any{"cnf": both})),
		w.a.Sign(t, with(w.a, nil)),
		w.strict.Sign(t, with(w.strict, map[string]any{"cnf": jkt})),
		w.mesh.Sign(t, with(w.mesh, map[string]any{"cnf": x5t})),
		w.plain.Sign(t, with(w.plain, map[string]any{"cnf": jkt})),
	}
	const seed = 20261202
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 15))
	pick := func(xs ...string) string { return xs[rng.IntN(len(xs))] }
	var used []string // proofs already sent
	reasons := map[string]int{}
	for range 400 {
		tok := toks[rng.IntN(len(toks))]
		method, path := pick("GET", "GET", "POST"), pick("/items", "/bound")
		h := map[string]string{}
		if rng.IntN(3) > 0 {
			h["authorization"] = "DPoP " + tok
		} else {
			h["authorization"] = "Bearer " + tok
		}
		forwarded := rng.IntN(3) == 0
		if forwarded {
			h["x-forwarded-proto"], h["x-forwarded-host"] = "https", "api.example.com"
		}
		url := apiURL + path
		if forwarded && rng.IntN(4) > 0 {
			url = "https://api.example.com" + path
		}
		switch n := rng.IntN(10); {
		case n < 5:
			p := key.SignClaims(t, w.proofClaims(method, url, tok))
			used = append(used, p)
			h["dpop"] = p
		case n == 5 && len(used) > 0:
			h["dpop"] = used[rng.IntN(len(used))]
		case n == 6:
			h["dpop"] = other.SignClaims(t, w.proofClaims(method, url, tok))
		case n == 7:
			h["dpop"] = key.SignClaims(t, w.proofClaims(method, apiURL+"/elsewhere", tok))
		}
		r := stacktest.Req{Method: method, Path: path, Headers: h, Scheme: pick("http", "http", "https")}
		switch rng.IntN(4) {
		case 0:
			r.Certificate = cert.urlPEM()
		case 1:
			r.Certificate = another.urlPEM()
		case 2:
			h["x-forwarded-client-cert"] = "By=spiffe://cluster.local/ns/api/sa/api;Hash=" + pick(cert.hash(), another.hash())
		}
		var got, noCache, decoded authv3.CheckResponse
		for _, c := range []struct {
			s   *stacktest.Stack
			out *authv3.CheckResponse
		}{{w.Stack, &got}, {uncached, &noCache}, {full, &decoded}} {
			if err := proto.Unmarshal(checkRaw(t, c.s, r), c.out); err != nil {
				t.Fatal(err)
			}
		}
		if !proto.Equal(&got, &noCache) || !proto.Equal(&got, &decoded) {
			t.Fatalf("%s %s %q: codec and cache\n%v\ncodec, no cache\n%v\nfull decode\n%v", method, path, strings.Join(slices.Sorted(maps.Keys(h)), " "), &got, &noCache, &decoded)
		}
		reasons[metaOf(&got, "reason")+" "+metaOf(&got, "cnf_method")]++
	}
	t.Logf("answers: %v", reasons)
	for _, r := range []string{"ok dpop", "ok mtls", "ok ", "missing_proof ", "invalid_proof ", "sender_mismatch ", "unbound_token "} {
		if reasons[r] < 3 {
			t.Errorf("%d answers %q of 400: the sequence does not exercise it", reasons[r], r)
		}
	}
}

package authz_test

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"log/slog"
	"math/big"
	mrand "math/rand/v2"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jwtauthz/jwt-authz/authz"
	"github.com/jwtauthz/jwt-authz/jwks/jwkstest"
	"github.com/jwtauthz/jwt-authz/replay"
)

// propHolder is a client: a DPoP key and a TLS client certificate.
type propHolder struct {
	*jwkstest.DPoPKey
	certPE string // URL-encoded PEM, as Envoy sends it
	x5t    string
}

func newPropHolder(t *testing.T) propHolder {
	t.Helper()
	k := jwkstest.NewDPoPKey(t, "ES256")
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "c"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, k.Private.Public(), k.Private)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(der)
	return propHolder{DPoPKey: k,
		certPE: url.PathEscape(string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))),
		x5t:    base64.RawURLEncoding.EncodeToString(sum[:])}
}

func (h propHolder) proof(t *testing.T, method, htu, tok string) string {
	t.Helper()
	return h.Proof(t, method, htu, tok, time.Now())
}

// TestSenderConstrainedInvariants: over random modes, rules, contexts,
// tokens (unbound, DPoP-bound, certificate-bound, to the client's key or
// another's) and presentations (Bearer or DPoP, good, foreign or no proof,
// the right, another or no certificate):
//   - a bound token is allowed only with proof of possession of its own key
//     or certificate (unless that binding's mode is disabled);
//   - under mode required, or sender_constrained on the rule or context,
//     an allowed token is bound and proven;
//   - context_extensions never widen: sender_constrained adds a
//     requirement, never removes one.
func TestSenderConstrainedInvariants(t *testing.T) {
	t.Parallel()
	seed := uint64(20261214)
	t.Logf("seed %d", seed)
	r := mrand.New(mrand.NewPCG(seed, seed^0x14))
	k := keys(t)
	client, thief := newPropHolder(t), newPropHolder(t)
	modes := []authz.SenderMode{authz.SenderDisabled, authz.SenderAllowed, authz.SenderRequired}
	sign := func(cnf map[string]any) string {
		c := benchClaims(time.Now(), "svc@clients")
		if cnf != nil {
			c["cnf"] = cnf
		}
		return jwkstest.SignToken(t, "ES256", k.ec, map[string]any{"kid": "ES256"}, c)
	}
	type tokenKind struct {
		tok      string
		jkt, x5t bool // bound to client's key / certificate
	}
	tokens := []tokenKind{
		{tok: sign(nil)},
		{tok: sign(map[string]any{"jkt": client.JKT}), jkt: true},
		{tok: sign(map[string]any{"x5t#S256": client.x5t}), x5t: true},
		{tok: sign(map[string]any{"jkt": client.JKT, "x5t#S256": client.x5t}), jkt: true, x5t: true},
	}
	const htu = "https://api.example.com/v1/orders"
	n, allowed := 0, 0
	for range 40 {
		o := benchOptions(t, 64*r.IntN(2), nil)
		o.Logger = nil
		store, err := replay.NewMemory(replay.MemoryOptions{})
		if err != nil {
			t.Fatal(err)
		}
		p := &o.Providers[0]
		p.DPoP = authz.DPoPOptions{Mode: pick(r, modes), Replay: store}
		p.MTLS = authz.MTLSOptions{Mode: pick(r, modes)}
		ruleSC := r.IntN(3) == 0
		o.Rules = []authz.Rule{{Name: "api", Match: authz.Match{PathPrefix: "/"}, Require: authz.Requirement{SenderConstrained: ruleSC}}}
		a, err := authz.New(o)
		if err != nil {
			t.Fatal(err)
		}
		for range 40 {
			tk := pick(r, tokens)
			dpopScheme := r.IntN(2) == 0
			proofBy := pick(r, []string{"client", "thief", "none"})
			certBy := pick(r, []string{"client", "thief", "none"})
			ctxVal, hasCtx := pick(r, []string{"true", "TRUE", "false", "yes", ""}), r.IntN(2) == 0
			build := func(withCtx bool) *authz.Request {
				h := map[string]string{}
				if dpopScheme {
					h["authorization"] = "DPoP " + tk.tok
				} else {
					h["authorization"] = "Bearer " + tk.tok
				}
				switch proofBy {
				case "client":
					h["dpop"] = client.proof(t, "GET", htu, tk.tok)
				case "thief":
					h["dpop"] = thief.proof(t, "GET", htu, tk.tok)
				}
				req := &authz.Request{Method: "GET", Path: "/v1/orders?x=1", Host: "api.example.com", Scheme: "https", Headers: h}
				switch certBy {
				case "client":
					req.Certificate = client.certPE
				case "thief":
					req.Certificate = thief.certPE
				}
				if withCtx && hasCtx {
					req.Context = map[string]string{"sender_constrained": ctxVal}
				}
				return req
			}
			// Each Check gets its own proof: a jti is single-use.
			plain := a.Check(context.Background(), build(false))
			withCtx := a.Check(context.Background(), build(true))
			n++
			what := fmt.Sprintf("dpop %v mtls %v rule %v ctx %q/%v token jkt=%v x5t=%v scheme dpop=%v proof %s cert %s",
				p.DPoP.Mode, p.MTLS.Mode, ruleSC, ctxVal, hasCtx, tk.jkt, tk.x5t, dpopScheme, proofBy, certBy)
			if withCtx.Allow && !plain.Allow {
				t.Fatalf("context widened: %s: %s -> %s", what, plain.Reason, withCtx.Reason)
			}
			for i, d := range []authz.Decision{plain, withCtx} {
				if !d.Allow {
					continue
				}
				allowed++
				dpopProven := dpopScheme && proofBy == "client" && tk.jkt && p.DPoP.Mode != authz.SenderDisabled
				mtlsProven := certBy == "client" && tk.x5t && p.MTLS.Mode != authz.SenderDisabled
				if tk.jkt && p.DPoP.Mode != authz.SenderDisabled && !dpopProven {
					t.Fatalf("DPoP-bound token allowed without its proof: %s", what)
				}
				if tk.x5t && p.MTLS.Mode != authz.SenderDisabled && !mtlsProven {
					t.Fatalf("certificate-bound token allowed without its certificate: %s", what)
				}
				if p.DPoP.Mode == authz.SenderRequired && !dpopProven || p.MTLS.Mode == authz.SenderRequired && !mtlsProven {
					t.Fatalf("required binding not proven, yet allowed: %s", what)
				}
				ctxSC := i == 1 && hasCtx && strings.EqualFold(ctxVal, "true")
				if (ruleSC || ctxSC) && !dpopProven && !mtlsProven {
					t.Fatalf("sender_constrained route allowed an unproven token: %s", what)
				}
				method := map[bool]string{true: "dpop", false: "mtls"}[dpopProven]
				if d.Metadata.CnfMethod != "" && d.Metadata.CnfMethod != method {
					t.Fatalf("cnf_method %q, want %q: %s", d.Metadata.CnfMethod, method, what)
				}
			}
		}
	}
	t.Logf("%d request pairs, %d allowed decisions", n, allowed)
	if allowed == 0 {
		t.Fatal("nothing was allowed: the draw does not reach the allow paths")
	}
}

// TestHeadersRead: the Authorizer names every header its checks read, so
// an adapter that copies only those (a decoder that skips the rest) gives
// the sender-constrained checks what they need.
func TestHeadersRead(t *testing.T) {
	t.Parallel()
	store, err := replay.NewMemory(replay.MemoryOptions{})
	if err != nil {
		t.Fatal(err)
	}
	o := benchOptions(t, 0, nil)
	base, err := authz.New(o)
	if err != nil {
		t.Fatal(err)
	}
	o.Providers[0].DPoP = authz.DPoPOptions{Mode: authz.SenderAllowed, Replay: store, TrustForwarded: true}
	o.Providers[0].MTLS = authz.MTLSOptions{Mode: authz.SenderAllowed, Source: authz.CertFromXFCC}
	o.Providers[0].Sources = []authz.TokenSource{{Header: "authorization", Prefix: "Bearer "}, {Cookie: "at"}}
	full, err := authz.New(o)
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range []string{"authorization", "cookie", "dpop", "x-forwarded-proto", "x-forwarded-host", "x-forwarded-client-cert", ":authority", "origin", "access-control-request-method"} {
		if !slices.Contains(full.HeadersRead(), h) {
			t.Errorf("HeadersRead() = %q lacks %q", full.HeadersRead(), h)
		}
	}
	for _, h := range []string{"dpop", "x-forwarded-proto", "x-forwarded-host", "x-forwarded-client-cert", "cookie"} {
		if slices.Contains(base.HeadersRead(), h) {
			t.Errorf("without DPoP, mTLS or cookies, HeadersRead() = %q names %q", base.HeadersRead(), h)
		}
	}
}

// TestProofsNeverLogged: the decision log of DPoP requests, allowed and
// denied, holds no part of the proof or the token.
func TestProofsNeverLogged(t *testing.T) {
	t.Parallel()
	var buf strings.Builder
	store, err := replay.NewMemory(replay.MemoryOptions{})
	if err != nil {
		t.Fatal(err)
	}
	o := benchOptions(t, 64, nil)
	o.Logger = slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	o.Providers[0].DPoP = authz.DPoPOptions{Mode: authz.SenderAllowed, Replay: store}
	a, err := authz.New(o)
	if err != nil {
		t.Fatal(err)
	}
	client := newPropHolder(t)
	c := benchClaims(time.Now(), "svc@clients")
	c["cnf"] = map[string]any{"jkt": client.JKT}
	tok := jwkstest.SignToken(t, "ES256", keys(t).ec, map[string]any{"kid": "ES256"}, c)
	proof := client.proof(t, "GET", "https://api.example.com/x", tok)
	for range 2 { // allowed, then a replay
		a.Check(context.Background(), &authz.Request{Method: "GET", Path: "/x", Host: "api.example.com", Scheme: "https",
			Headers: map[string]string{"authorization": "DPoP " + tok, "dpop": proof}})
	}
	log := buf.String()
	if !strings.Contains(log, "invalid_proof") {
		t.Fatalf("no decision logged: %s", log)
	}
	for _, part := range append(strings.Split(proof, "."), strings.Split(tok, ".")...) {
		if strings.Contains(log, part[:16]) {
			t.Errorf("the log holds part of a proof or token: %s", log)
		}
	}
}

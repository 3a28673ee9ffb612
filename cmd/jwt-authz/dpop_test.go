package main

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/go-jose/go-jose/v4"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/jwtauthz/jwt-authz/internal/devissuer"
	"github.com/jwtauthz/jwt-authz/jwks/jwkstest"
)

// recorder is an ext_authz Authorization server that keeps every
// CheckRequest it gets and allows it: the far side of `check` in tests that
// look at what check sends.
type recorder struct {
	authv3.UnimplementedAuthorizationServer
	mu   sync.Mutex
	reqs []*authv3.CheckRequest
}

func (r *recorder) Check(_ context.Context, req *authv3.CheckRequest) (*authv3.CheckResponse, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.reqs = append(r.reqs, req)
	return &authv3.CheckResponse{Status: status.New(codes.OK, "").Proto(),
		HttpResponse: &authv3.CheckResponse_OkResponse{OkResponse: &authv3.OkHttpResponse{}}}, nil
}

// last returns the last CheckRequest received.
func (r *recorder) last(t *testing.T) *authv3.CheckRequest {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.reqs) == 0 {
		t.Fatal("the recorder got no CheckRequest")
	}
	return r.reqs[len(r.reqs)-1]
}

// startRecorder serves a recorder over real gRPC on 127.0.0.1:0.
func startRecorder(t *testing.T) (*recorder, string) {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	rec := &recorder{}
	gs := grpc.NewServer()
	authv3.RegisterAuthorizationServer(gs, rec)
	go gs.Serve(lis)
	t.Cleanup(gs.Stop)
	return rec, lis.Addr().String()
}

// keyFile is one way to write a DPoP private key as PEM.
type keyFile struct {
	name string
	alg  string // the alg flag, "" for the key's default
	want string // the alg the proof must carry
	pem  func(t *testing.T) ([]byte, crypto.Signer)
}

var testRSAKey = sync.OnceValue(func() *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	return k
})

func pemOf(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}

func pkcs8(t *testing.T, k crypto.Signer) []byte {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return pemOf("PRIVATE KEY", der)
}

func newEC(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// keyFiles covers every key type, PEM form and alg check accepts.
func keyFiles() []keyFile {
	ed := func(t *testing.T) ([]byte, crypto.Signer) {
		_, k, _ := ed25519.GenerateKey(rand.Reader)
		return pkcs8(t, k), k
	}
	return []keyFile{
		{name: "EC PKCS#8", want: "ES256", pem: func(t *testing.T) ([]byte, crypto.Signer) { k := newEC(t); return pkcs8(t, k), k }},
		{name: "EC SEC1 with parameters", want: "ES256", pem: func(t *testing.T) ([]byte, crypto.Signer) {
			k := newEC(t)
			der, _ := x509.MarshalECPrivateKey(k)
			// openssl ecparam -genkey writes the curve first.
			return append(pemOf("EC PARAMETERS", []byte{0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07}), pemOf("EC PRIVATE KEY", der)...), k
		}},
		{name: "RSA PKCS#8", want: "PS256", pem: func(t *testing.T) ([]byte, crypto.Signer) { k := testRSAKey(); return pkcs8(t, k), k }},
		{name: "RSA PKCS#1 RS256", alg: "RS256", want: "RS256", pem: func(t *testing.T) ([]byte, crypto.Signer) {
			k := testRSAKey()
			return pemOf("RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(k)), k
		}},
		{name: "Ed25519", want: "EdDSA", pem: ed},
		{name: "Ed25519 fully specified", alg: "Ed25519", want: "Ed25519", pem: ed},
	}
}

// wantThumbprint is RFC 7638 computed here with go-jose, independently of
// check's own code.
func wantThumbprint(t *testing.T, pub crypto.PublicKey) string {
	t.Helper()
	tp, err := (&jose.JSONWebKey{Key: pub}).Thumbprint(crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	return base64.RawURLEncoding.EncodeToString(tp)
}

// verifyProof checks a proof the way a resource server would, with go-jose
// (and crypto/ed25519 for the alg name go-jose does not know), and returns
// its claims.
func verifyProof(t *testing.T, proof, wantAlg string, pub crypto.PublicKey) map[string]any {
	t.Helper()
	parts := strings.Split(proof, ".")
	if len(parts) != 3 {
		t.Fatalf("proof has %d parts", len(parts))
	}
	var hdr map[string]json.RawMessage
	raw, err := base64.RawURLEncoding.DecodeString(parts[0])
	if err != nil || json.Unmarshal(raw, &hdr) != nil {
		t.Fatalf("proof header %q: %v", raw, err)
	}
	if len(hdr) != 3 || string(hdr["typ"]) != `"dpop+jwt"` || string(hdr["alg"]) != `"`+wantAlg+`"` {
		t.Errorf("proof header %s, want exactly typ dpop+jwt, alg %s and jwk", raw, wantAlg)
	}
	var jwk jose.JSONWebKey
	if err := jwk.UnmarshalJSON(hdr["jwk"]); err != nil {
		t.Fatalf("proof jwk %s: %v", hdr["jwk"], err)
	}
	if !jwk.IsPublic() || bytes.Contains(hdr["jwk"], []byte(`"d"`)) || bytes.Contains(hdr["jwk"], []byte(`"p"`)) {
		t.Errorf("proof jwk %s has private members", hdr["jwk"])
	}
	if got, want := wantThumbprint(t, jwk.Key), wantThumbprint(t, pub); got != want {
		t.Errorf("proof jwk thumbprint %s, want the key's %s", got, want)
	}
	var payload []byte
	if wantAlg == "Ed25519" {
		sig, _ := base64.RawURLEncoding.DecodeString(parts[2])
		if !ed25519.Verify(jwk.Key.(ed25519.PublicKey), []byte(parts[0]+"."+parts[1]), sig) {
			t.Fatal("Ed25519 proof signature does not verify")
		}
		payload, _ = base64.RawURLEncoding.DecodeString(parts[1])
	} else {
		jws, err := jose.ParseSignedCompact(proof, []jose.SignatureAlgorithm{jose.SignatureAlgorithm(wantAlg)})
		if err != nil {
			t.Fatalf("go-jose parse: %v", err)
		}
		if payload, err = jws.Verify(jwk.Key); err != nil {
			t.Fatalf("go-jose verify with the proof's own jwk: %v", err)
		}
		if _, err := jws.Verify(pub); err != nil {
			t.Fatalf("go-jose verify with the key's public half: %v", err)
		}
	}
	var claims map[string]any
	if err := json.Unmarshal(payload, &claims); err != nil {
		t.Fatal(err)
	}
	return claims
}

func ath(token string) string {
	sum := sha256.Sum256([]byte(token))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// TestCheckDPoPProof drives check with -dpop-key against a recording
// Authorization server, over generated requests and every key form: the
// CheckRequest carries 'authorization: DPoP T' and one dpop header whose
// proof verifies independently with the right typ, alg, public jwk, htm,
// htu (scheme://host + path, query cut), ath, iat and a fresh jti.
func TestCheckDPoPProof(t *testing.T) {
	t.Parallel()
	rec, addr := startRecorder(t)
	const seed = 20261202
	t.Logf("seed %d", seed)
	rnd := mrand.New(mrand.NewPCG(seed, 14))
	methods := []string{"GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"}
	hosts := []string{"localhost", "127.0.0.1:10000", "api.example.com", "API.Example.com:8443", "[::1]:9000"}
	seen := map[string]bool{}
	for _, kf := range keyFiles() {
		t.Run(kf.name, func(t *testing.T) {
			pemBytes, signer := kf.pem(t)
			file := filepath.Join(t.TempDir(), "dpop.key")
			os.WriteFile(file, pemBytes, 0o600)
			for i := range 8 {
				method := methods[rnd.IntN(len(methods))]
				host := hosts[rnd.IntN(len(hosts))]
				scheme := []string{"http", "https"}[rnd.IntN(2)]
				path := fmt.Sprintf("/v%d/orders/%d", rnd.IntN(3), rnd.IntN(1000))
				wantPath := path
				switch rnd.IntN(3) {
				case 1:
					path += "?page=" + fmt.Sprint(rnd.IntN(9)) + "&q=a%20b"
				case 2:
					path += "?"
				}
				tok := fmt.Sprintf("h.p%d.s", rnd.Uint64())
				args := []string{"-addr", addr, "-token", tok, "-dpop-key", file, "-method", method, "-host", host, "-path", path}
				if scheme == "http" || i%2 == 0 {
					args = append(args, "-scheme", scheme)
				}
				if kf.alg != "" {
					args = append(args, "-dpop-alg", kf.alg)
				}
				before := time.Now().Unix()
				code, out, errOut := runCheck(t, "", args...)
				after := time.Now().Unix()
				if code != 0 || !strings.Contains(out, "decision: allow") {
					t.Fatalf("check %q: exit %d\n%s%s", args, code, out, errOut)
				}
				req := rec.last(t)
				hr := req.GetAttributes().GetRequest().GetHttp()
				if got := hr.GetHeaders()["authorization"]; got != "DPoP "+tok {
					t.Errorf("authorization %q, want DPoP and the token", got)
				}
				if hr.GetScheme() != scheme || hr.GetHeaders()[":scheme"] != scheme || hr.GetMethod() != method || hr.GetPath() != path || hr.GetHost() != host {
					t.Errorf("request attributes scheme %q method %q path %q host %q, want %q %q %q %q",
						hr.GetScheme(), hr.GetMethod(), hr.GetPath(), hr.GetHost(), scheme, method, path, host)
				}
				proof := hr.GetHeaders()["dpop"]
				claims := verifyProof(t, proof, kf.want, signer.Public())
				jti, _ := claims["jti"].(string)
				if b, err := base64.RawURLEncoding.DecodeString(jti); err != nil || len(b) < 16 || seen[jti] {
					t.Errorf("jti %q: want 128 random bits, base64url, never repeated", jti)
				}
				seen[jti] = true
				iat, _ := claims["iat"].(float64)
				if int64(iat) < before || int64(iat) > after {
					t.Errorf("iat %v outside [%d, %d]", claims["iat"], before, after)
				}
				want := map[string]any{"htm": method, "htu": scheme + "://" + host + wantPath, "ath": ath(tok), "jti": jti, "iat": iat}
				if fmt.Sprint(claims) != fmt.Sprint(want) {
					t.Errorf("claims %v, want %v", claims, want)
				}
				if strings.Contains(out+errOut, tok) || strings.Contains(out+errOut, proof) {
					t.Error("check printed the token or the proof")
				}
			}
		})
	}
	// Without -dpop-key nothing changes: Bearer, no proof.
	tok := "h.p.s"
	if code, out, errOut := runCheck(t, "", "-addr", addr, "-token", tok); code != 0 {
		t.Fatalf("exit %d\n%s%s", code, out, errOut)
	}
	h := rec.last(t).GetAttributes().GetRequest().GetHttp().GetHeaders()
	if h["authorization"] != "Bearer "+tok || h["dpop"] != "" {
		t.Errorf("without -dpop-key: authorization %q, dpop %q; want Bearer and no proof", h["authorization"], h["dpop"])
	}
}

// TestCheckClientCertificate: -client-cert puts the certificate in
// attributes.source.certificate as Envoy does (URL-encoded PEM), and it
// decodes, whichever unescaping the reader uses, to the same DER; over
// certificates of every key type, whose base64 holds + / and =.
func TestCheckClientCertificate(t *testing.T) {
	t.Parallel()
	rec, addr := startRecorder(t)
	const seed = 20261202
	t.Logf("seed %d", seed)
	rnd := mrand.New(mrand.NewPCG(seed, 8705))
	signers := []crypto.Signer{newEC(t), testRSAKey()}
	_, edKey, _ := ed25519.GenerateKey(rand.Reader)
	signers = append(signers, edKey)
	chars := map[byte]bool{}
	for i := range 24 {
		k := signers[i%len(signers)]
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(rnd.Int64()), Subject: pkix.Name{CommonName: fmt.Sprintf("client %d + /= %x", i, rnd.Uint32())},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, k.Public(), k)
		if err != nil {
			t.Fatal(err)
		}
		dir := t.TempDir()
		file := filepath.Join(dir, "client.pem")
		content := pemOf("CERTIFICATE", der)
		if i%3 == 1 { // a key file first, as some tools write one file
			content = append(pkcs8(t, newEC(t)), content...)
		}
		os.WriteFile(file, content, 0o600)
		if code, out, errOut := runCheck(t, "", "-addr", addr, "-client-cert", file); code != 0 {
			t.Fatalf("exit %d\n%s%s", code, out, errOut)
		}
		got := rec.last(t).GetAttributes().GetSource().GetCertificate()
		if strings.ContainsAny(got, "\n +/=") {
			t.Fatalf("certificate attribute not URL-encoded: %q", got)
		}
		for _, c := range pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}) {
			chars[c] = true
		}
		for name, unescape := range map[string]func(string) (string, error){"query": url.QueryUnescape, "path": url.PathUnescape} {
			s, err := unescape(got)
			if err != nil {
				t.Fatalf("%s unescape: %v", name, err)
			}
			block, rest := pem.Decode([]byte(s))
			if block == nil || block.Type != "CERTIFICATE" || !bytes.Equal(block.Bytes, der) || len(bytes.TrimSpace(rest)) != 0 {
				t.Fatalf("%s-unescaped attribute is not the certificate's PEM alone: %q", name, s)
			}
		}
	}
	for _, c := range []byte("+/=") {
		if !chars[c] {
			t.Errorf("no generated certificate had %q in its PEM: the encoding of it went untested", c)
		}
	}
}

// TestCheckDPoPFlagErrors: keys check cannot use are named, exit 2, and
// nothing is sent.
func TestCheckDPoPFlagErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write := func(name string, data []byte) string {
		f := filepath.Join(dir, name)
		os.WriteFile(f, data, 0o600)
		return f
	}
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	rsa1024, _ := rsa.GenerateKey(rand.Reader, 1024)
	ec := write("ec.key", pkcs8(t, newEC(t)))
	cert := write("cert.pem", pemOf("CERTIFICATE", []byte("not DER")))
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"P-384", []string{"-dpop-key", write("p384.key", pkcs8(t, p384))}, "-dpop-key: EC key on P-384: DPoP here takes P-256 (ES256)"},
		{"small RSA", []string{"-dpop-key", write("rsa1024.key", pkcs8(t, rsa1024))}, "-dpop-key: RSA key of 1024 bits: want 2048 or more"},
		{"encrypted", []string{"-dpop-key", write("enc.key", pemOf("ENCRYPTED PRIVATE KEY", []byte{1}))}, "-dpop-key: the key is encrypted"},
		{"a certificate, no key", []string{"-dpop-key", cert}, "-dpop-key: no PEM private key"},
		{"alg of another key type", []string{"-dpop-key", ec, "-dpop-alg", "PS256"}, "-dpop-key: alg PS256 does not suit this key (want one of ES256)"},
		{"HMAC alg", []string{"-dpop-key", ec, "-dpop-alg", "HS256"}, "does not suit this key"},
		{"alg without key", []string{"-dpop-alg", "ES256"}, "-dpop-alg needs -dpop-key"},
		{"missing key file", []string{"-dpop-key", ec + "-nope"}, "-dpop-key: open "},
		{"no host", []string{"-dpop-key", ec, "-host", ""}, `-scheme, -host, -path: htu: "https:///" is not an absolute URL`},
		{"bad certificate", []string{"-client-cert", cert}, "-client-cert: x509: malformed certificate"},
		{"key as certificate", []string{"-client-cert", ec}, "-client-cert: no PEM CERTIFICATE"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := runCheck(t, "", append([]string{"-addr", "127.0.0.1:1", "-token", "a.b.c"}, tc.args...)...)
			if code != 2 || out != "" || !strings.HasPrefix(errOut, "jwt-authz check: ") || !strings.Contains(errOut, tc.want) || strings.Contains(errOut, "hint:") {
				t.Errorf("exit %d, stdout %q, stderr %q; want 2 and %q", code, out, errOut, tc.want)
			}
		})
	}
}

// runCmd runs a jwt-authz command with stdin.
func runCmd(t *testing.T, stdin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	switch args[0] {
	case "dpop-proof":
		code = dpopProof(args[1:], strings.NewReader(stdin), &out, &errb)
	default:
		code = run(t.Context(), args, &out, &errb)
	}
	return code, out.String(), errb.String()
}

// TestKeygen: each type makes a PKCS#8 key, mode 0600, that dpop-proof
// signs with and whose thumbprint it prints; an existing file is never
// overwritten.
func TestKeygen(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for typ, alg := range map[string]string{"ec": "ES256", "rsa": "PS256", "ed25519": "EdDSA"} {
		file := filepath.Join(dir, typ+".key")
		if code, out, errOut := runCmd(t, "", "keygen", "-type", typ, "-out", file); code != 0 || out+errOut != "" {
			t.Fatalf("keygen -type %s: exit %d %q %q", typ, code, out, errOut)
		}
		if fi, err := os.Stat(file); err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("%s: %v, mode %v; want 0600", file, err, fi.Mode())
		}
		data, _ := os.ReadFile(file)
		block, _ := pem.Decode(data)
		key, err := x509.ParsePKCS8PrivateKey(block.Bytes)
		if err != nil {
			t.Fatalf("%s: %v", typ, err)
		}
		code, out, errOut := runCmd(t, "", "dpop-proof", "-key", file, "-url", "https://as.example/oauth/token?x=1#f")
		if code != 0 {
			t.Fatalf("dpop-proof: exit %d %s", code, errOut)
		}
		claims := verifyProof(t, strings.TrimSpace(out), alg, key.(crypto.Signer).Public())
		if claims["htm"] != "POST" || claims["htu"] != "https://as.example/oauth/token" || claims["ath"] != nil {
			t.Errorf("%s proof claims %v: want htm POST, htu without query and fragment, no ath", typ, claims)
		}
		if _, tp, _ := runCmd(t, "", "dpop-proof", "-key", file, "-thumbprint"); tp != wantThumbprint(t, key.(crypto.Signer).Public())+"\n" {
			t.Errorf("%s: -thumbprint printed %q, want go-jose's RFC 7638 thumbprint", typ, tp)
		}
		if code, _, errOut := runCmd(t, "", "keygen", "-type", typ, "-out", file); code != 2 || !strings.Contains(errOut, "file exists") {
			t.Errorf("keygen over an existing file: exit %d, %q", code, errOut)
		}
	}
	if code, _, errOut := runCmd(t, "", "keygen", "-type", "dsa", "-out", filepath.Join(dir, "x")); code != 2 || errOut != "jwt-authz keygen: -type \"dsa\": want ec, rsa or ed25519\n" {
		t.Errorf("keygen -type dsa: exit %d, %q", code, errOut)
	}
}

// TestDPoPProofGetsBoundToken: a proof printed by dpop-proof, sent to a real
// dev-issuer's token endpoint, gets a DPoP-bound token whose cnf.jkt is what
// -thumbprint prints; the same proof a second time is a replay.
func TestDPoPProofGetsBoundToken(t *testing.T) {
	t.Parallel()
	var handler http.Handler
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { handler.ServeHTTP(w, r) }))
	t.Cleanup(srv.Close)
	iss, err := devissuer.New(devissuer.Options{Issuer: srv.URL + "/"})
	if err != nil {
		t.Fatal(err)
	}
	handler = iss
	key := filepath.Join(t.TempDir(), "dpop.key")
	if code, _, errOut := runCmd(t, "", "keygen", "-out", key); code != 0 {
		t.Fatal(errOut)
	}
	_, jkt, _ := runCmd(t, "", "dpop-proof", "-key", key, "-thumbprint")
	_, proof, errOut := runCmd(t, "", "dpop-proof", "-key", key, "-url", srv.URL+"/oauth/token")
	if errOut != "" {
		t.Fatal(errOut)
	}
	form := url.Values{"grant_type": {"client_credentials"}, "client_id": {"demo-m2m"}, "client_secret": {"demo-m2m-secret"}, "audience": {"urn:apigee:target:api"}}
	post := func() (int, map[string]any) {
		req, _ := http.NewRequest("POST", srv.URL+"/oauth/token", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("DPoP", strings.TrimSpace(proof))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var body map[string]any
		json.NewDecoder(resp.Body).Decode(&body)
		return resp.StatusCode, body
	}
	code, body := post()
	if code != 200 || body["token_type"] != "DPoP" {
		t.Fatalf("token request: %d %v, want 200 and token_type DPoP", code, body)
	}
	parts := strings.Split(body["access_token"].(string), ".")
	payload, _ := base64.RawURLEncoding.DecodeString(parts[1])
	var claims struct {
		Cnf struct {
			JKT string `json:"jkt"`
		} `json:"cnf"`
	}
	json.Unmarshal(payload, &claims)
	if claims.Cnf.JKT == "" || claims.Cnf.JKT != strings.TrimSpace(jkt) {
		t.Errorf("token cnf.jkt %q, want -thumbprint's %q", claims.Cnf.JKT, jkt)
	}
	if code, body := post(); code != 400 || body["error"] != "invalid_dpop_proof" {
		t.Errorf("the same proof again: %d %v, want 400 invalid_dpop_proof", code, body)
	}
}

// FuzzParseDPoPKey: whatever the key file holds, parsing never panics, and
// a key it accepts is one of the three kinds with a matching alg, whose
// proofs verify with their own jwk.
func FuzzParseDPoPKey(f *testing.F) {
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ecDER, _ := x509.MarshalECPrivateKey(ec)
	p8, _ := x509.MarshalPKCS8PrivateKey(ec)
	_, ed, _ := ed25519.GenerateKey(rand.Reader)
	edDER, _ := x509.MarshalPKCS8PrivateKey(ed)
	for _, seed := range [][]byte{
		pemOf("EC PRIVATE KEY", ecDER), pemOf("PRIVATE KEY", p8), pemOf("PRIVATE KEY", edDER),
		pemOf("RSA PRIVATE KEY", []byte{0x30, 0x03, 0x02, 0x01, 0x00}), pemOf("CERTIFICATE", []byte("x")),
		[]byte("-----BEGIN PRIVATE KEY-----\n\n-----END PRIVATE KEY-----\n"), nil,
	} {
		f.Add(seed, "", "https://h/p?q#f")
		f.Add(seed, "EdDSA", "http://[::1]:80/a%2Fb")
	}
	f.Fuzz(func(t *testing.T, data []byte, alg, rawURL string) {
		k, err := parseDPoPKey(data, alg)
		if err != nil {
			return
		}
		switch k.signer.(type) {
		case *ecdsa.PrivateKey, *rsa.PrivateKey, ed25519.PrivateKey:
		default:
			t.Fatalf("accepted a %T", k.signer)
		}
		proof, err := k.sign(proofRequest{method: "GET", url: rawURL, token: "t", now: time.Now()})
		if err != nil {
			return
		}
		claims := verifyProof(t, proof, k.alg, k.signer.Public())
		if htu, _ := claims["htu"].(string); strings.ContainsAny(htu, "?#") || !strings.HasPrefix(rawURL, htu) {
			t.Errorf("htu %q from URL %q: want the URL before its query and fragment", htu, rawURL)
		}
	})
}

// TestCheckProvesPossession drives check against a real jwt-authz serve
// whose provider accepts DPoP- and mTLS-bound tokens: a bound token is
// allowed with its own key or certificate (cnf_method and cnf_thumbprint
// printed), and refused, with the reason and challenge, without it or with
// another.
func TestCheckProvesPossession(t *testing.T) {
	t.Parallel()
	iss := jwkstest.New(t, jwkstest.Options{})
	cfg := filepath.Join(t.TempDir(), "c.yaml")
	writeConfig(t, cfg, fmt.Sprintf(`
providers:
- name: auth0
  issuer: %q
  audiences: ["urn:apigee:target:api"]
  jwks: {uri: %q}
  dpop: {mode: allowed}
  mtls: {mode: allowed}
rules:
- name: api
  match: {path_prefix: "/"}
  require: {scopes: ["read:target"]}
`, iss.IssuerURL(), iss.JWKSURL()))
	s := startServe(t, cfg)
	eventually(t, "ready", func() bool { c, _ := s.get(t, "/readyz"); return c == 200 })

	dir := t.TempDir()
	keyFile := func(name string) (string, crypto.Signer) {
		f := filepath.Join(dir, name)
		if code, _, errOut := runCmd(t, "", "keygen", "-out", f); code != 0 {
			t.Fatal(errOut)
		}
		data, _ := os.ReadFile(f)
		block, _ := pem.Decode(data)
		k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		return f, k.(crypto.Signer)
	}
	key, signer := keyFile("dpop.key")
	thief, _ := keyFile("thief.key")
	jkt := wantThumbprint(t, signer.Public())
	claims := iss.Claims("client-1@clients")
	claims["cnf"] = map[string]any{"jkt": jkt}
	dpopTok := iss.Sign(t, claims)

	p := newPKI(t)
	p.issue(t, "client", "client", 2)
	p.issue(t, "other", "other", 3)
	certFile := filepath.Join(p.dir, "client.pem")
	certPEM, _ := os.ReadFile(certFile)
	block, _ := pem.Decode(certPEM)
	sum := sha256.Sum256(block.Bytes)
	x5t := base64.RawURLEncoding.EncodeToString(sum[:])
	claims = iss.Claims("client-2@clients")
	claims["cnf"] = map[string]any{"x5t#S256": x5t}
	mtlsTok := iss.Sign(t, claims)

	base := []string{"-addr", s.grpc, "-path", "/v1/orders?page=2", "-method", "POST", "-host", "api.example.com"}
	for _, tc := range []struct {
		name string
		args []string
		code int
		want []string
	}{
		{"DPoP with its key", []string{"-token", dpopTok, "-dpop-key", key}, 0,
			[]string{"decision: allow\n", "cnf_method: dpop\n", "cnf_thumbprint: " + jkt + "\n"}},
		{"DPoP over plain http", []string{"-token", dpopTok, "-dpop-key", key, "-scheme", "http"}, 0,
			[]string{"decision: allow\n", "cnf_method: dpop\n"}},
		{"DPoP token as Bearer", []string{"-token", dpopTok}, 1,
			[]string{"reason: missing_proof\nstatus: 401\n", `header: www-authenticate: DPoP algs="`, `error="invalid_token"`}},
		{"DPoP token with a thief's key", []string{"-token", dpopTok, "-dpop-key", thief}, 1,
			[]string{"reason: sender_mismatch\nstatus: 401\n", `header: www-authenticate: DPoP algs="`}},
		{"mTLS with its certificate", []string{"-token", mtlsTok, "-client-cert", certFile}, 0,
			[]string{"decision: allow\n", "cnf_method: mtls\n", "cnf_thumbprint: " + x5t + "\n"}},
		{"mTLS without a certificate", []string{"-token", mtlsTok}, 1,
			[]string{"reason: missing_proof\nstatus: 401\n", `header: www-authenticate: Bearer realm="jwt-authz", error="invalid_token"`}},
		{"mTLS with another certificate", []string{"-token", mtlsTok, "-client-cert", filepath.Join(p.dir, "other.pem")}, 1,
			[]string{"reason: sender_mismatch\nstatus: 401\n"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := runCheck(t, "", append(base, tc.args...)...)
			if code != tc.code {
				t.Fatalf("exit %d, want %d\n%s%s", code, tc.code, out, errOut)
			}
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
		})
	}
}

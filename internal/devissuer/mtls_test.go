package devissuer

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// mtlsServer serves iss's mTLS handler over real TLS on 127.0.0.1 and returns
// its URL and a pool trusting its certificate.
func mtlsServer(t *testing.T, iss *Issuer, opts MTLSOptions) (string, *x509.CertPool) {
	t.Helper()
	cfg, certPEM, err := MTLSServerConfig(opts)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(iss.MTLSHandler())
	srv.TLS = cfg
	srv.StartTLS()
	t.Cleanup(srv.Close)
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(certPEM) {
		t.Fatal("server certificate PEM does not parse")
	}
	return srv.URL, pool
}

func clientCert(t *testing.T) (tls.Certificate, []byte) {
	t.Helper()
	cert, certPEM, err := GenerateCertificate(nil, time.Now(), true)
	if err != nil {
		t.Fatal(err)
	}
	return cert, certPEM
}

// postTLS sends a token request over TLS with the client certificates given.
func postTLS(t *testing.T, url string, roots *x509.CertPool, certs []tls.Certificate, body string, dpop string) (response, error) {
	t.Helper()
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{
		RootCAs: roots, Certificates: certs, MinVersion: tls.VersionTLS12,
	}}}
	defer client.CloseIdleConnections()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, url+"/oauth/token", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if dpop != "" {
		req.Header.Set("DPoP", dpop)
	}
	resp, err := client.Do(req)
	if err != nil {
		return response{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: b}, nil
}

func TestMTLSBoundToken(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, Options{})
	url, roots := mtlsServer(t, ts.Issuer, MTLSOptions{})
	cert, _ := clientCert(t)

	resp, err := postTLS(t, url, roots, []tls.Certificate{cert}, good(), "")
	if err != nil {
		t.Fatal(err)
	}
	if resp.status != http.StatusOK {
		t.Fatalf("status %d, body %s", resp.status, resp.body)
	}
	var tr tokenResponse
	if err := json.Unmarshal(resp.body, &tr); err != nil {
		t.Fatal(err)
	}
	if tr.TokenType != "Bearer" {
		t.Errorf("token_type %q, want Bearer (RFC 8705 keeps it)", tr.TokenType)
	}
	if err := verify(t, ts, tr.AccessToken); err != nil {
		t.Fatalf("token does not verify with the issuer's JWKS: %v", err)
	}
	sum := sha256.Sum256(cert.Certificate[0])
	cnf, _ := tokenClaims(t, tr.AccessToken)["cnf"].(map[string]any)
	if len(cnf) != 1 || cnf["x5t#S256"] != b64(sum[:]) {
		t.Errorf("cnf %v, want x5t#S256 %s", cnf, b64(sum[:]))
	}

	// Another certificate, another binding.
	cert2, _ := clientCert(t)
	resp, err = postTLS(t, url, roots, []tls.Certificate{cert2}, good(), "")
	if err != nil || resp.status != http.StatusOK {
		t.Fatalf("second certificate: %v, %d %s", err, resp.status, resp.body)
	}
	if err := json.Unmarshal(resp.body, &tr); err != nil {
		t.Fatal(err)
	}
	sum2 := sha256.Sum256(cert2.Certificate[0])
	if cnf, _ := tokenClaims(t, tr.AccessToken)["cnf"].(map[string]any); cnf["x5t#S256"] != b64(sum2[:]) {
		t.Errorf("second certificate: cnf %v, want x5t#S256 %s", cnf, b64(sum2[:]))
	}
}

func TestMTLSRefusals(t *testing.T) {
	t.Parallel()
	now, clock := fixedNow()
	ts := newTestServer(t, Options{Now: clock})
	url, roots := mtlsServer(t, ts.Issuer, MTLSOptions{})
	cert, _ := clientCert(t)

	// No client certificate: the handshake fails.
	if resp, err := postTLS(t, url, roots, nil, good(), ""); err == nil {
		t.Fatalf("no client certificate: status %d, body %s; want a failed handshake", resp.status, resp.body)
	}

	// Credentials are still checked.
	resp, err := postTLS(t, url, roots, []tls.Certificate{cert}, demoParams("demo-m2m", "wrong").form(), "")
	if err != nil {
		t.Fatal(err)
	}
	checkTokenError(t, resp, http.StatusUnauthorized, oauthError{Error: "access_denied", ErrorDescription: "Unauthorized"})

	// One binding per token: a DPoP proof here is refused.
	k := newProofKey(t, "ES256")
	h, c := proofParts(t, k, url+"/oauth/token", now)
	resp, err = postTLS(t, url, roots, []tls.Certificate{cert}, good(), k.sign(t, h, c))
	if err != nil {
		t.Fatal(err)
	}
	checkProofError(t, resp, "binds tokens to the client certificate")

	// Without TLS at all (a misconfigured listener), no token.
	srv := httptest.NewServer(ts.MTLSHandler())
	t.Cleanup(srv.Close)
	plain := post(t, srv.URL+"/oauth/token", "application/x-www-form-urlencoded", good())
	checkTokenError(t, plain, http.StatusUnauthorized, oauthError{Error: "invalid_client", ErrorDescription: "a client certificate is required on this endpoint"})
}

func TestMTLSClientCA(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, Options{})
	trusted, trustedPEM := clientCert(t)
	untrusted, _ := clientCert(t)
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, trustedPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	url, roots := mtlsServer(t, ts.Issuer, MTLSOptions{ClientCAFile: caFile})
	if resp, err := postTLS(t, url, roots, []tls.Certificate{untrusted}, good(), ""); err == nil {
		t.Fatalf("certificate not from the CA: status %d; want a failed handshake", resp.status)
	}
	resp, err := postTLS(t, url, roots, []tls.Certificate{trusted}, good(), "")
	if err != nil || resp.status != http.StatusOK {
		t.Fatalf("certificate from the CA: %v, %d %s", err, resp.status, resp.body)
	}
}

func TestMTLSServerConfigErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing.pem")
	for _, tc := range []struct {
		name string
		opts MTLSOptions
		want string
	}{
		{name: "cert without key", opts: MTLSOptions{CertFile: missing}, want: "devissuer: mtls server certificate: give both a certificate and a key file, or neither"},
		{name: "missing files", opts: MTLSOptions{CertFile: missing, KeyFile: missing}, want: "devissuer: mtls server certificate: open " + missing + ": no such file or directory"},
		{name: "missing ca", opts: MTLSOptions{ClientCAFile: missing}, want: "devissuer: mtls client ca: open " + missing + ": no such file or directory"},
	} {
		if _, _, err := MTLSServerConfig(tc.opts); err == nil || err.Error() != tc.want {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
	}
}

func TestDiscoveryMTLSAlias(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, Options{MTLSTokenEndpoint: "https://127.0.0.1:8443/oauth/token"})
	resp := get(t, ts.URL+"/.well-known/openid-configuration")
	var got struct {
		Bound   bool              `json:"tls_client_certificate_bound_access_tokens"`
		Aliases map[string]string `json:"mtls_endpoint_aliases"`
	}
	if err := json.Unmarshal(resp.body, &got); err != nil {
		t.Fatal(err)
	}
	if !got.Bound || got.Aliases["token_endpoint"] != "https://127.0.0.1:8443/oauth/token" {
		t.Errorf("discovery: %+v; want mtls alias and bound tokens", got)
	}
	if _, err := New(Options{Issuer: "http://127.0.0.1:1/", MTLSTokenEndpoint: "http://127.0.0.1:8443/oauth/token"}); err == nil ||
		err.Error() != `devissuer: mtls token endpoint "http://127.0.0.1:8443/oauth/token": want an absolute https URL` {
		t.Errorf("http mtls endpoint: %v", err)
	}
}

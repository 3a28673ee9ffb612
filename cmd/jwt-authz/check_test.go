package main

import (
	"bytes"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jwtauthz/jwt-authz/jwks/jwkstest"
)

// runCheck runs `jwt-authz check` with stdin.
func runCheck(t *testing.T, stdin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = check(t.Context(), append([]string{"-timeout", "3s"}, args...), strings.NewReader(stdin), &out, &errb)
	return code, out.String(), errb.String()
}

// serveReady starts serve with serveYAML (scope read:target) for iss plus
// extra, and waits until it is ready; it returns the server and its
// config file.
func serveReady(t *testing.T, iss *jwkstest.Issuer, extra string) (*proc, string) {
	t.Helper()
	cfg := filepath.Join(t.TempDir(), "c.yaml")
	writeConfig(t, cfg, serveYAML(iss, "read:target")+extra)
	s := startServe(t, cfg)
	eventually(t, "ready", func() bool { c, _ := s.get(t, "/readyz"); return c == 200 })
	return s, cfg
}

// TestCheckOverMTLS drives check against a real jwt-authz serving gRPC
// over mTLS, with certificates made here: the token from a file and from
// stdin, and a one-line hint for each TLS mistake.
func TestCheckOverMTLS(t *testing.T) {
	t.Parallel()
	iss := jwkstest.New(t, jwkstest.Options{})
	p := newPKI(t)
	p.issue(t, "server", "server", 2)
	p.issue(t, "client", "client", 3)
	s, _ := serveReady(t, iss, fmt.Sprintf("listen: {tls: {cert_file: %q, key_file: %q, client_ca_file: %q}}\n",
		filepath.Join(p.dir, "server.pem"), filepath.Join(p.dir, "server-key.pem"), filepath.Join(p.dir, "ca.pem")))
	_, port, _ := net.SplitHostPort(s.grpc)
	byName := net.JoinHostPort("localhost", port) // the name the server certificate holds

	tok := iss.Sign(t, iss.Claims("client-1@clients"))
	tokFile := filepath.Join(t.TempDir(), "token")
	os.WriteFile(tokFile, []byte(tok+"\n"), 0o600)
	mtls := []string{"-ca", filepath.Join(p.dir, "ca.pem"), "-cert", filepath.Join(p.dir, "client.pem"), "-key", filepath.Join(p.dir, "client-key.pem")}

	for _, tc := range []struct {
		name, stdin string
		args        []string
		code        int
		out, hint   string
	}{
		{name: "token file", args: append([]string{"-addr", byName, "-token-file", tokFile, "-path", "/echo"}, mtls...),
			out: "set header: x-jwt-sub: client-1@clients"},
		{name: "token from stdin", stdin: tok + "\n", args: append([]string{"-addr", byName, "-token", "-", "-path", "/echo"}, mtls...),
			out: "subject: client-1@clients"},
		{name: "server name by flag", args: append([]string{"-addr", s.grpc, "-server-name", "localhost", "-token-file", tokFile}, mtls...),
			out: "decision: allow"},
		{name: "no token", args: append([]string{"-addr", byName, "-path", "/echo"}, mtls...), code: 1,
			out: "reason: missing_token\nstatus: 401\ngrpc code: 16\nheader: www-authenticate: Bearer realm=\"jwt-authz\""},
		{name: "plaintext against TLS", args: []string{"-addr", byName}, code: 2,
			hint: "hint: " + byName + " speaks TLS: add -tls"},
		{name: "unknown CA", args: []string{"-addr", byName, "-tls"}, code: 2,
			hint: "hint: the server's certificate is signed by an authority this machine does not trust: pass that CA's certificate with -ca FILE"},
		{name: "wrong name", args: append([]string{"-addr", s.grpc}, mtls...), code: 2,
			hint: `hint: the server's certificate is not valid for "127.0.0.1": pass -server-name with a name it holds (it holds localhost)`},
		{name: "no client certificate", args: []string{"-addr", byName, "-ca", filepath.Join(p.dir, "ca.pem")}, code: 2,
			hint: "hint: the server requires a client certificate (mTLS): pass -cert FILE and -key FILE"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := runCheck(t, tc.stdin, tc.args...)
			if code != tc.code || !strings.Contains(out, tc.out) {
				t.Fatalf("exit %d, want %d; stdout:\n%s\nwant it to contain %q; stderr:\n%s", code, tc.code, out, tc.out, errOut)
			}
			if tc.hint != "" && !strings.Contains(errOut, tc.hint) {
				t.Errorf("stderr:\n%s\nwant the line %q", errOut, tc.hint)
			}
			if tc.hint == "" && strings.Contains(errOut, "hint:") {
				t.Errorf("unexpected hint:\n%s", errOut)
			}
			if strings.Contains(out+errOut, tok) {
				t.Error("check printed the token")
			}
		})
	}
}

// TestCheckHintsPlaintext: the usual mistakes against a plaintext server,
// each named in one line after the error, exit 2.
func TestCheckHintsPlaintext(t *testing.T) {
	t.Parallel()
	s, _ := serveReady(t, jwkstest.New(t, jwkstest.Options{}), "")
	// Some other HTTP/1.1 server, for the HTTP-port mistake over TLS.
	https := httptest.NewUnstartedServer(http.NotFoundHandler())
	https.Config.ErrorLog = log.New(io.Discard, "", 0) // the probes' handshake errors are expected
	https.StartTLS()
	t.Cleanup(https.Close)
	httpsCA := filepath.Join(t.TempDir(), "ca.pem")
	writePEM(t, httpsCA, "CERTIFICATE", https.Certificate().Raw)
	closed, _ := net.Listen("tcp", "127.0.0.1:0")
	refused := closed.Addr().String()
	closed.Close()

	for _, tc := range []struct {
		name string
		args []string
		hint string
	}{
		{name: "HTTP port", args: []string{"-addr", s.http},
			hint: s.http + " answered HTTP/1.x: that is an HTTP port (jwt-authz's /metrics and /readyz are on listen.http); -addr takes the gRPC port (listen.grpc)"},
		{name: "TLS against plaintext", args: []string{"-addr", s.grpc, "-tls"},
			hint: s.grpc + " does not speak TLS (it answers plaintext gRPC): drop -tls, -ca, -cert and -key, or set listen.tls on the server"},
		{name: "TLS against an HTTP port", args: []string{"-addr", s.http, "-tls"},
			hint: s.http + " answered plaintext HTTP/1.x to TLS: that is an HTTP port, not jwt-authz's gRPC port (listen.grpc)"},
		{name: "HTTPS server without HTTP/2", args: []string{"-addr", https.Listener.Addr().String(), "-ca", httpsCA},
			hint: https.Listener.Addr().String() + " speaks TLS but not HTTP/2: it is not a gRPC port; -addr takes jwt-authz's listen.grpc"},
		{name: "connection refused", args: []string{"-addr", refused},
			hint: "nothing listens on " + refused + ": is jwt-authz running there, and is this its gRPC port (listen.grpc)?"},
		{name: "name does not resolve", args: []string{"-addr", "jwt-authz.invalid:9001"},
			hint: `the name "jwt-authz.invalid" does not resolve: check its spelling (in Kubernetes, SERVICE.NAMESPACE or SERVICE.NAMESPACE.svc.cluster.local)`},
		{name: "not host:port", args: []string{"-addr", "127.0.0.1"},
			hint: `-addr "127.0.0.1" is not HOST:PORT (for example 127.0.0.1:9001)`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := runCheck(t, "", tc.args...)
			if code != 2 || out != "" {
				t.Fatalf("exit %d, want 2; stdout %q", code, out)
			}
			lines := strings.Split(strings.TrimRight(errOut, "\n"), "\n")
			if len(lines) != 2 || !strings.HasPrefix(lines[0], "jwt-authz check: ") || lines[1] != "hint: "+tc.hint {
				t.Errorf("stderr:\n%s\nwant the error, then the line\nhint: %s", errOut, tc.hint)
			}
		})
	}
}

func TestCheckTokenFlags(t *testing.T) {
	t.Parallel()
	f := filepath.Join(t.TempDir(), "t")
	os.WriteFile(f, []byte("a.b.c"), 0o600)
	for _, tc := range []struct {
		name, stdin string
		args        []string
		want        string
	}{
		{name: "both", args: []string{"-token", "x", "-token-file", f}, want: "jwt-authz check: -token and -token-file: use one of them\n"},
		{name: "empty stdin", args: []string{"-token", "-"}, want: "jwt-authz check: the token read is empty\n"},
		{name: "a JSON response", stdin: `{"access_token": "a.b.c", "token_type": "Bearer"}`, args: []string{"-token", "-"},
			want: "jwt-authz check: the token read has white space inside: give the token alone, not a JSON response or a header\n"},
		{name: "missing file", args: []string{"-token-file", f + "-nope"}, want: "jwt-authz check: -token-file: open " + f + "-nope: no such file or directory\n"},
		{name: "cert without key", args: []string{"-cert", f}, want: "jwt-authz check: -cert and -key go together\n"},
		{name: "bad CA", args: []string{"-ca", f}, want: "jwt-authz check: -ca: no PEM certificate in " + f + "\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := runCheck(t, tc.stdin, tc.args...)
			if code != 2 || out != "" || errOut != tc.want {
				t.Errorf("exit %d, stdout %q, stderr %q; want 2 and %q", code, out, errOut, tc.want)
			}
		})
	}
}

// TestHelp: every subcommand's -h has a description, examples and exit
// codes, on stdout, and exits 0; a bad flag exits 2 and points at -h.
func TestHelp(t *testing.T) {
	t.Parallel()
	for _, cmd := range []string{"serve", "validate", "check", "dpop-proof", "keygen", "version"} {
		for _, h := range []string{"-h", "-help", "--help"} {
			var out, errb bytes.Buffer
			if code := run(t.Context(), []string{cmd, h}, &out, &errb); code != 0 || errb.Len() != 0 {
				t.Fatalf("%s %s: exit %d, stderr %q", cmd, h, code, errb.String())
			}
			for _, want := range []string{"jwt-authz " + cmd + " ", "\nUsage:\n  jwt-authz " + cmd, "\nFlags:\n", "\nExamples:\n  jwt-authz " + cmd, "\nExit codes:\n  0  "} {
				if !strings.Contains(out.String(), want) {
					t.Errorf("%s %s lacks %q:\n%s", cmd, h, want, out.String())
				}
			}
		}
		var out, errb bytes.Buffer
		if code := run(t.Context(), []string{cmd, "-bogus"}, &out, &errb); code != 2 ||
			!strings.Contains(errb.String(), "flag provided but not defined: -bogus\nsee jwt-authz "+cmd+" -h\n") {
			t.Errorf("%s -bogus: exit %d, stderr %q", cmd, code, errb.String())
		}
	}
	for _, h := range []string{"-h", "help", "--help"} {
		var out, errb bytes.Buffer
		if code := run(t.Context(), []string{h}, &out, &errb); code != 0 || !strings.Contains(out.String(), "jwt-authz COMMAND -h") {
			t.Errorf("jwt-authz %s: exit %d, %q", h, code, out.String())
		}
	}
}

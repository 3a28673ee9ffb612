package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sort"
	"strings"
	"syscall"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
)

// check sends one CheckRequest and prints the decision. Exit 0 allowed,
// 1 denied, 2 could not ask (with a hint for the usual mistakes).
func check(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := newFlags("check", stdout, stderr)
	addr := fs.String("addr", "127.0.0.1:9001", "jwt-authz gRPC address `HOST:PORT` (listen.grpc)")
	token := fs.String("token", "", "bearer `token`, sent as 'authorization: Bearer T'; - reads it from stdin")
	tokenFile := fs.String("token-file", "", "read the bearer token from `FILE` (keeps it out of ps and shell history)")
	method := fs.String("method", "GET", "HTTP method")
	path := fs.String("path", "/", "request path, query included")
	host := fs.String("host", "localhost", "request host (:authority)")
	scheme := fs.String("scheme", "https", "request scheme, as Envoy saw it (attributes.request.http.scheme; the htu of a DPoP proof)")
	dpopKeyFile := fs.String("dpop-key", "", "prove possession: sign a DPoP proof for this request with the private key in `FILE` (PEM) and send 'authorization: DPoP T'")
	dpopAlg := fs.String("dpop-alg", "", "DPoP proof `alg` (default from the key: ES256, PS256 or EdDSA; RS256 for an RSA key)")
	clientCert := fs.String("client-cert", "", "send the certificate in `FILE` (PEM) as the downstream client certificate (attributes.source.certificate, as Envoy's include_peer_certificate does)")
	timeout := fs.Duration("timeout", 5*time.Second, "RPC timeout")
	useTLS := fs.Bool("tls", false, "connect with TLS (implied by -ca, -cert, -key, -server-name)")
	caFile := fs.String("ca", "", "verify the server against the CA certificates in `FILE` (PEM) instead of the system roots")
	certFile := fs.String("cert", "", "client certificate `FILE` (PEM) for mTLS; needs -key")
	keyFile := fs.String("key", "", "client private key `FILE` (PEM) for mTLS; needs -cert")
	serverName := fs.String("server-name", "", "expect this `NAME` in the server's certificate (default: the host of -addr)")
	var headers, contexts multiFlag
	fs.Var(&headers, "header", "request header `'name: value'` (repeatable)")
	fs.Var(&contexts, "context", "context extension `k=v`, as a route's check_settings would send (repeatable)")
	if code, ok := fs.parse(args); !ok {
		return code
	}
	fail := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "jwt-authz check: "+format+"\n", a...)
		return 2
	}
	h := map[string]string{":method": *method, ":path": *path, ":authority": *host, ":scheme": *scheme}
	for _, kv := range headers {
		k, v, ok := strings.Cut(kv, ":")
		if !ok {
			return fail("-header %q: want 'name: value'", kv)
		}
		h[strings.ToLower(strings.TrimSpace(k))] = strings.TrimSpace(v)
	}
	tok, err := readToken(*token, *tokenFile, stdin)
	if err != nil {
		return fail("%v", err)
	}
	if *dpopKeyFile != "" {
		k, err := loadDPoPKey(*dpopKeyFile, *dpopAlg)
		if err != nil {
			return fail("-dpop-key: %v", err)
		}
		proof, err := k.sign(proofRequest{method: *method, url: *scheme + "://" + *host + *path, token: tok, now: time.Now()})
		if err != nil {
			return fail("-scheme, -host, -path: %v", err)
		}
		h["dpop"] = proof
	} else if *dpopAlg != "" {
		return fail("-dpop-alg needs -dpop-key")
	}
	switch {
	case tok != "" && *dpopKeyFile != "":
		h["authorization"] = "DPoP " + tok
	case tok != "":
		h["authorization"] = "Bearer " + tok
	}
	var source *authv3.AttributeContext_Peer
	if *clientCert != "" {
		c, err := envoyCertificate(*clientCert)
		if err != nil {
			return fail("-client-cert: %v", err)
		}
		source = &authv3.AttributeContext_Peer{Certificate: c}
	}
	ext := map[string]string{}
	for _, kv := range contexts {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			return fail("-context %q: want k=v", kv)
		}
		ext[k] = v
	}
	var tc *tls.Config
	if *useTLS || *caFile != "" || *certFile != "" || *keyFile != "" || *serverName != "" {
		if tc, err = clientTLS(*caFile, *certFile, *keyFile, *serverName); err != nil {
			return fail("%v", err)
		}
	}
	creds := insecure.NewCredentials()
	if tc != nil {
		creds = credentials.NewTLS(tc)
	}
	conn, err := grpc.NewClient(*addr, grpc.WithTransportCredentials(creds))
	if err != nil {
		return fail("-addr %q: %v", *addr, err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	resp, err := authv3.NewAuthorizationClient(conn).Check(ctx, &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		Source: source,
		Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{
			Method: *method, Path: *path, Host: *host, Scheme: *scheme, Headers: h, Protocol: "HTTP/1.1",
		}},
		ContextExtensions: ext,
	}})
	if err != nil {
		fmt.Fprintf(stderr, "jwt-authz check: %v\n", err)
		if c := status.Code(err); c == codes.Unavailable || c == codes.DeadlineExceeded {
			dctx, dcancel := context.WithTimeout(context.Background(), 3*time.Second)
			defer dcancel()
			if hint := diagnose(dctx, *addr, tc); hint != "" {
				fmt.Fprintf(stderr, "hint: %s\n", hint)
			}
		}
		return 2
	}
	return printResponse(stdout, resp)
}

// readToken returns the token from -token, from stdin (-token -) or from
// -token-file, with surrounding white space (a file's final newline)
// removed.
func readToken(token, file string, stdin io.Reader) (string, error) {
	if token != "" && file != "" {
		return "", errors.New("-token and -token-file: use one of them")
	}
	var b []byte
	var err error
	switch {
	case file == "-" || token == "-":
		b, err = io.ReadAll(io.LimitReader(stdin, 1<<20))
		if err != nil {
			return "", fmt.Errorf("token from stdin: %w", err)
		}
	case file != "":
		if b, err = os.ReadFile(file); err != nil {
			return "", fmt.Errorf("-token-file: %w", err)
		}
	default:
		return token, nil
	}
	t := strings.TrimSpace(string(b))
	if t == "" {
		return "", errors.New("the token read is empty")
	}
	if strings.ContainsAny(t, " \t\r\n") {
		return "", errors.New("the token read has white space inside: give the token alone, not a JSON response or a header")
	}
	return t, nil
}

func clientTLS(caFile, certFile, keyFile, serverName string) (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: serverName}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("-ca: %w", err)
		}
		tc.RootCAs = x509.NewCertPool()
		if !tc.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("-ca: no PEM certificate in %s", caFile)
		}
	}
	if (certFile == "") != (keyFile == "") {
		return nil, errors.New("-cert and -key go together")
	}
	if certFile != "" {
		pair, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, fmt.Errorf("-cert/-key: %w", err)
		}
		tc.Certificates = []tls.Certificate{pair}
	}
	return tc, nil
}

// http2Preface is what a gRPC client sends first on a plaintext connection.
const http2Preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

// diagnose looks at addr again, after a failed Check, to name the usual
// mistake in one line; "" when it finds none. tc is the TLS config the
// Check used, nil for plaintext.
func diagnose(ctx context.Context, addr string, tc *tls.Config) string {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Sprintf("-addr %q is not HOST:PORT (for example 127.0.0.1:9001)", addr)
	}
	if net.ParseIP(host) == nil {
		if _, err := net.DefaultResolver.LookupHost(ctx, host); err != nil {
			var dns *net.DNSError
			if errors.As(err, &dns) && dns.IsNotFound {
				return fmt.Sprintf("the name %q does not resolve: check its spelling (in Kubernetes, SERVICE.NAMESPACE or SERVICE.NAMESPACE.svc.cluster.local)", host)
			}
			return fmt.Sprintf("the name %q could not be resolved: %v", host, err)
		}
	}
	dial := func() (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "tcp", addr)
	}
	conn, err := dial()
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return fmt.Sprintf("nothing listens on %s: is jwt-authz running there, and is this its gRPC port (listen.grpc)?", addr)
	case err != nil:
		return fmt.Sprintf("%s cannot be reached (%v): a firewall, a NetworkPolicy or a wrong address?", addr, err)
	}
	answer := probePlain(ctx, conn)
	if tc == nil {
		switch {
		case bytes.HasPrefix(answer, []byte("HTTP/")):
			return fmt.Sprintf("%s answered HTTP/1.x: that is an HTTP port (jwt-authz's /metrics and /readyz are on listen.http); -addr takes the gRPC port (listen.grpc)", addr)
		case isTLSRecord(answer) || len(answer) == 0 && speaksTLS(ctx, dial):
			return fmt.Sprintf("%s speaks TLS: add -tls (and -ca FILE when a private CA signed its certificate)", addr)
		}
		return ""
	}
	// With TLS: the handshake, with the verification the Check used.
	raw, err := dial()
	if err != nil {
		return ""
	}
	defer raw.Close()
	if d, ok := ctx.Deadline(); ok {
		raw.SetDeadline(d)
	}
	probe := tc.Clone()
	probe.NextProtos = []string{"h2"}
	if probe.ServerName == "" {
		probe.ServerName = host
	}
	tconn := tls.Client(raw, probe)
	err = tconn.HandshakeContext(ctx)
	var rec tls.RecordHeaderError
	var unknownCA x509.UnknownAuthorityError
	var badName x509.HostnameError
	switch {
	case errors.As(err, &rec) && bytes.HasPrefix(rec.RecordHeader[:], []byte("HTTP/")):
		return fmt.Sprintf("%s answered plaintext HTTP/1.x to TLS: that is an HTTP port, not jwt-authz's gRPC port (listen.grpc)", addr)
	case errors.As(err, &rec) || err != nil && isH2Settings(answer):
		return fmt.Sprintf("%s does not speak TLS (it answers plaintext gRPC): drop -tls, -ca, -cert and -key, or set listen.tls on the server", addr)
	case errors.As(err, &unknownCA):
		return "the server's certificate is signed by an authority this machine does not trust: pass that CA's certificate with -ca FILE"
	case errors.As(err, &badName):
		return fmt.Sprintf("the server's certificate is not valid for %q: pass -server-name with a name it holds (%s)", probe.ServerName, certNames(badName.Certificate))
	case err != nil && strings.Contains(err.Error(), "no application protocol"):
		return fmt.Sprintf("%s speaks TLS but not HTTP/2: it is not a gRPC port; -addr takes jwt-authz's listen.grpc", addr)
	case err != nil:
		return clientCertHint(err)
	}
	if tconn.ConnectionState().NegotiatedProtocol != "h2" {
		return fmt.Sprintf("%s speaks TLS but not HTTP/2: it is not a gRPC port; -addr takes jwt-authz's listen.grpc", addr)
	}
	// TLS 1.3 sends a refused client certificate after the handshake: it
	// shows on the first read.
	tconn.Write([]byte(http2Preface + "\x00\x00\x00\x04\x00\x00\x00\x00\x00"))
	if _, err = tconn.Read(make([]byte, 1)); err != nil {
		return clientCertHint(err)
	}
	return ""
}

// clientCertHint names a TLS alert about the client certificate.
func clientCertHint(err error) string {
	switch msg := err.Error(); {
	case strings.Contains(msg, "certificate required"):
		return "the server requires a client certificate (mTLS): pass -cert FILE and -key FILE"
	case strings.Contains(msg, "bad certificate"), strings.Contains(msg, "unknown certificate authority"):
		return "the server refused the client certificate: is it signed by the CA in the server's listen.tls.client_ca_file?"
	}
	return ""
}

// probePlain sends a gRPC client's plaintext greeting and returns the first
// bytes of the answer (none when the server closed or kept silent).
func probePlain(ctx context.Context, conn net.Conn) []byte {
	defer conn.Close()
	if d, ok := ctx.Deadline(); ok {
		conn.SetDeadline(d)
	}
	// The preface and an empty SETTINGS frame.
	conn.Write([]byte(http2Preface + "\x00\x00\x00\x04\x00\x00\x00\x00\x00"))
	buf := make([]byte, 16)
	n, _ := io.ReadAtLeast(conn, buf, 5)
	return buf[:n]
}

// isTLSRecord: a TLS alert or handshake record header.
func isTLSRecord(b []byte) bool {
	return len(b) >= 3 && (b[0] == 0x15 || b[0] == 0x16) && b[1] == 3
}

// isH2Settings: an HTTP/2 SETTINGS frame, a gRPC server's first answer.
func isH2Settings(b []byte) bool { return len(b) >= 9 && b[3] == 0x4 }

// speaksTLS reports whether a TLS handshake, unverified and used for
// nothing else, completes on a new connection.
func speaksTLS(ctx context.Context, dial func() (net.Conn, error)) bool {
	raw, err := dial()
	if err != nil {
		return false
	}
	defer raw.Close()
	// Only to tell TLS from plaintext: nothing is sent over this connection.
	c := tls.Client(raw, &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"h2"}}) //nolint:gosec
	return c.HandshakeContext(ctx) == nil
}

func certNames(c *x509.Certificate) string {
	if c == nil {
		return "none"
	}
	names := append([]string(nil), c.DNSNames...)
	for _, ip := range c.IPAddresses {
		names = append(names, ip.String())
	}
	if len(names) == 0 {
		return "it names none"
	}
	return "it holds " + strings.Join(names, ", ")
}

func printResponse(w io.Writer, resp *authv3.CheckResponse) int {
	md := resp.GetDynamicMetadata().GetFields()
	reason := md["reason"].GetStringValue()
	if ok := resp.GetOkResponse(); resp.GetStatus().GetCode() == 0 {
		fmt.Fprintf(w, "decision: allow\nreason: %s\nstatus: 200\n", reason)
		for _, k := range []string{"provider", "rule", "subject", "client_id", "scope", "cnf_method", "cnf_thumbprint"} {
			if v := md[k].GetStringValue(); v != "" {
				fmt.Fprintf(w, "%s: %s\n", k, v)
			}
		}
		for _, h := range ok.GetHeaders() {
			fmt.Fprintf(w, "set header: %s: %s\n", h.GetHeader().GetKey(), h.GetHeader().GetValue())
		}
		rm := append([]string(nil), ok.GetHeadersToRemove()...)
		sort.Strings(rm)
		for _, h := range rm {
			fmt.Fprintf(w, "remove header: %s\n", h)
		}
		return 0
	}
	d := resp.GetDeniedResponse()
	fmt.Fprintf(w, "decision: deny\nreason: %s\nstatus: %d\ngrpc code: %d\n", reason, d.GetStatus().GetCode(), resp.GetStatus().GetCode())
	for _, h := range d.GetHeaders() {
		fmt.Fprintf(w, "header: %s: %s\n", h.GetHeader().GetKey(), h.GetHeader().GetValue())
	}
	fmt.Fprintf(w, "body: %s\n", d.GetBody())
	return 1
}

// Command dev-issuer runs a local stand-in for an Auth0 tenant (see package
// internal/devissuer). It is for development and demos only, never production.
package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/jwtauthz/jwt-authz/internal/devissuer"
	"github.com/jwtauthz/jwt-authz/internal/httpserver"
)

const banner = `
######################################################################
#  dev-issuer: a DEVELOPMENT stand-in for an Auth0 tenant.           #
#  NEVER use it in production: it prints its client secrets, keeps   #
#  its signing keys in plain files and signs for any listed client.  #
######################################################################
`

func main() { os.Exit(run()) }

func run() int {
	fs := flag.NewFlagSet("dev-issuer", flag.ContinueOnError)
	addr := fs.String("addr", "127.0.0.1:8081", "listen address")
	issuer := fs.String("issuer", "http://127.0.0.1:8081/", "issuer URL: the iss claim and base of every URL, with a trailing /")
	clientsFile := fs.String("clients", "", "clients file (YAML); empty = built-in demo clients")
	keyFile := fs.String("key-file", "", "file that keeps the signing keys across restarts (created if missing); empty = in memory")
	profile := fs.String("profile", string(devissuer.ProfileAuth0), "token profile: auth0 (typ JWT, azp) or rfc9068 (typ at+jwt, client_id, jti)")
	tokenTTL := fs.Duration("token-ttl", devissuer.DefaultTokenTTL, "access token lifetime (exp - iat, expires_in)")
	jwksMaxAge := fs.Duration("jwks-max-age", devissuer.DefaultJWKSMaxAge, "Cache-Control max-age of the JWKS and discovery document")
	logFormat := fs.String("log-format", "json", "log format: json or text")
	mtlsAddr := fs.String("mtls-addr", "", "also listen here with TLS, requiring a client certificate: POST /oauth/token issues tokens bound to it (cnf x5t#S256); empty = no such listener")
	mtlsURL := fs.String("mtls-url", "", "URL of the mTLS token endpoint for the discovery document; empty = https://<mtls-addr>/oauth/token")
	tlsCert := fs.String("tls-cert", "", "server certificate (PEM) of the mTLS listener; empty with -tls-key empty = a self-signed one, written to a file printed at start")
	tlsKey := fs.String("tls-key", "", "server key (PEM) of the mTLS listener")
	clientCA := fs.String("client-ca", "", "CA certificates (PEM) that client certificates must chain to; empty = any client certificate (the token is bound to it; the client still authenticates with its secret)")
	adminAllow := fs.String("admin-allow", "", "comma-separated networks (CIDR or address) whose callers may use /admin/*, besides loopback, e.g. a compose network: 172.16.0.0/12,192.168.0.0/16,10.0.0.0/8; empty = loopback only")
	fs.Usage = func() {
		out := fs.Output()
		fmt.Fprint(out, banner)
		fmt.Fprintf(out, "\nUsage: dev-issuer [flags]\n\n"+
			"Serves POST /oauth/token (client credentials), GET /.well-known/jwks.json,\n"+
			"GET /.well-known/openid-configuration, and, to loopback callers (and\n"+
			"-admin-allow networks) only, POST /admin/rotate, POST /admin/revoke?kid=KID,\n"+
			"GET /admin/keys. A token request with a DPoP proof header gets a DPoP-bound\n"+
			"token (token_type DPoP, cnf.jkt). With -mtls-addr, POST /oauth/token there\n"+
			"issues tokens bound to the client certificate (cnf x5t#S256).\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(os.Args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "dev-issuer: unexpected arguments: %v\n", fs.Args())
		return 2
	}

	var handler slog.Handler
	switch *logFormat {
	case "json":
		handler = slog.NewJSONHandler(os.Stderr, nil)
	case "text":
		handler = slog.NewTextHandler(os.Stderr, nil)
	default:
		fmt.Fprintf(os.Stderr, "dev-issuer: -log-format %q: want json or text\n", *logFormat)
		return 2
	}
	logger := slog.New(handler)
	fmt.Fprint(os.Stderr, banner)

	allow, err := devissuer.ParseAdminAllow(*adminAllow)
	if err != nil {
		fmt.Fprintf(os.Stderr, "dev-issuer: -admin-allow: %v\n", err)
		return 2
	}

	var mtls *mtlsListener
	if *mtlsAddr != "" {
		if mtls, err = newMTLSListener(*mtlsAddr, *mtlsURL, devissuer.MTLSOptions{
			CertFile: *tlsCert, KeyFile: *tlsKey, ClientCAFile: *clientCA,
		}); err != nil {
			logger.Error("mtls listener", "error", err)
			return 1
		}
		defer mtls.ln.Close()
	} else if *tlsCert != "" || *tlsKey != "" || *clientCA != "" || *mtlsURL != "" {
		fmt.Fprintln(os.Stderr, "dev-issuer: -tls-cert, -tls-key, -client-ca and -mtls-url need -mtls-addr")
		return 2
	}

	clients := devissuer.DemoClients()
	if *clientsFile != "" {
		if clients, err = devissuer.LoadClients(*clientsFile); err != nil {
			logger.Error("load clients", "error", err)
			return 1
		}
	}
	iss, err := devissuer.New(devissuer.Options{
		Issuer:            *issuer,
		Clients:           clients,
		Profile:           devissuer.Profile(*profile),
		TokenTTL:          *tokenTTL,
		JWKSMaxAge:        *jwksMaxAge,
		KeyFile:           *keyFile,
		Logger:            logger,
		AdminAllow:        allow,
		MTLSTokenEndpoint: mtls.tokenEndpoint(),
	})
	if err != nil {
		logger.Error("start issuer", "error", err)
		return 1
	}
	if err := devissuer.WriteClientLines(os.Stdout, clients); err != nil {
		logger.Error("print clients", "error", err)
		return 1
	}
	if mtls != nil {
		fmt.Printf("mtls token_endpoint=%s server_cert=%s client_ca=%q\n", mtls.url, mtls.certFile, *clientCA)
	}
	return serve(logger, *addr, iss, iss.Keys(), allow, mtls)
}

// mtlsListener is the optional listener that requires client certificates.
type mtlsListener struct {
	ln       net.Listener // TLS
	url      string       // its token endpoint
	certFile string       // the server certificate clients should trust
}

func newMTLSListener(addr, url string, opts devissuer.MTLSOptions) (*mtlsListener, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("-mtls-addr %q: %w", addr, err)
	}
	if host != "" && host != "0.0.0.0" && host != "::" {
		opts.Hosts = []string{host, "127.0.0.1", "::1", "localhost"}
	}
	cfg, certPEM, err := devissuer.MTLSServerConfig(opts)
	if err != nil {
		return nil, err
	}
	certFile := opts.CertFile
	if certFile == "" {
		f, err := os.CreateTemp("", "dev-issuer-mtls-*.pem")
		if err != nil {
			return nil, fmt.Errorf("write the generated server certificate: %w", err)
		}
		_, werr := f.Write(certPEM)
		if err := errors.Join(werr, f.Close()); err != nil {
			return nil, fmt.Errorf("write the generated server certificate: %w", err)
		}
		certFile = f.Name()
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen %s: %w", addr, err)
	}
	if url == "" {
		url = "https://" + ln.Addr().String() + "/oauth/token"
	}
	return &mtlsListener{ln: tls.NewListener(ln, cfg), url: url, certFile: certFile}, nil
}

func (m *mtlsListener) tokenEndpoint() string {
	if m == nil {
		return ""
	}
	return m.url
}

func serve(logger *slog.Logger, addr string, iss *devissuer.Issuer, keys devissuer.KeyState, adminAllow []netip.Prefix, mtls *mtlsListener) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	ln, err := net.Listen("tcp", addr)
	if err != nil {
		logger.Error("listen", "addr", addr, "error", err)
		return 1
	}
	newServer := func(h http.Handler) *http.Server {
		return &http.Server{
			Handler:           h,
			ReadHeaderTimeout: 5 * time.Second,
			ReadTimeout:       10 * time.Second,
			WriteTimeout:      10 * time.Second,
			IdleTimeout:       60 * time.Second,
			MaxHeaderBytes:    64 << 10,
			ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
		}
	}
	logger.Info("dev-issuer listening", "addr", ln.Addr().String(), "current_kid", keys.Current, "next_kid", keys.Next, "admin_allow", adminAllow)
	// Each server runs until the signal, or until the other one fails.
	codes := make(chan int, 2)
	n := 1
	go func() { codes <- httpserver.Run(ctx, newServer(iss), ln, logger); stop() }()
	if mtls != nil {
		n++
		logger.Info("dev-issuer mtls listening", "addr", mtls.ln.Addr().String(), "token_endpoint", mtls.url)
		go func() { codes <- httpserver.Run(ctx, newServer(iss.MTLSHandler()), mtls.ln, logger); stop() }()
	}
	code := 0
	for range n {
		code = max(code, <-codes)
	}
	return code
}

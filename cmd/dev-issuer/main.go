// Command dev-issuer runs a local stand-in for an Auth0 tenant (see package
// internal/devissuer). It is for development and demos only, never production.
package main

import (
	"context"
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
	adminAllow := fs.String("admin-allow", "", "comma-separated networks (CIDR or address) whose callers may use /admin/*, besides loopback, e.g. a compose network: 172.16.0.0/12,192.168.0.0/16,10.0.0.0/8; empty = loopback only")
	fs.Usage = func() {
		out := fs.Output()
		fmt.Fprint(out, banner)
		fmt.Fprintf(out, "\nUsage: dev-issuer [flags]\n\n"+
			"Serves POST /oauth/token (client credentials), GET /.well-known/jwks.json,\n"+
			"GET /.well-known/openid-configuration, and, to loopback callers (and\n"+
			"-admin-allow networks) only, POST /admin/rotate, POST /admin/revoke?kid=KID,\n"+
			"GET /admin/keys.\n\nFlags:\n")
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

	clients := devissuer.DemoClients()
	if *clientsFile != "" {
		if clients, err = devissuer.LoadClients(*clientsFile); err != nil {
			logger.Error("load clients", "error", err)
			return 1
		}
	}
	iss, err := devissuer.New(devissuer.Options{
		Issuer:     *issuer,
		Clients:    clients,
		Profile:    devissuer.Profile(*profile),
		TokenTTL:   *tokenTTL,
		JWKSMaxAge: *jwksMaxAge,
		KeyFile:    *keyFile,
		Logger:     logger,
		AdminAllow: allow,
	})
	if err != nil {
		logger.Error("start issuer", "error", err)
		return 1
	}
	if err := devissuer.WriteClientLines(os.Stdout, clients); err != nil {
		logger.Error("print clients", "error", err)
		return 1
	}
	return serve(logger, *addr, iss, iss.Keys(), allow)
}

func serve(logger *slog.Logger, addr string, h http.Handler, keys devissuer.KeyState, adminAllow []netip.Prefix) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	ln, err := net.Listen("tcp", addr)
	if err != nil {
		logger.Error("listen", "addr", addr, "error", err)
		return 1
	}
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      10 * time.Second,
		IdleTimeout:       60 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	logger.Info("dev-issuer listening", "addr", ln.Addr().String(), "current_kid", keys.Current, "next_kid", keys.Next, "admin_allow", adminAllow)
	return httpserver.Run(ctx, srv, ln, logger)
}

// Command jwt-authz is Envoy's external-authorization (ext_authz) gRPC
// server for OAuth2 JWT access tokens, and its small CLI.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"
)

// version and revision are set at build time with -ldflags "-X main.version=... -X
// main.revision=...": the Makefile, the Dockerfile and the release builder take the version from
// the VERSION file and the revision from git when there is one.
var (
	version  = "dev"
	revision = ""
)

func main() { os.Exit(run(context.Background(), os.Args[1:], os.Stdout, os.Stderr)) }

const usage = `jwt-authz — Envoy ext_authz server for OAuth2 JWT access tokens

Usage:
  jwt-authz serve    -config FILE [-grpc-addr ADDR] [-http-addr ADDR] [-log-format json|text] [-log-level LEVEL]
  jwt-authz validate -config FILE
  jwt-authz check    -addr HOST:PORT [-token T | -token - | -token-file FILE] [-path /] [-tls] [-ca FILE] ...
                     [-dpop-key FILE] [-client-cert FILE]
  jwt-authz dpop-proof -key FILE -url URL [-method POST] [-token T]
  jwt-authz keygen   [-type ec|rsa|ed25519] -out FILE
  jwt-authz version

Run 'jwt-authz COMMAND -h' for a command's flags, examples and exit codes.
`

// run is main without the exit, so tests drive the real commands.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "serve":
		return serve(ctx, args[1:], stdout, stderr)
	case "validate":
		return validate(args[1:], stdout, stderr)
	case "check":
		return check(ctx, args[1:], os.Stdin, stdout, stderr)
	case "dpop-proof":
		return dpopProof(args[1:], os.Stdin, stdout, stderr)
	case "keygen":
		return keygen(args[1:], stdout, stderr)
	case "version", "-version", "--version":
		if code, ok := newFlags("version", stdout, stderr).parse(args[1:]); !ok {
			return code
		}
		fmt.Fprint(stdout, versionLine())
		return 0
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	}
	fmt.Fprintf(stderr, "jwt-authz: unknown command %q\n\n%s", args[0], usage)
	return 2
}

// versionLine is what `jwt-authz version` prints: "jwt-authz VERSION GOVERSION", then the
// revision when the build knew it.
func versionLine() string {
	if revision == "" {
		return fmt.Sprintf("jwt-authz %s %s\n", version, runtime.Version())
	}
	return fmt.Sprintf("jwt-authz %s %s %s\n", version, runtime.Version(), revision)
}

// flags is a subcommand's flag set, with the help that -h prints.
type flags struct {
	*flag.FlagSet
	name   string
	stdout io.Writer
	stderr io.Writer
}

func newFlags(name string, stdout, stderr io.Writer) *flags {
	fs := flag.NewFlagSet("jwt-authz "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	// The flag package prints the problem itself; parse adds the pointer
	// to -h, and prints the help on stdout when it was asked for.
	fs.Usage = func() {}
	return &flags{FlagSet: fs, name: name, stdout: stdout, stderr: stderr}
}

// parse parses args; when it returns false the command exits with code:
// 0 after -h (help on stdout), 2 after a bad flag.
func (f *flags) parse(args []string) (code int, ok bool) {
	err := f.Parse(args)
	switch {
	case err == nil && f.NArg() > 0:
		fmt.Fprintf(f.stderr, "jwt-authz %s: unexpected argument %q (see jwt-authz %s -h)\n", f.name, f.Arg(0), f.name)
		return 2, false
	case err == nil:
		return 0, true
	case errors.Is(err, flag.ErrHelp):
		f.help(f.stdout)
		return 0, false
	}
	fmt.Fprintf(f.stderr, "see jwt-authz %s -h\n", f.name)
	return 2, false
}

// help writes the command's description, flags, examples and exit codes.
func (f *flags) help(w io.Writer) {
	h := helps[f.name]
	fmt.Fprintf(w, "%s\n\nUsage:\n  jwt-authz %s\n\nFlags:\n", h.description, h.synopsis)
	f.SetOutput(w)
	f.PrintDefaults()
	f.SetOutput(f.stderr)
	fmt.Fprintf(w, "\nExamples:\n%s\nExit codes:\n%s", h.examples, h.exits)
}

type help struct{ description, synopsis, examples, exits string }

var helps = map[string]help{
	"serve": {
		description: `jwt-authz serve runs the ext_authz gRPC server (with grpc.health.v1 and reflection) and
the HTTP listener (/metrics, /healthz, /readyz, /debug/keys, and the HTTP authorization mode when
http_authz.enabled). It logs JSON on stderr and never logs a token, authorization or cookie value.
SIGHUP or a change of the config file reloads it; SIGTERM or SIGINT stops it gracefully.`,
		synopsis: "serve -config FILE [-grpc-addr ADDR] [-http-addr ADDR] [-log-format json|text] [-log-level LEVEL]",
		examples: `  jwt-authz serve -config /etc/jwt-authz/config.yaml
  jwt-authz serve -config examples/local.yaml -log-format text -log-level debug
`,
		exits: `  0  stopped by SIGTERM or SIGINT after a graceful shutdown
  1  could not start (a bad config, a listener that cannot bind)
  2  bad flags
`,
	},
	"validate": {
		description: `jwt-authz validate reads a config file and prints every problem, each with its field path
(such as providers[0].jwks.uri), or FILE: ok. It fetches nothing: key sets are not checked.`,
		synopsis: "validate -config FILE",
		examples: `  jwt-authz validate -config /etc/jwt-authz/config.yaml
  kubectl get configmap jwt-authz -o jsonpath='{.data.config\.yaml}' > c.yaml && jwt-authz validate -config c.yaml
`,
		exits: `  0  the config is valid
  1  the config has problems (printed on stderr, one a line)
  2  bad flags
`,
	},
	"check": {
		description: `jwt-authz check sends one CheckRequest, as Envoy would, to a running jwt-authz and prints the
decision: the reason, the status, and the claim headers it would set upstream (allow) or the
challenge and body (deny). Use it to test a token and a route against a server, production included:
-tls, -ca, -cert and -key speak TLS and mTLS; -token-file FILE or -token - (stdin) keep the token out
of ps and your shell history; -dpop-key FILE proves possession of a DPoP-bound token (a fresh proof
for -method and -scheme://-host-path, sent with 'authorization: DPoP T'), and -client-cert FILE
sends a client certificate as Envoy does for an mTLS-bound one. Common mistakes (the HTTP port instead of the gRPC one, a name that
does not resolve, TLS against plaintext) are explained in a one-line hint.`,
		synopsis: "check [-addr HOST:PORT] [-token T | -token - | -token-file FILE] [-method GET] [-path /] [-host H]\n" +
			"                  [-header 'k: v']... [-context k=v]... [-tls] [-ca FILE] [-cert FILE -key FILE] [-server-name NAME]\n" +
			"                  [-scheme https] [-dpop-key FILE [-dpop-alg ALG]] [-client-cert FILE]",
		examples: `  jwt-authz check -addr 127.0.0.1:9001 -token "$TOKEN" -path /echo
  jwt-authz check -addr 127.0.0.1:9001 -path /admin -method POST -context scopes=admin:write
  printf %s "$TOKEN" | jwt-authz check -addr jwt-authz.auth.svc:9001 -token - -path /v1/orders
  jwt-authz check -addr jwt-authz.example.com:9001 -tls -ca ca.pem -cert client.pem -key client-key.pem \
      -token-file token.txt -path /v1/orders -host api.example.com
  jwt-authz check -addr 127.0.0.1:9001 -token "$DPOP_TOKEN" -dpop-key dpop.key -scheme http -host 127.0.0.1:10000 -path /echo
  jwt-authz check -addr 127.0.0.1:9001 -token "$MTLS_TOKEN" -client-cert client.pem -path /echo
`,
		exits: `  0  allowed
  1  denied (the reason, status and challenge are printed)
  2  could not ask: bad flags, no connection, TLS failure (a hint follows the error)
`,
	},
	"version": {
		description: `jwt-authz version prints the version and the Go version it was built with.`,
		synopsis:    "version",
		examples:    "  jwt-authz version\n",
		exits:       "  0  always\n",
	},
}

// multiFlag collects a repeated flag.
type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ", ") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

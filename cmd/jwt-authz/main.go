// Command jwt-authz is Envoy's external-authorization (ext_authz) gRPC
// server for OAuth2 JWT access tokens, and its small CLI.
package main

import (
	"context"
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
  jwt-authz check    -addr HOST:PORT [-token T] [-method GET] [-path /] [-host H] [-header 'k: v']... [-context k=v]...
  jwt-authz version
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
		return check(ctx, args[1:], stdout, stderr)
	case "version", "-version", "--version":
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

func newFlags(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("jwt-authz "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}

// multiFlag collects a repeated flag.
type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ", ") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

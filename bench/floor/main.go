// Command floor is the empty ext_authz server of the load benchmark: it
// answers OK to every Check without looking at it, so its cost per request
// is gRPC's alone. bench/loadtest.sh measures jwt-authz against it.
//
// With -shaped it sends instead an allowed answer of jwt-authz's shape
// (the claim headers of bench/mint's config with typical values, and the
// dynamic metadata), built once at start and marshalled by gRPC for every
// Check: the floor of a server that must send such an answer.
//
// It serves envoy.service.auth.v3.Authorization and server reflection (for
// ghz) on -addr, prints the bound address on stdout, and stops on SIGTERM
// or SIGINT.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"syscall"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/reflection"

	"github.com/jwtauthz/jwt-authz/authz"
	"github.com/jwtauthz/jwt-authz/envoy"
)

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

// server allows everything with one answer.
type server struct {
	authv3.UnimplementedAuthorizationServer
	// answer is shared: it is never modified.
	answer *authv3.CheckResponse
}

var _ authv3.AuthorizationServer = (*server)(nil)

func (s server) Check(context.Context, *authv3.CheckRequest) (*authv3.CheckResponse, error) {
	return s.answer, nil
}

// shaped is the answer jwt-authz gives a token of bench/mint on the api
// rule, rendered by the envoy adapter.
func shaped() *authv3.CheckResponse {
	const scope = "read:target write:target read:users openid profile"
	d := authz.Decision{Allow: true, Reason: authz.ReasonOK, Status: 200, Provider: "tenant", Rule: "api",
		Headers: []authz.Header{{Name: "x-jwt-sub", Value: "svc-0000000@clients"}, {Name: "x-jwt-scope", Value: scope},
			{Name: "x-jwt-client-id", Value: "k3yQm2Zp9VbX7nR4tL8wC1dF6gH0jS5a"},
			{Name: "x-jwt-permissions", Value: "read:target,write:target,read:users"}},
		Metadata: authz.Metadata{Issuer: "https://tenant.example.com/",
			Subject: "svc-0000000@clients", ClientID: "k3yQm2Zp9VbX7nR4tL8wC1dF6gH0jS5a", Scope: scope}}
	return envoy.Response(&d)
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("floor", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "127.0.0.1:0", "listen address")
	withShape := fs.Bool("shaped", false, "answer with an allowed response of jwt-authz's shape instead of an empty one")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	srv := server{answer: &authv3.CheckResponse{Status: &rpcstatus.Status{Code: 0}}}
	if *withShape {
		srv.answer = shaped()
	}
	lis, err := net.Listen("tcp", *addr)
	if err != nil {
		fmt.Fprintf(stderr, "floor: %v\n", err)
		return 1
	}
	gs := grpc.NewServer()
	authv3.RegisterAuthorizationServer(gs, srv)
	reflection.Register(gs)
	fmt.Fprintln(stdout, lis.Addr().String())
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	go func() {
		<-ctx.Done()
		gs.GracefulStop()
	}()
	if err := gs.Serve(lis); err != nil {
		fmt.Fprintf(stderr, "floor: %v\n", err)
		return 1
	}
	return 0
}

// Command floor is the empty ext_authz server of the load benchmark: it
// answers OK to every Check without looking at it, so its cost per request
// is gRPC's alone. bench/loadtest.sh measures jwt-authz against it.
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
)

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

// server allows everything.
type server struct {
	authv3.UnimplementedAuthorizationServer
}

var _ authv3.AuthorizationServer = (*server)(nil)

// ok is shared: the response is never modified.
var ok = &authv3.CheckResponse{Status: &rpcstatus.Status{Code: 0}}

func (server) Check(context.Context, *authv3.CheckRequest) (*authv3.CheckResponse, error) {
	return ok, nil
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("floor", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "127.0.0.1:0", "listen address")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	lis, err := net.Listen("tcp", *addr)
	if err != nil {
		fmt.Fprintf(stderr, "floor: %v\n", err)
		return 1
	}
	gs := grpc.NewServer()
	authv3.RegisterAuthorizationServer(gs, server{})
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

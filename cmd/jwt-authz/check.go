package main

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// check sends one CheckRequest and prints the decision. Exit 0 allowed,
// 1 denied, 2 error.
func check(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlags("check", stderr)
	addr := fs.String("addr", "127.0.0.1:9001", "jwt-authz gRPC address")
	token := fs.String("token", "", "bearer token (sent as 'authorization: Bearer T')")
	method := fs.String("method", "GET", "HTTP method")
	path := fs.String("path", "/", "request path, query included")
	host := fs.String("host", "localhost", "request host")
	timeout := fs.Duration("timeout", 5*time.Second, "RPC timeout")
	var headers, contexts multiFlag
	fs.Var(&headers, "header", "request header 'name: value' (repeatable)")
	fs.Var(&contexts, "context", "context extension k=v (repeatable)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	h := map[string]string{":method": *method, ":path": *path, ":authority": *host}
	for _, kv := range headers {
		k, v, ok := strings.Cut(kv, ":")
		if !ok {
			fmt.Fprintf(stderr, "jwt-authz check: -header %q: want 'name: value'\n", kv)
			return 2
		}
		h[strings.ToLower(strings.TrimSpace(k))] = strings.TrimSpace(v)
	}
	if *token != "" {
		h["authorization"] = "Bearer " + *token
	}
	ext := map[string]string{}
	for _, kv := range contexts {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			fmt.Fprintf(stderr, "jwt-authz check: -context %q: want k=v\n", kv)
			return 2
		}
		ext[k] = v
	}
	conn, err := grpc.NewClient(*addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		fmt.Fprintf(stderr, "jwt-authz check: %v\n", err)
		return 2
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	resp, err := authv3.NewAuthorizationClient(conn).Check(ctx, &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{
			Method: *method, Path: *path, Host: *host, Headers: h, Protocol: "HTTP/1.1",
		}},
		ContextExtensions: ext,
	}})
	if err != nil {
		fmt.Fprintf(stderr, "jwt-authz check: %v\n", err)
		return 2
	}
	return printResponse(stdout, resp)
}

func printResponse(w io.Writer, resp *authv3.CheckResponse) int {
	md := resp.GetDynamicMetadata().GetFields()
	reason := md["reason"].GetStringValue()
	if ok := resp.GetOkResponse(); resp.GetStatus().GetCode() == 0 {
		fmt.Fprintf(w, "decision: allow\nreason: %s\nstatus: 200\n", reason)
		for _, k := range []string{"provider", "rule", "subject", "client_id", "scope"} {
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

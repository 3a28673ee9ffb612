package envoy_test

// This file proves the demo's Envoy bootstraps (deploy/envoy/*.yaml) without running Envoy: each file is
// parsed into Envoy's own Bootstrap proto from go-control-plane, validated with the protoc-gen-validate
// rules Envoy itself enforces, and checked for the cross-references the protos cannot express.
//
// ValidateAll() does not descend into google.protobuf.Any, and nearly everything interesting in an
// Envoy config (the HTTP connection manager, ext_authz, the router, protocol options, access logs) is
// an Any-packed typed_config, so the test unpacks every Any it finds, recursively, and validates the
// unpacked message too. The negative tests mutate the good config and assert that each mistake is
// caught, so a passing run means something.

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	extauthzv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_authz/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	upstreamhttpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/anypb"
	"sigs.k8s.io/yaml"

	// Extension types named only by a typed_config "@type": importing them registers them with
	// protoregistry.GlobalTypes, which protojson and anypb use to resolve Any. The packages imported
	// by name above (ext_authz, router, HCM, upstream HTTP options) register themselves as well.
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/file/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/stream/v3"
)

// cfgMaxAuthzTimeout bounds the ext_authz gRPC timeout: every request waits for the check, and the
// server decides from memory (Envoy's own default is 200 ms).
const cfgMaxAuthzTimeout = 500 * time.Millisecond

// cfgDir holds the Envoy configs of the demo, beside the other deployment files.
const cfgDir = "../deploy/envoy"

// cfgFiles returns every Envoy config of the demo, by path.
func cfgFiles(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(cfgDir, "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 2 {
		t.Fatalf("found Envoy configs %q, want at least envoy.yaml and envoy-local.yaml", files)
	}
	return files
}

func TestEnvoyConfigs(t *testing.T) {
	t.Parallel()
	for _, file := range cfgFiles(t) {
		t.Run(filepath.Base(file), func(t *testing.T) {
			t.Parallel()
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			js, err := yaml.YAMLToJSON(data)
			if err != nil {
				t.Fatalf("yaml: %v", err)
			}
			if err := cfgCheck(js); err != nil {
				t.Fatalf("%s is not a valid demo bootstrap:\n%v", file, err)
			}
		})
	}
}

// TestEnvoyConfigShape pins what the demo promises beyond validity: the listener, the routes and the
// per-route context extension of envoy.yaml.
func TestEnvoyConfigShape(t *testing.T) {
	t.Parallel()
	bs, err := cfgParse(cfgJSON(t, cfgTree(t, "envoy.yaml")))
	if err != nil {
		t.Fatal(err)
	}
	var ingress *hcmv3.HttpConnectionManager
	for _, l := range bs.GetStaticResources().GetListeners() {
		if l.GetAddress().GetSocketAddress().GetPortValue() != 10000 {
			continue
		}
		if got := l.GetAddress().GetSocketAddress().GetAddress(); got != "0.0.0.0" {
			t.Errorf("listener %q address = %q, want 0.0.0.0 (reachable from the host through compose)", l.GetName(), got)
		}
		hcm := &hcmv3.HttpConnectionManager{}
		if err := l.GetFilterChains()[0].GetFilters()[0].GetTypedConfig().UnmarshalTo(hcm); err != nil {
			t.Fatal(err)
		}
		ingress = hcm
	}
	if ingress == nil {
		t.Fatal("no listener on port 10000")
	}
	names := func(fs []*hcmv3.HttpFilter) []string {
		var out []string
		for _, f := range fs {
			out = append(out, f.GetName())
		}
		return out
	}
	if got, want := names(ingress.GetHttpFilters()), []string{"envoy.filters.http.ext_authz", "envoy.filters.http.router"}; !slices.Equal(got, want) {
		t.Errorf("ingress http_filters = %q, want %q", got, want)
	}
	if len(ingress.GetAccessLog()) == 0 || !strings.Contains(protojson.Format(ingress.GetAccessLog()[0]), "%DYNAMIC_METADATA(envoy.filters.http.ext_authz)%") {
		t.Error("ingress access log does not print the ext_authz dynamic metadata")
	}
	routes := ingress.GetRouteConfig().GetVirtualHosts()[0].GetRoutes()
	var admin *routev3.Route
	for _, r := range routes {
		if r.GetMatch().GetPathSeparatedPrefix() == "/admin" {
			admin = r
		}
	}
	if admin == nil {
		t.Fatal("no /admin route")
	}
	per := &extauthzv3.ExtAuthzPerRoute{}
	if err := admin.GetTypedPerFilterConfig()["envoy.filters.http.ext_authz"].UnmarshalTo(per); err != nil {
		t.Fatalf("/admin per-route ext_authz config: %v", err)
	}
	if got := per.GetCheckSettings().GetContextExtensions()["scopes"]; got != "admin:write" {
		t.Errorf("/admin context_extensions.scopes = %q, want admin:write", got)
	}
	if last := routes[len(routes)-1].GetMatch().GetPrefix(); last != "/" {
		t.Errorf("last route prefix = %q, want the catch-all /", last)
	}

	// The TLS listener for mTLS-bound tokens: a client certificate is required, any is accepted (the
	// token's binding is what proves possession), and behind it are the same routes and filters.
	var mtls *hcmv3.HttpConnectionManager
	hcmCount, authzCount := 0, 0
	for _, l := range bs.GetStaticResources().GetListeners() {
		for _, fc := range l.GetFilterChains() {
			hcm := &hcmv3.HttpConnectionManager{}
			if err := fc.GetFilters()[0].GetTypedConfig().UnmarshalTo(hcm); err != nil {
				t.Fatal(err)
			}
			hcmCount++
			// No chain passes on an x-forwarded-client-cert header a client made up.
			if got := hcm.GetForwardClientCertDetails(); got != hcmv3.HttpConnectionManager_SANITIZE {
				t.Errorf("listener %q forward_client_cert_details = %v, want SANITIZE", l.GetName(), got)
			}
			for _, f := range hcm.GetHttpFilters() {
				a := &extauthzv3.ExtAuthz{}
				if f.GetTypedConfig().UnmarshalTo(a) != nil {
					continue
				}
				authzCount++
				if !a.GetIncludePeerCertificate() {
					t.Errorf("listener %q: ext_authz without include_peer_certificate", l.GetName())
				}
			}
			if l.GetAddress().GetSocketAddress().GetPortValue() != 10443 {
				continue
			}
			ctx := &tlsv3.DownstreamTlsContext{}
			if err := fc.GetTransportSocket().GetTypedConfig().UnmarshalTo(ctx); err != nil {
				t.Fatalf("listener %q transport socket: %v", l.GetName(), err)
			}
			if !ctx.GetRequireClientCertificate().GetValue() {
				t.Errorf("listener %q does not require a client certificate", l.GetName())
			}
			if got := ctx.GetCommonTlsContext().GetValidationContext().GetTrustChainVerification(); got != tlsv3.CertificateValidationContext_ACCEPT_UNTRUSTED {
				t.Errorf("listener %q trust_chain_verification = %v, want ACCEPT_UNTRUSTED (docs/dpop.md says why)", l.GetName(), got)
			}
			mtls = hcm
		}
	}
	if mtls == nil {
		t.Fatal("no TLS listener on port 10443")
	}
	if authzCount != 2 || hcmCount != 3 {
		t.Errorf("%d ext_authz filters in %d connection managers, want 2 (plaintext and TLS ingress) in 3", authzCount, hcmCount)
	}
	if !proto.Equal(mtls.GetRouteConfig(), ingress.GetRouteConfig()) || len(mtls.GetHttpFilters()) != len(ingress.GetHttpFilters()) {
		t.Error("the TLS listener's routes or filters differ from the plaintext listener's")
	}
	for i := range mtls.GetHttpFilters() {
		if !proto.Equal(mtls.GetHttpFilters()[i], ingress.GetHttpFilters()[i]) {
			t.Errorf("http_filters[%d] differs between the TLS and the plaintext listener", i)
		}
	}
}

// TestEnvoyConfigsAgree keeps envoy-local.yaml the loopback twin of envoy.yaml: with the compose
// service names and 0.0.0.0 read as 127.0.0.1 (and DNS clusters as static ones, and the TLS files'
// mount /etc/envoy as the repository's deploy/envoy) they are equal.
func TestEnvoyConfigsAgree(t *testing.T) {
	t.Parallel()
	toLocal := map[string]string{"0.0.0.0": "127.0.0.1", "mock-target": "127.0.0.1", "jwt-authz": "127.0.0.1", "STRICT_DNS": "STATIC"}
	var rewrite func(v any) any
	rewrite = func(v any) any {
		switch v := v.(type) {
		case map[string]any:
			for k, e := range v {
				if s, ok := e.(string); ok && (k == "address" || k == "type") && toLocal[s] != "" {
					v[k] = toLocal[s]
					continue
				}
				// The TLS files: mounted under /etc/envoy in compose, relative to the repository root
				// for a native Envoy.
				if s, ok := e.(string); ok && k == "filename" && strings.HasPrefix(s, "/etc/envoy/") {
					v[k] = "deploy/envoy/" + strings.TrimPrefix(s, "/etc/envoy/")
					continue
				}
				v[k] = rewrite(e)
			}
		case []any:
			for i, e := range v {
				v[i] = rewrite(e)
			}
		}
		return v
	}
	compose := rewrite(cfgTree(t, "envoy.yaml"))
	local := cfgTree(t, "envoy-local.yaml")
	if diff := cmp.Diff(compose, any(local)); diff != "" {
		t.Errorf("envoy-local.yaml differs from envoy.yaml beyond addresses (-envoy.yaml +envoy-local.yaml):\n%s", diff)
	}
}

// TestEnvoyConfigCatchesMistakes mutates the good envoy.yaml in memory and asserts that every mutation
// is reported, with a message that names the problem.
func TestEnvoyConfigCatchesMistakes(t *testing.T) {
	t.Parallel()
	// Shortcuts into the JSON tree of envoy.yaml; see the listeners and clusters there.
	hcm := func(root map[string]any) map[string]any {
		return cfgAt(t, root, "static_resources", "listeners", 0, "filter_chains", 0, "filters", 0, "typed_config").(map[string]any)
	}
	authz := func(root map[string]any) map[string]any {
		return cfgAt(t, hcm(root), "http_filters", 0, "typed_config").(map[string]any)
	}
	tlsCtx := func(root map[string]any) map[string]any {
		return cfgAt(t, root, "static_resources", "listeners", 1, "filter_chains", 0, "transport_socket", "typed_config").(map[string]any)
	}
	cluster := func(root map[string]any, name string) map[string]any {
		for _, c := range cfgAt(t, root, "static_resources", "clusters").([]any) {
			if c := c.(map[string]any); c["name"] == name {
				return c
			}
		}
		t.Fatalf("no cluster %q", name)
		return nil
	}
	tests := []struct {
		name   string
		mutate func(root map[string]any)
		want   string // a substring of the error
	}{
		{
			name: "misspelt field in the bootstrap",
			mutate: func(root map[string]any) {
				c := cluster(root, "mock_target")
				c["connect_timout"] = c["connect_timeout"]
				delete(c, "connect_timeout")
			},
			want: `unknown field "connect_timout"`,
		},
		{
			name: "misspelt field inside an Any",
			mutate: func(root map[string]any) {
				a := authz(root)
				delete(a, "failure_mode_allow")
				a["failure_mod_allow"] = false
			},
			want: `unknown field "failure_mod_allow"`,
		},
		{
			name: "unknown typed_config type",
			mutate: func(root map[string]any) {
				authz(root)["@type"] = "type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuth"
			},
			want: "ExtAuth",
		},
		{
			name: "bad enum name",
			mutate: func(root map[string]any) {
				authz(root)["status_on_error"] = map[string]any{"code": "ServiceUnavailabel"}
			},
			want: "ServiceUnavailabel",
		},
		{
			name:   "undefined enum number inside an Any",
			mutate: func(root map[string]any) { authz(root)["status_on_error"] = map[string]any{"code": 999} },
			want:   "defined enum values",
		},
		{
			name:   "negative timeout inside an Any",
			mutate: func(root map[string]any) { hcm(root)["request_headers_timeout"] = "-1s" },
			want:   "RequestHeadersTimeout",
		},
		{
			name: "bad value in the bootstrap",
			mutate: func(root map[string]any) {
				cluster(root, "jwt_authz")["health_checks"].([]any)[0].(map[string]any)["timeout"] = "0s"
			},
			want: "HealthCheck.Timeout",
		},
		{
			name: "route to a cluster that does not exist",
			mutate: func(root map[string]any) {
				cfgAt(t, hcm(root), "route_config", "virtual_hosts", 0, "routes", 2, "route").(map[string]any)["cluster"] = "mock_targt"
			},
			want: `unknown cluster "mock_targt"`,
		},
		{
			name: "ext_authz to a cluster that does not exist",
			mutate: func(root map[string]any) {
				cfgAt(t, authz(root), "grpc_service", "envoy_grpc").(map[string]any)["cluster_name"] = "jwt_auth"
			},
			want: `unknown cluster "jwt_auth"`,
		},
		{
			name: "router not last",
			mutate: func(root map[string]any) {
				fs := hcm(root)["http_filters"].([]any)
				fs[0], fs[1] = fs[1], fs[0]
			},
			want: "router filter must be last",
		},
		{
			name: "no ext_authz in front of the target",
			mutate: func(root map[string]any) {
				h := hcm(root)
				h["http_filters"] = h["http_filters"].([]any)[1:]
			},
			want: "no ext_authz filter",
		},
		{
			name:   "fail open",
			mutate: func(root map[string]any) { authz(root)["failure_mode_allow"] = true },
			want:   "failure_mode_allow must be false",
		},
		{
			name:   "shadow mode",
			mutate: func(root map[string]any) { authz(root)["shadow_mode"] = true },
			want:   "shadow_mode must be off",
		},
		{
			name:   "ext_authz timeout too long",
			mutate: func(root map[string]any) { authz(root)["grpc_service"].(map[string]any)["timeout"] = "2s" },
			want:   "grpc_service.timeout must be set, above 0 and at most 500ms (got 2s)",
		},
		{
			name:   "ext_authz timeout missing",
			mutate: func(root map[string]any) { delete(authz(root)["grpc_service"].(map[string]any), "timeout") },
			want:   "grpc_service.timeout must be set",
		},
		{
			name: "request body sent to ext_authz",
			mutate: func(root map[string]any) {
				authz(root)["with_request_body"] = map[string]any{"max_request_bytes": 1024}
			},
			want: "with_request_body must be absent",
		},
		{
			name: "ext_authz cluster without HTTP/2",
			mutate: func(root map[string]any) {
				delete(cluster(root, "jwt_authz"), "typed_extension_protocol_options")
			},
			want: "HTTP/2",
		},
		{
			name: "ext_authz cluster with an HTTP health check",
			mutate: func(root map[string]any) {
				hc := cluster(root, "jwt_authz")["health_checks"].([]any)[0].(map[string]any)
				delete(hc, "grpc_health_check")
				hc["http_health_check"] = map[string]any{"path": "/healthz"}
			},
			want: "gRPC health check",
		},
		{
			name: "per-route config for a filter not in the chain",
			mutate: func(root map[string]any) {
				r := cfgAt(t, hcm(root), "route_config", "virtual_hosts", 0, "routes", 1).(map[string]any)
				per := r["typed_per_filter_config"].(map[string]any)
				per["envoy.filters.http.ext_auth"] = per["envoy.filters.http.ext_authz"]
				delete(per, "envoy.filters.http.ext_authz")
			},
			want: `"envoy.filters.http.ext_auth"`,
		},
		{
			name:   "no client certificate for ext_authz",
			mutate: func(root map[string]any) { authz(root)["include_peer_certificate"] = false },
			want:   "include_peer_certificate must be true",
		},
		{
			name: "no client certificate for ext_authz on the TLS listener",
			mutate: func(root map[string]any) {
				cfgAt(t, root, "static_resources", "listeners", 1, "filter_chains", 0, "filters", 0, "typed_config", "http_filters", 0, "typed_config").(map[string]any)["include_peer_certificate"] = false
			},
			want: "listeners[1].filter_chains[0].filters[0].typed_config<HttpConnectionManager>.http_filters[0].typed_config<ExtAuthz>: include_peer_certificate must be true",
		},
		{
			name:   "client certificate optional",
			mutate: func(root map[string]any) { tlsCtx(root)["require_client_certificate"] = false },
			want:   "require_client_certificate must be true",
		},
		{
			name: "no trusted CA, so no certificate request",
			mutate: func(root map[string]any) {
				delete(cfgAt(t, tlsCtx(root), "common_tls_context", "validation_context").(map[string]any), "trusted_ca")
			},
			want: "trusted_ca.filename must be set",
		},
		{
			name: "server key file missing",
			mutate: func(root map[string]any) {
				cfgAt(t, tlsCtx(root), "common_tls_context", "tls_certificates", 0, "private_key").(map[string]any)["filename"] = "/etc/envoy/certs/nope.pem"
			},
			want: "nope.pem: no such file or directory",
		},
		{
			name: "server certificate and key of different pairs",
			mutate: func(root map[string]any) {
				cfgAt(t, tlsCtx(root), "common_tls_context", "tls_certificates", 0, "certificate_chain").(map[string]any)["filename"] = "/etc/envoy/certs/ca.pem"
			},
			want: "private key does not match public key",
		},
		{
			name: "misspelt field in the TLS context",
			mutate: func(root map[string]any) {
				c := tlsCtx(root)
				c["require_client_certificat"] = true
				delete(c, "require_client_certificate")
			},
			want: `unknown field "require_client_certificat"`,
		},
		{
			name: "no TLS listener",
			mutate: func(root map[string]any) {
				sr := cfgAt(t, root, "static_resources").(map[string]any)
				ls := sr["listeners"].([]any)
				sr["listeners"] = append(ls[:1:1], ls[2:]...)
			},
			want: "no listener with a DownstreamTlsContext",
		},
		{
			name: "admin interface on every address",
			mutate: func(root map[string]any) {
				cfgAt(t, root, "admin", "address", "socket_address").(map[string]any)["address"] = "0.0.0.0"
			},
			want: "the admin interface must stay on loopback",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			root := cfgTree(t, "envoy.yaml")
			tt.mutate(root)
			err := cfgCheck(cfgJSON(t, root))
			if err == nil {
				t.Fatal("the mutated config passed; want an error")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error does not mention %q:\n%v", tt.want, err)
			}
		})
	}
}

// TestValidateAllStopsAtAny shows why cfgValidateDeep exists: a bad value inside an Any-packed
// typed_config passes the bootstrap's own ValidateAll.
func TestValidateAllStopsAtAny(t *testing.T) {
	t.Parallel()
	root := cfgTree(t, "envoy.yaml")
	hcm := cfgAt(t, root, "static_resources", "listeners", 0, "filter_chains", 0, "filters", 0, "typed_config").(map[string]any)
	hcm["request_headers_timeout"] = "-1s"
	bs, err := cfgParse(cfgJSON(t, root))
	if err != nil {
		t.Fatal(err)
	}
	if err := bs.ValidateAll(); err != nil {
		t.Fatalf("Bootstrap.ValidateAll() = %v; this test assumes it does not look inside Any", err)
	}
	if err := cfgValidateDeep(bs); err == nil || !strings.Contains(err.Error(), "RequestHeadersTimeout") {
		t.Errorf("cfgValidateDeep() = %v, want the negative request_headers_timeout", err)
	}
}

// cfgCheck runs every check on a bootstrap in JSON form and returns all problems found.
func cfgCheck(js []byte) error {
	bs, err := cfgParse(js)
	if err != nil {
		return err
	}
	return errors.Join(cfgValidateDeep(bs), cfgCrossCheck(bs))
}

// cfgParse decodes JSON into a Bootstrap the way Envoy reads YAML: unknown fields are errors, and every
// Any must name a registered type.
func cfgParse(js []byte) (*bootstrapv3.Bootstrap, error) {
	bs := &bootstrapv3.Bootstrap{}
	if err := protojson.Unmarshal(js, bs); err != nil {
		return nil, fmt.Errorf("parse: %w", err)
	}
	return bs, nil
}

// cfgValidateDeep runs ValidateAll on the bootstrap and on every message packed in an Any below it.
func cfgValidateDeep(bs *bootstrapv3.Bootstrap) error {
	var errs []error
	walkErr := cfgWalk(bs, func(path string, m proto.Message, packed bool) {
		if path != "" && !packed {
			return // covered by ValidateAll of the enclosing root or unpacked message
		}
		if v, ok := m.(interface{ ValidateAll() error }); ok {
			if err := v.ValidateAll(); err != nil {
				errs = append(errs, fmt.Errorf("validate %s (%s): %w", cfgPathOrRoot(path), m.ProtoReflect().Descriptor().FullName(), err))
			}
		}
	})
	return errors.Join(append(errs, walkErr)...)
}

// cfgCrossCheck checks what the protos cannot: names that must refer to each other, filter order, and
// the demo's security and availability choices.
func cfgCrossCheck(bs *bootstrapv3.Bootstrap) error {
	var errs []error
	fail := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }

	clusters := map[string]bool{}
	for _, c := range bs.GetStaticResources().GetClusters() {
		if clusters[c.GetName()] {
			fail("cluster %q defined twice", c.GetName())
		}
		clusters[c.GetName()] = true
	}
	if a := bs.GetAdmin().GetAddress().GetSocketAddress().GetAddress(); a != "" {
		if ip, err := netip.ParseAddr(a); err != nil || !ip.IsLoopback() {
			fail("admin address %q: the admin interface must stay on loopback", a)
		}
	}

	authzClusters := map[string]bool{}
	tlsListeners := 0
	var hcms []*hcmv3.HttpConnectionManager
	walkErr := cfgWalk(bs, func(path string, m proto.Message, _ bool) {
		switch m := m.(type) {
		case *routev3.RouteAction:
			names := []string{m.GetCluster()}
			if m.GetCluster() == "" {
				names = nil
			}
			for _, w := range m.GetWeightedClusters().GetClusters() {
				names = append(names, w.GetName())
			}
			if m.GetClusterHeader() != "" {
				fail("%s: cluster_header routes cannot be checked; name the cluster", path)
			}
			for _, n := range names {
				if !clusters[n] {
					fail("%s: route to unknown cluster %q", path, n)
				}
			}
		case *corev3.GrpcService_EnvoyGrpc:
			if !clusters[m.GetClusterName()] {
				fail("%s: grpc_service to unknown cluster %q", path, m.GetClusterName())
			}
		case *extauthzv3.ExtAuthz:
			authzClusters[m.GetGrpcService().GetEnvoyGrpc().GetClusterName()] = true
			errs = append(errs, cfgCheckExtAuthz(path, m)...)
		case *hcmv3.HttpConnectionManager:
			hcms = append(hcms, m)
			errs = append(errs, cfgCheckHCM(path, m)...)
		case *tlsv3.DownstreamTlsContext:
			tlsListeners++
			errs = append(errs, cfgCheckDownstreamTLS(path, m)...)
		}
	})
	if tlsListeners == 0 {
		fail("no listener with a DownstreamTlsContext: the demo needs one that asks for client certificates (mTLS-bound tokens)")
	}
	if walkErr != nil {
		errs = append(errs, walkErr)
	}
	if len(authzClusters) == 0 {
		fail("no ext_authz filter anywhere")
	}

	// The clusters ext_authz talks to speak gRPC: HTTP/2 upstream, and gRPC health checks so Envoy
	// stops sending Checks to an instance that is shutting down.
	for _, c := range bs.GetStaticResources().GetClusters() {
		if !authzClusters[c.GetName()] {
			continue
		}
		opts := &upstreamhttpv3.HttpProtocolOptions{}
		packed := c.GetTypedExtensionProtocolOptions()["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"]
		if packed == nil || packed.UnmarshalTo(opts) != nil || opts.GetExplicitHttpConfig().GetHttp2ProtocolOptions() == nil {
			fail("cluster %q: ext_authz over gRPC needs HTTP/2 (typed_extension_protocol_options HttpProtocolOptions explicit_http_config.http2_protocol_options)", c.GetName())
		}
		if !slices.ContainsFunc(c.GetHealthChecks(), func(h *corev3.HealthCheck) bool { return h.GetGrpcHealthCheck() != nil }) {
			fail("cluster %q: no active gRPC health check (health_checks[].grpc_health_check)", c.GetName())
		}
	}
	return errors.Join(errs...)
}

// cfgCheckHCM checks one HTTP connection manager: the router is last, per-route filter configs name a
// filter of the chain, and a chain that routes anywhere but Envoy's own admin checks with ext_authz.
func cfgCheckHCM(path string, hcm *hcmv3.HttpConnectionManager) []error {
	var errs []error
	fail := func(format string, args ...any) { errs = append(errs, fmt.Errorf(path+": "+format, args...)) }

	routerURL := "type.googleapis.com/" + string((&routerv3.Router{}).ProtoReflect().Descriptor().FullName())
	authzURL := "type.googleapis.com/" + string((&extauthzv3.ExtAuthz{}).ProtoReflect().Descriptor().FullName())
	filters := hcm.GetHttpFilters()
	names := map[string]bool{}
	authzAt, routerAt := -1, -1
	for i, f := range filters {
		names[f.GetName()] = true
		switch f.GetTypedConfig().GetTypeUrl() {
		case routerURL:
			routerAt = i
		case authzURL:
			authzAt = i
		}
	}
	if routerAt < 0 || routerAt != len(filters)-1 {
		fail("the router filter must be last in http_filters (it is at %d of %d)", routerAt, len(filters))
	}
	if hcm.GetRouteConfig() == nil {
		fail("no static route_config (this demo has no RDS server)")
	}
	needsAuthz := false
	for _, vh := range hcm.GetRouteConfig().GetVirtualHosts() {
		for key := range vh.GetTypedPerFilterConfig() {
			if !names[key] {
				fail("virtual host %q: typed_per_filter_config for %q, which is not in http_filters", vh.GetName(), key)
			}
		}
		for i, r := range vh.GetRoutes() {
			for key := range r.GetTypedPerFilterConfig() {
				if !names[key] {
					fail("virtual host %q route %d: typed_per_filter_config for %q, which is not in http_filters", vh.GetName(), i, key)
				}
			}
			if c := r.GetRoute().GetCluster(); c != "" && c != "envoy_admin" {
				needsAuthz = true
			}
		}
	}
	if needsAuthz && (authzAt < 0 || authzAt > routerAt) {
		fail("routes reach an upstream but no ext_authz filter runs before the router")
	}
	return errs
}

// cfgCheckExtAuthz checks the ext_authz settings the demo depends on.
func cfgCheckExtAuthz(path string, a *extauthzv3.ExtAuthz) []error {
	var errs []error
	fail := func(format string, args ...any) { errs = append(errs, fmt.Errorf(path+": "+format, args...)) }
	if a.GetFailureModeAllow() {
		fail("failure_mode_allow must be false: an unreachable jwt-authz must not let requests through")
	}
	if a.GetShadowMode() {
		fail("shadow_mode must be off: the decision must be enforced")
	}
	if a.GetGrpcService().GetEnvoyGrpc() == nil {
		fail("grpc_service.envoy_grpc is required (jwt-authz is a gRPC server reached through a cluster)")
	}
	if a.GetTransportApiVersion() != corev3.ApiVersion_V3 {
		fail("transport_api_version must be V3")
	}
	if to := a.GetGrpcService().GetTimeout(); to == nil || to.AsDuration() <= 0 || to.AsDuration() > cfgMaxAuthzTimeout {
		fail("grpc_service.timeout must be set, above 0 and at most %v (got %v)", cfgMaxAuthzTimeout, to.AsDuration())
	}
	if a.GetWithRequestBody() != nil {
		fail("with_request_body must be absent: jwt-authz decides from headers, and buffering bodies costs memory and latency")
	}
	if !a.GetIncludePeerCertificate() {
		fail("include_peer_certificate must be true: jwt-authz needs the client certificate to check an mTLS-bound token (cnf[\"x5t#S256\"])")
	}
	if got := a.GetStatusOnError().GetCode(); got != typev3.StatusCode_ServiceUnavailable {
		fail("status_on_error.code = %v, want ServiceUnavailable (503)", got)
	}
	return errs
}

// cfgCheckDownstreamTLS checks a TLS listener of the demo: it requires a client certificate, and
// Envoy can start with it (the files it names exist, the certificate and key are a pair, the CA
// parses). trusted_ca is required: Envoy asks for a client certificate, and enforces
// require_client_certificate, as part of a validation context with a trusted CA.
func cfgCheckDownstreamTLS(path string, c *tlsv3.DownstreamTlsContext) []error {
	var errs []error
	fail := func(format string, args ...any) { errs = append(errs, fmt.Errorf(path+": "+format, args...)) }
	if !c.GetRequireClientCertificate().GetValue() {
		fail("require_client_certificate must be true: an mTLS-bound token needs the client's certificate")
	}
	common := c.GetCommonTlsContext()
	vc := common.GetValidationContext()
	if vc.GetTrustedCa().GetFilename() == "" {
		fail("common_tls_context.validation_context.trusted_ca.filename must be set: Envoy asks for client certificates through a validation context with a trusted CA")
	} else if pemBytes, err := os.ReadFile(cfgHostPath(vc.GetTrustedCa().GetFilename())); err != nil {
		fail("trusted_ca: %v", err)
	} else if !x509.NewCertPool().AppendCertsFromPEM(pemBytes) {
		fail("trusted_ca %s: no PEM certificate", vc.GetTrustedCa().GetFilename())
	}
	if len(common.GetTlsCertificates()) != 1 {
		fail("want one tls_certificates entry, got %d", len(common.GetTlsCertificates()))
	}
	for _, tc := range common.GetTlsCertificates() {
		chain, key := tc.GetCertificateChain().GetFilename(), tc.GetPrivateKey().GetFilename()
		pair, err := tls.LoadX509KeyPair(cfgHostPath(chain), cfgHostPath(key))
		if err != nil {
			fail("tls_certificates %s and %s: %v", chain, key, err)
			continue
		}
		leaf := pair.Leaf
		if soon := time.Now().Add(30 * 24 * time.Hour); soon.After(leaf.NotAfter) {
			fail("%s expires on %s: run deploy/envoy/certs/generate.sh", chain, leaf.NotAfter.Format(time.DateOnly))
		}
		for _, name := range []string{"localhost", "127.0.0.1"} {
			if err := leaf.VerifyHostname(name); err != nil {
				fail("%s: %v", chain, err)
			}
		}
	}
	return errs
}

// cfgHostPath is where a file an Envoy config names is in the repository: compose mounts
// deploy/envoy at /etc/envoy; a native Envoy runs from the repository root.
func cfgHostPath(name string) string {
	if rest, ok := strings.CutPrefix(name, "/etc/envoy/"); ok {
		return filepath.Join(cfgDir, filepath.FromSlash(rest))
	}
	if filepath.IsAbs(name) {
		return name
	}
	return filepath.Join("..", filepath.FromSlash(name))
}

// cfgWalk calls fn for m and every message below it, in lists and maps too. Each Any is unpacked with
// the global registry and its content visited with packed = true. path is a readable field path.
func cfgWalk(m proto.Message, fn func(path string, m proto.Message, packed bool)) error {
	var errs []error
	var walk func(path string, m protoreflect.Message, packed bool)
	walk = func(path string, m protoreflect.Message, packed bool) {
		fn(path, m.Interface(), packed)
		if m.Descriptor().FullName() == "google.protobuf.Any" {
			a, ok := m.Interface().(*anypb.Any)
			if !ok {
				errs = append(errs, fmt.Errorf("%s: Any of unexpected Go type %T", cfgPathOrRoot(path), m.Interface()))
				return
			}
			inner, err := anypb.UnmarshalNew(a, proto.UnmarshalOptions{})
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: unpack %s: %w", cfgPathOrRoot(path), a.GetTypeUrl(), err))
				return
			}
			walk(path+"<"+string(inner.ProtoReflect().Descriptor().Name())+">", inner.ProtoReflect(), true)
			return
		}
		m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
			name := path + "." + string(fd.Name())
			switch {
			case fd.IsList() && fd.Message() != nil:
				l := v.List()
				for i := range l.Len() {
					walk(fmt.Sprintf("%s[%d]", name, i), l.Get(i).Message(), false)
				}
			case fd.IsMap() && fd.MapValue().Message() != nil:
				v.Map().Range(func(k protoreflect.MapKey, v protoreflect.Value) bool {
					walk(fmt.Sprintf("%s[%q]", name, k.String()), v.Message(), false)
					return true
				})
			case !fd.IsList() && !fd.IsMap() && fd.Message() != nil:
				walk(name, v.Message(), false)
			}
			return true
		})
	}
	walk("", m.ProtoReflect(), false)
	return errors.Join(errs...)
}

func cfgPathOrRoot(path string) string {
	if path == "" {
		return "bootstrap"
	}
	return strings.TrimPrefix(path, ".")
}

// cfgTree reads a YAML file of cfgDir as a generic JSON tree, for mutation.
func cfgTree(t *testing.T, file string) map[string]any {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(cfgDir, file))
	if err != nil {
		t.Fatal(err)
	}
	var root map[string]any
	if err := yaml.Unmarshal(data, &root); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	return root
}

func cfgJSON(t *testing.T, root map[string]any) []byte {
	t.Helper()
	js, err := json.Marshal(root)
	if err != nil {
		t.Fatal(err)
	}
	return js
}

// cfgAt follows a path of map keys (string) and list indexes (int) through a JSON tree.
func cfgAt(t *testing.T, v any, path ...any) any {
	t.Helper()
	for i, p := range path {
		switch k := p.(type) {
		case string:
			m, ok := v.(map[string]any)
			if !ok || m[k] == nil {
				t.Fatalf("no key %q at %v", k, path[:i])
			}
			v = m[k]
		case int:
			l, ok := v.([]any)
			if !ok || k >= len(l) {
				t.Fatalf("no index %d at %v", k, path[:i])
			}
			v = l[k]
		}
	}
	return v
}

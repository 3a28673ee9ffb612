// Package istio holds jwt-authz's Istio configuration; its test decodes
// it against Istio's own API types (istio.io/api), strictly.
package istio

import (
	"encoding/json"
	"fmt"
	"os"
	"testing"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	meshv1alpha1 "istio.io/api/mesh/v1alpha1"
	securityv1beta1 "istio.io/api/security/v1beta1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/jwtauthz/jwt-authz/deploy/internal/k8sobj"
)

// istioOperator is the envelope of meshconfig.yaml; only spec.meshConfig
// may be set.
type istioOperator struct {
	metav1.TypeMeta `json:",inline"`
	Spec            struct {
		MeshConfig json.RawMessage `json:"meshConfig"`
	} `json:"spec"`
}

// resource is a Kubernetes object whose spec is an Istio proto.
type resource struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              json.RawMessage `json:"spec"`
}

// decodeStrict decodes YAML into the envelope (unknown fields fail) and
// returns it; protojson then decodes the proto part, where unknown fields
// fail too (istio.io/client-go's own UnmarshalJSON allows them, so it is
// not used for the check).
func decodeStrict(b []byte, envelope any, protoJSON func() []byte, m proto.Message) error {
	if err := k8sobj.StrictYAML(b, envelope); err != nil {
		return err
	}
	return protojson.Unmarshal(protoJSON(), m)
}

func loadMesh(b []byte) (*meshv1alpha1.MeshConfig, error) {
	var op istioOperator
	mc := &meshv1alpha1.MeshConfig{}
	if err := decodeStrict(b, &op, func() []byte { return op.Spec.MeshConfig }, mc); err != nil {
		return nil, err
	}
	if op.APIVersion != "install.istio.io/v1alpha1" || op.Kind != "IstioOperator" {
		return nil, fmt.Errorf("%s %s, want install.istio.io/v1alpha1 IstioOperator", op.APIVersion, op.Kind)
	}
	return mc, nil
}

func loadPolicy(b []byte) (*resource, *securityv1beta1.AuthorizationPolicy, error) {
	var r resource
	ap := &securityv1beta1.AuthorizationPolicy{}
	if err := decodeStrict(b, &r, func() []byte { return r.Spec }, ap); err != nil {
		return nil, nil, err
	}
	if r.APIVersion != "security.istio.io/v1" || r.Kind != "AuthorizationPolicy" {
		return nil, nil, fmt.Errorf("%s %s, want security.istio.io/v1 AuthorizationPolicy", r.APIVersion, r.Kind)
	}
	return &r, ap, nil
}

func read(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestIstioConfig: the extension provider and the policy decode into
// Istio's types, name each other, and point at the Service of
// deploy/kubernetes, failing closed.
func TestIstioConfig(t *testing.T) {
	t.Parallel()
	mc, err := loadMesh(read(t, "meshconfig.yaml"))
	if err != nil {
		t.Fatalf("meshconfig.yaml: %v", err)
	}
	_, ap, err := loadPolicy(read(t, "authorizationpolicy.yaml"))
	if err != nil {
		t.Fatalf("authorizationpolicy.yaml: %v", err)
	}
	if len(mc.GetExtensionProviders()) != 1 {
		t.Fatalf("%d extension providers, want 1", len(mc.GetExtensionProviders()))
	}
	p := mc.GetExtensionProviders()[0]
	g := p.GetEnvoyExtAuthzGrpc()
	if g == nil {
		t.Fatalf("provider %s is not envoyExtAuthzGrpc", p.GetName())
	}
	if g.GetFailOpen() {
		t.Error("failOpen: true lets every request through while jwt-authz is unreachable")
	}
	if g.GetTimeout().AsDuration() <= 0 || g.GetStatusOnError() == "" {
		t.Errorf("timeout %v, statusOnError %q: set both", g.GetTimeout(), g.GetStatusOnError())
	}
	if g.GetIncludeRequestBodyInCheck() != nil {
		t.Error("includeRequestBodyInCheck: jwt-authz does not read bodies")
	}
	if ap.GetAction() != securityv1beta1.AuthorizationPolicy_CUSTOM || ap.GetProvider().GetName() != p.GetName() {
		t.Errorf("policy action %v provider %q, want CUSTOM %q", ap.GetAction(), ap.GetProvider().GetName(), p.GetName())
	}

	// The Service and namespace of deploy/kubernetes.
	var svc struct {
		Metadata struct{ Name string }
		Spec     struct {
			Ports []struct {
				Name string
				Port uint32
			}
		}
	}
	if err := yaml.Unmarshal(read(t, "../kubernetes/service.yaml"), &svc); err != nil {
		t.Fatal(err)
	}
	var kust struct{ Namespace string }
	if err := yaml.Unmarshal(read(t, "../kubernetes/kustomization.yaml"), &kust); err != nil {
		t.Fatal(err)
	}
	if want := svc.Metadata.Name + "." + kust.Namespace + ".svc.cluster.local"; g.GetService() != want {
		t.Errorf("service %q, want %q", g.GetService(), want)
	}
	for _, sp := range svc.Spec.Ports {
		if sp.Name == "grpc" && sp.Port != g.GetPort() {
			t.Errorf("port %d, the Service's grpc port is %d", g.GetPort(), sp.Port)
		}
	}
}

// TestIstioStrict is the negative test: misspelt fields fail, in the
// envelope and inside the protos.
func TestIstioStrict(t *testing.T) {
	t.Parallel()
	mesh := string(read(t, "meshconfig.yaml"))
	policy := string(read(t, "authorizationpolicy.yaml"))
	tests := []struct {
		name string
		load func([]byte) error
		doc  string
		from string
		to   string
	}{
		{"provider field", meshErr, mesh, "failOpen:", "failopen:"},
		{"provider kind", meshErr, mesh, "envoyExtAuthzGrpc:", "envoyExtAuthzGRPC:"},
		{"operator spec", meshErr, mesh, "  meshConfig:", "  meshconfig:"},
		{"policy action", policyErr, policy, "action: CUSTOM", "action: CUSTOMER"},
		{"policy field", policyErr, policy, "notPaths:", "notPath:"},
		{"policy metadata", policyErr, policy, "  namespace: demo", "  namespaces: demo"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			bad := replaceOnce(t, tt.doc, tt.from, tt.to)
			if err := tt.load([]byte(bad)); err == nil {
				t.Errorf("%q → %q decoded without error", tt.from, tt.to)
			}
		})
	}
}

func meshErr(b []byte) error { _, err := loadMesh(b); return err }

func policyErr(b []byte) error { _, _, err := loadPolicy(b); return err }

func replaceOnce(t *testing.T, s, from, to string) string {
	t.Helper()
	for i := 0; i+len(from) <= len(s); i++ {
		if s[i:i+len(from)] == from {
			return s[:i] + to + s[i+len(from):]
		}
	}
	t.Fatalf("no %q", from)
	return ""
}

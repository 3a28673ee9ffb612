// Package kubernetes holds jwt-authz's kustomize base (this directory) and
// the optional monitoring component (components/monitoring); its test
// decodes each object strictly into the Kubernetes API types and runs the
// checks every jwt-authz deployment must pass (deploy/internal/k8sobj).
package kubernetes

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/jwtauthz/jwt-authz/deploy/internal/k8sobj"
)

// kustomization is the part of kustomize's Kustomization (and Component)
// these files use; strict decoding makes any other field an error.
type kustomization struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Namespace  string `json:"namespace,omitempty"`
	Labels     []struct {
		Pairs map[string]string `json:"pairs"`
	} `json:"labels,omitempty"`
	Resources  []string `json:"resources"`
	Components []string `json:"components,omitempty"`
	Images     []struct {
		Name    string `json:"name"`
		NewName string `json:"newName,omitempty"`
		NewTag  string `json:"newTag,omitempty"`
		Digest  string `json:"digest,omitempty"`
	} `json:"images,omitempty"`
}

// load decodes the kustomization in dir and every object it lists,
// strictly; every *.yaml file of dir must be listed, one object per file.
func load(t *testing.T, dir string) (*kustomization, *k8sobj.Objects) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "kustomization.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	k := &kustomization{}
	if err := k8sobj.StrictYAML(b, k); err != nil {
		t.Fatalf("%s/kustomization.yaml: %v", dir, err)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*.yaml"))
	for i, f := range files {
		files[i] = filepath.Base(f)
	}
	files = slices.DeleteFunc(files, func(f string) bool { return f == "kustomization.yaml" })
	if got := slices.Sorted(slices.Values(k.Resources)); !slices.Equal(got, files) {
		t.Errorf("%s: kustomization resources %v, files %v: every manifest must be listed, and only those", dir, got, files)
	}
	o := &k8sobj.Objects{}
	for _, f := range k.Resources {
		b, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(b, []byte("\n---")) {
			t.Errorf("%s: one object per file", f)
		}
		if err := o.Decode(b); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
	if t.Failed() {
		t.FailNow()
	}
	return k, o
}

// TestManifestsDecodeStrictly: every object of the base decodes into its
// API type with no unknown field, the base needs no CRD (it applies on a
// cluster without the Prometheus Operator), and the pieces pass the checks
// every deployment must pass: selectors, ports, probes, non-root,
// GOMEMLIMIT under the limit, the ConfigMap's config valid, its cache_file
// on the writable volume.
func TestManifestsDecodeStrictly(t *testing.T) {
	t.Parallel()
	k, o := load(t, ".")
	if k.Kind != "Kustomization" {
		t.Errorf("kind %q", k.Kind)
	}
	for name, n := range map[string]int{
		"Namespace": len(o.Namespaces), "ConfigMap": len(o.ConfigMaps), "Deployment": len(o.Deployments),
		"HorizontalPodAutoscaler": len(o.HPAs), "PodDisruptionBudget": len(o.PDBs), "NetworkPolicy": len(o.NetworkPolicies),
	} {
		if n != 1 {
			t.Errorf("%d %s, want 1", n, name)
		}
	}
	if len(o.ServiceMonitors)+len(o.PrometheusRules) > 0 {
		t.Error("the base holds Prometheus Operator objects: it would not apply on a cluster without the operator's CRDs")
	}
	if k.Namespace != o.Namespaces[0].Name {
		t.Errorf("kustomization namespace %q, Namespace %q", k.Namespace, o.Namespaces[0].Name)
	}
	cfg, errs := k8sobj.Check(o)
	for _, err := range errs {
		t.Error(err)
	}
	if cfg == nil {
		t.FailNow()
	}
	if got := cfg.GetProviders()[0].GetJwks().GetCacheFile(); got != "/var/cache/jwt-authz/auth0.json" {
		t.Errorf("cache_file %q", got)
	}

	// Two Services: the ClusterIP one (Istio, gateways) and a headless one
	// whose DNS name lists every ready pod (plain Envoy's STRICT_DNS).
	var clusterIP, headless int
	for _, s := range o.Services {
		if s.Spec.ClusterIP == "None" {
			headless++
		} else {
			clusterIP++
		}
	}
	if clusterIP != 1 || headless != 1 {
		t.Errorf("%d ClusterIP and %d headless Services, want one of each", clusterIP, headless)
	}

	// The image is a released version, and the kustomization names it so
	// that `images:` (or `kustomize edit set image`) overrides it.
	img := o.Deployments[0].Spec.Template.Spec.Containers[0].Image
	name, tag, _ := strings.Cut(img, ":")
	if len(k.Images) != 1 || k.Images[0].Name != name || k.Images[0].NewTag != tag {
		t.Errorf("image %s; kustomization images %+v: want the image's name with its tag", img, k.Images)
	}
	if want := appVersion(t); tag != want {
		t.Errorf("image tag %s, the Helm chart's appVersion is %s: one version everywhere", tag, want)
	}
}

// appVersion is the Helm chart's appVersion, the released version.
func appVersion(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("../helm/jwt-authz/Chart.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var chart struct {
		AppVersion string `json:"appVersion"`
	}
	if err := k8sobj.StrictYAMLSubset(b, &chart); err != nil {
		t.Fatal(err)
	}
	return chart.AppVersion
}

// TestMonitoringComponent: the component decodes strictly, its
// ServiceMonitor scrapes the base's Service, and its PrometheusRule holds
// exactly the rules of deploy/prometheus/alerts.yaml.
func TestMonitoringComponent(t *testing.T) {
	t.Parallel()
	k, comp := load(t, "components/monitoring")
	if k.APIVersion != "kustomize.config.k8s.io/v1alpha1" || k.Kind != "Component" {
		t.Errorf("components/monitoring: %s %s, want a kustomize Component", k.APIVersion, k.Kind)
	}
	if len(comp.ServiceMonitors) != 1 || len(comp.PrometheusRules) != 1 {
		t.Fatalf("%d ServiceMonitors, %d PrometheusRules; want one of each", len(comp.ServiceMonitors), len(comp.PrometheusRules))
	}
	_, base := load(t, ".")
	base.ServiceMonitors = comp.ServiceMonitors
	if _, errs := k8sobj.Check(base); len(errs) > 0 {
		t.Errorf("base with the component: %v", errs)
	}
	var rules k8sobj.RuleGroups
	b, err := os.ReadFile("../prometheus/alerts.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := k8sobj.StrictYAML(b, &rules); err != nil {
		t.Fatal(err)
	}
	if got := comp.PrometheusRules[0].Spec; !reflect.DeepEqual(got, rules) || len(rules.Groups) == 0 {
		t.Errorf("the PrometheusRule's spec differs from deploy/prometheus/alerts.yaml; regenerate its spec from that file's groups")
	}
}

// TestStrictDecodingCatchesMistakes is the negative test: a misspelt or
// unknown field, at the top or deep inside, fails.
func TestStrictDecodingCatchesMistakes(t *testing.T) {
	t.Parallel()
	good, err := os.ReadFile("deployment.yaml")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		from string
		to   string
	}{
		{"misspelt top-level spec field", "  replicas: 3", "  replicas: 3\n  replica: 3"},
		{"misspelt probe field", "          periodSeconds: 5", "          periodSecond: 5"},
		{"unknown container field", "        imagePullPolicy: IfNotPresent", "        imagePullPolicy: IfNotPresent\n        imagePulPolicy: Always"},
		{"field in the wrong letter case", "        imagePullPolicy: IfNotPresent", "        ImagePullPolicy: IfNotPresent"},
		{"wrong type", "  replicas: 3", "  replicas: three"},
		{"duplicate key", "  replicas: 3", "  replicas: 3\n  replicas: 4"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if !bytes.Contains(good, []byte(tt.from)) {
				t.Fatalf("deployment.yaml has no %q", tt.from)
			}
			bad := bytes.Replace(good, []byte(tt.from), []byte(tt.to), 1)
			if err := (&k8sobj.Objects{}).Decode(bad); err == nil {
				t.Errorf("decoded without error")
			}
		})
	}
	for file, swap := range map[string][2]string{
		"components/monitoring/servicemonitor.yaml": {"scrapeTimeout:", "scrape_timeout:"},
		"components/monitoring/prometheusrule.yaml": {"      for: 15m", "      for_: 15m"},
	} {
		good, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		bad := bytes.Replace(good, []byte(swap[0]), []byte(swap[1]), 1)
		if bytes.Equal(bad, good) {
			t.Fatalf("%s has no %q", file, swap[0])
		}
		if err := (&k8sobj.Objects{}).Decode(bad); err == nil {
			t.Errorf("%s with %s decoded without error", file, swap[1])
		}
	}
}

// TestKustomizeBuild renders the base, and an overlay of the base with the
// monitoring component and an image override, with kubectl's kustomize
// when kubectl is present, and checks what comes out.
func TestKustomizeBuild(t *testing.T) {
	t.Parallel()
	kubectl, err := exec.LookPath("kubectl")
	if err != nil {
		t.Skip("kubectl is not on PATH; the base and the component are still decoded by TestManifestsDecodeStrictly and TestMonitoringComponent")
	}
	build := func(t *testing.T, dir string) *k8sobj.Objects {
		t.Helper()
		out, err := exec.Command(kubectl, "kustomize", dir).CombinedOutput()
		if err != nil {
			t.Fatalf("kubectl kustomize %s: %v\n%s", dir, err, out)
		}
		o := &k8sobj.Objects{}
		if err := o.DecodeAll(out); err != nil {
			t.Fatal(err)
		}
		if _, errs := k8sobj.Check(o); len(errs) > 0 {
			t.Fatalf("kubectl kustomize %s: %v", dir, errs)
		}
		return o
	}
	t.Run("base", func(t *testing.T) {
		t.Parallel()
		o := build(t, ".")
		dep := o.Deployments[0]
		if dep.Namespace != "jwt-authz" || dep.Labels["app.kubernetes.io/part-of"] != "jwt-authz" {
			t.Errorf("rendered Deployment lacks the kustomization's namespace or labels: %s %v", dep.Namespace, dep.Labels)
		}
		if len(o.ServiceMonitors)+len(o.PrometheusRules) > 0 {
			t.Error("the base renders Prometheus Operator objects")
		}
	})
	t.Run("overlay with monitoring and an image digest", func(t *testing.T) {
		t.Parallel()
		// An overlay as a user writes it, outside the repository.
		dir := t.TempDir()
		here, _ := os.Getwd()
		rel, err := filepath.Rel(dir, here)
		if err != nil {
			t.Fatal(err)
		}
		const digest = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
		overlay := "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n" +
			"resources: [" + rel + "]\ncomponents: [" + rel + "/components/monitoring]\n" +
			"images:\n- name: ghcr.io/jwtauthz/jwt-authz\n  newName: registry.example.com/platform/jwt-authz\n  digest: " + digest + "\n"
		if err := os.WriteFile(filepath.Join(dir, "kustomization.yaml"), []byte(overlay), 0o644); err != nil {
			t.Fatal(err)
		}
		o := build(t, dir)
		if len(o.ServiceMonitors) != 1 || len(o.PrometheusRules) != 1 {
			t.Fatalf("%d ServiceMonitors, %d PrometheusRules, want one of each", len(o.ServiceMonitors), len(o.PrometheusRules))
		}
		for _, m := range []string{o.ServiceMonitors[0].Namespace, o.PrometheusRules[0].Namespace} {
			if m != "jwt-authz" {
				t.Errorf("monitoring object in namespace %q, want the base's jwt-authz", m)
			}
		}
		if img, want := o.Deployments[0].Spec.Template.Spec.Containers[0].Image, "registry.example.com/platform/jwt-authz@"+digest; img != want {
			t.Errorf("image %s, want %s", img, want)
		}
	})
}

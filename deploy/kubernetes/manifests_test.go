// Package kubernetes holds jwt-authz's Kubernetes manifests; its test
// decodes each of them strictly into the Kubernetes API types.
package kubernetes

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"

	"github.com/jwtauthz/jwt-authz/config"
)

// kustomization is the part of kustomize's Kustomization these manifests
// use; strict decoding makes any other field an error.
type kustomization struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Namespace  string `json:"namespace"`
	Labels     []struct {
		Pairs map[string]string `json:"pairs"`
	} `json:"labels"`
	Resources []string `json:"resources"`
	Images    []struct {
		Name    string `json:"name"`
		NewName string `json:"newName,omitempty"`
		NewTag  string `json:"newTag,omitempty"`
	} `json:"images"`
}

// serviceMonitor is monitoring.coreos.com/v1 ServiceMonitor, as far as these
// manifests use it: the operator's Go types are a large module, and strict
// decoding into this subset still fails on a misspelt field.
type serviceMonitor struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              struct {
		Selector          metav1.LabelSelector `json:"selector"`
		NamespaceSelector *struct {
			Any        bool     `json:"any,omitempty"`
			MatchNames []string `json:"matchNames,omitempty"`
		} `json:"namespaceSelector,omitempty"`
		Endpoints []struct {
			Port          string `json:"port"`
			Path          string `json:"path,omitempty"`
			Interval      string `json:"interval,omitempty"`
			ScrapeTimeout string `json:"scrapeTimeout,omitempty"`
			Scheme        string `json:"scheme,omitempty"`
		} `json:"endpoints"`
	} `json:"spec"`
}

// manifests are the decoded objects, by kind.
type manifests struct {
	ns  *corev1.Namespace
	cm  *corev1.ConfigMap
	dep *appsv1.Deployment
	svc *corev1.Service
	hpa *autoscalingv2.HorizontalPodAutoscaler
	pdb *policyv1.PodDisruptionBudget
	np  *networkingv1.NetworkPolicy
	sm  *serviceMonitor
}

// decode decodes one manifest strictly by its kind.
func decode(b []byte, m *manifests) error {
	var tm metav1.TypeMeta
	if err := yaml.Unmarshal(b, &tm); err != nil {
		return err
	}
	var dst any
	switch tm.APIVersion + " " + tm.Kind {
	case "v1 Namespace":
		m.ns = &corev1.Namespace{}
		dst = m.ns
	case "v1 ConfigMap":
		m.cm = &corev1.ConfigMap{}
		dst = m.cm
	case "apps/v1 Deployment":
		m.dep = &appsv1.Deployment{}
		dst = m.dep
	case "v1 Service":
		m.svc = &corev1.Service{}
		dst = m.svc
	case "autoscaling/v2 HorizontalPodAutoscaler":
		m.hpa = &autoscalingv2.HorizontalPodAutoscaler{}
		dst = m.hpa
	case "policy/v1 PodDisruptionBudget":
		m.pdb = &policyv1.PodDisruptionBudget{}
		dst = m.pdb
	case "networking.k8s.io/v1 NetworkPolicy":
		m.np = &networkingv1.NetworkPolicy{}
		dst = m.np
	case "monitoring.coreos.com/v1 ServiceMonitor":
		m.sm = &serviceMonitor{}
		dst = m.sm
	default:
		return &unknownKind{tm.APIVersion, tm.Kind}
	}
	return strictYAML(b, dst)
}

// strictYAML decodes YAML the way the API server does: duplicate keys,
// unknown fields and fields in the wrong letter case all fail
// (encoding/json, under sigs.k8s.io/yaml.UnmarshalStrict, would accept
// "ImagePullPolicy" for "imagePullPolicy").
func strictYAML(b []byte, v any) error {
	js, err := yaml.YAMLToJSONStrict(b)
	if err != nil {
		return err
	}
	strict, err := kjson.UnmarshalStrict(js, v)
	if err != nil {
		return err
	}
	return errors.Join(strict...)
}

type unknownKind struct{ apiVersion, kind string }

func (u *unknownKind) Error() string { return "unexpected kind " + u.apiVersion + " " + u.kind }

func load(t *testing.T) (*kustomization, *manifests) {
	t.Helper()
	b, err := os.ReadFile("kustomization.yaml")
	if err != nil {
		t.Fatal(err)
	}
	k := &kustomization{}
	if err := strictYAML(b, k); err != nil {
		t.Fatalf("kustomization.yaml: %v", err)
	}
	files, _ := filepath.Glob("*.yaml")
	files = slices.DeleteFunc(files, func(f string) bool { return f == "kustomization.yaml" })
	if got, want := slices.Sorted(slices.Values(k.Resources)), files; !slices.Equal(got, want) {
		t.Errorf("kustomization resources %v, files %v: every manifest must be listed, and only those", got, want)
	}
	m := &manifests{}
	for _, f := range k.Resources {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(b, []byte("\n---")) {
			t.Errorf("%s: one object per file", f)
		}
		if err := decode(b, m); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
	if t.Failed() {
		t.FailNow()
	}
	return k, m
}

// TestManifestsDecodeStrictly: every manifest decodes into its API type
// with no unknown field, and the pieces refer to each other correctly.
func TestManifestsDecodeStrictly(t *testing.T) {
	t.Parallel()
	k, m := load(t)
	for name, missing := range map[string]bool{
		"Namespace": m.ns == nil, "ConfigMap": m.cm == nil, "Deployment": m.dep == nil, "Service": m.svc == nil,
		"HorizontalPodAutoscaler": m.hpa == nil, "PodDisruptionBudget": m.pdb == nil,
		"NetworkPolicy": m.np == nil, "ServiceMonitor": m.sm == nil,
	} {
		if missing {
			t.Fatalf("no %s", name)
		}
	}
	if k.Namespace != m.ns.Name {
		t.Errorf("kustomization namespace %q, Namespace %q", k.Namespace, m.ns.Name)
	}

	pod := m.dep.Spec.Template
	labels := pod.Labels
	matches := func(what string, sel map[string]string) {
		t.Helper()
		if len(sel) == 0 {
			t.Errorf("%s: empty selector", what)
		}
		for k, v := range sel {
			if labels[k] != v {
				t.Errorf("%s selector %s=%s does not match the pod labels %v", what, k, v, labels)
			}
		}
	}
	matches("deployment", m.dep.Spec.Selector.MatchLabels)
	matches("service", m.svc.Spec.Selector)
	matches("pdb", m.pdb.Spec.Selector.MatchLabels)
	matches("networkpolicy", m.np.Spec.PodSelector.MatchLabels)
	if m.hpa.Spec.ScaleTargetRef.Kind != "Deployment" || m.hpa.Spec.ScaleTargetRef.Name != m.dep.Name {
		t.Errorf("hpa targets %+v, want Deployment %s", m.hpa.Spec.ScaleTargetRef, m.dep.Name)
	}
	if len(m.hpa.Spec.Metrics) == 0 || m.hpa.Spec.Metrics[0].Resource == nil || m.hpa.Spec.Metrics[0].Resource.Name != corev1.ResourceCPU {
		t.Errorf("hpa does not scale on CPU: %+v", m.hpa.Spec.Metrics)
	}

	// The pod: non-root, read-only root, resources, probes.
	if len(pod.Spec.Containers) != 1 {
		t.Fatalf("%d containers, want 1", len(pod.Spec.Containers))
	}
	c := pod.Spec.Containers[0]
	if psc := pod.Spec.SecurityContext; psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot {
		t.Error("pod does not set runAsNonRoot: true")
	}
	if sc := c.SecurityContext; sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem ||
		sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
		t.Error("container must have readOnlyRootFilesystem: true and allowPrivilegeEscalation: false")
	}
	if c.Resources.Requests.Cpu().IsZero() || c.Resources.Requests.Memory().IsZero() || c.Resources.Limits.Memory().IsZero() {
		t.Errorf("resources %+v: want CPU and memory requests and a memory limit (the HPA needs the CPU request)", c.Resources)
	}
	ports := map[string]int32{}
	for _, p := range c.Ports {
		ports[p.Name] = p.ContainerPort
	}
	if rp := c.ReadinessProbe; rp == nil || rp.GRPC == nil || rp.GRPC.Port != ports["grpc"] {
		t.Errorf("readiness probe %+v: want grpc.health.v1 on the grpc port %d", rp, ports["grpc"])
	}
	if lp := c.LivenessProbe; lp == nil || lp.HTTPGet == nil || lp.HTTPGet.Path != "/healthz" {
		t.Errorf("liveness probe %+v: want GET /healthz", lp)
	}

	// Service: the gRPC port is HTTP/2 by name and appProtocol, and every
	// target port exists on the container.
	for _, p := range m.svc.Spec.Ports {
		if _, ok := ports[p.TargetPort.String()]; !ok {
			t.Errorf("service port %s targets %q, not a container port (%v)", p.Name, p.TargetPort.String(), ports)
		}
		if p.Name == "grpc" && (p.AppProtocol == nil || *p.AppProtocol != "grpc") {
			t.Errorf("service port grpc: appProtocol %v, want grpc", p.AppProtocol)
		}
	}
	if m.sm.Spec.Endpoints[0].Port != "http-metrics" || !slices.ContainsFunc(m.svc.Spec.Ports, func(p corev1.ServicePort) bool { return p.Name == "http-metrics" }) {
		t.Error("the ServiceMonitor must scrape the service's http-metrics port")
	}

	// The config comes from the ConfigMap, mounted as a directory (a subPath
	// mount never sees updates, so reloads would never happen).
	var cmVolume string
	for _, v := range pod.Spec.Volumes {
		if v.ConfigMap != nil && v.ConfigMap.Name == m.cm.Name {
			cmVolume = v.Name
		}
	}
	if cmVolume == "" {
		t.Fatalf("no volume from ConfigMap %s", m.cm.Name)
	}
	var mountPath string
	for _, vm := range c.VolumeMounts {
		if vm.Name == cmVolume {
			if vm.SubPath != "" {
				t.Errorf("config mounted with subPath %q: ConfigMap updates would never reach the file", vm.SubPath)
			}
			mountPath = vm.MountPath
		}
	}
	i := slices.Index(c.Args, "-config")
	if i < 0 || i+1 >= len(c.Args) {
		t.Fatalf("args %v: no -config", c.Args)
	}
	file, ok := strings.CutPrefix(c.Args[i+1], mountPath+"/")
	if !ok {
		t.Fatalf("-config %s is not under the ConfigMap mount %s", c.Args[i+1], mountPath)
	}
	data, ok := m.cm.Data[file]
	if !ok {
		t.Fatalf("ConfigMap has no key %q", file)
	}
	cfg, err := config.Parse([]byte(data))
	if err != nil {
		t.Fatalf("the ConfigMap's config is not valid: %v", err)
	}
	for _, hp := range []struct {
		addr string
		port string
	}{{cfg.GetListen().GetGrpc(), "grpc"}, {cfg.GetListen().GetHttp(), "http-metrics"}} {
		if !strings.HasPrefix(hp.addr, "0.0.0.0:") || !strings.HasSuffix(hp.addr, ":"+strconv.Itoa(int(ports[hp.port]))) {
			t.Errorf("config listens on %q; the pod's %s port is %d on all interfaces", hp.addr, hp.port, ports[hp.port])
		}
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
			if err := decode(bad, &manifests{}); err == nil {
				t.Errorf("decoded without error")
			}
		})
	}
	sm, err := os.ReadFile("servicemonitor.yaml")
	if err != nil {
		t.Fatal(err)
	}
	bad := bytes.Replace(sm, []byte("scrapeTimeout:"), []byte("scrape_timeout:"), 1)
	if err := decode(bad, &manifests{}); err == nil {
		t.Error("ServiceMonitor with scrape_timeout decoded without error")
	}
}

// TestKustomizeBuild renders the kustomization with kubectl, when present.
func TestKustomizeBuild(t *testing.T) {
	t.Parallel()
	kubectl, err := exec.LookPath("kubectl")
	if err != nil {
		t.Skip("kubectl is not on PATH; the kustomization is still decoded by TestManifestsDecodeStrictly")
	}
	out, err := exec.Command(kubectl, "kustomize", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("kubectl kustomize: %v\n%s", err, out)
	}
	docs := bytes.Split(out, []byte("\n---\n"))
	m := &manifests{}
	for _, d := range docs {
		if err := decode(d, m); err != nil {
			t.Errorf("rendered object: %v\n%s", err, d)
		}
	}
	if m.dep == nil || m.dep.Namespace != "jwt-authz" || m.dep.Labels["app.kubernetes.io/part-of"] != "jwt-authz" {
		t.Errorf("rendered Deployment lacks the kustomization's namespace or labels: %+v", m.dep)
	}
}

// Package helm holds jwt-authz's Helm chart (jwt-authz/); its test renders
// the chart with Helm's Go SDK for several value sets, decodes every object
// strictly into the Kubernetes API types, runs the checks every jwt-authz
// deployment must pass (deploy/internal/k8sobj, the config validated by the
// config package) and runs Helm's lint.
package helm

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"

	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/engine"
	"helm.sh/helm/v3/pkg/lint/support"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"sigs.k8s.io/yaml"

	"github.com/jwtauthz/jwt-authz/deploy/internal/k8sobj"
)

const (
	chartDir = "jwt-authz"
	release  = "edge"
	digest   = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
)

func loadChart(t *testing.T) *chart.Chart {
	t.Helper()
	c, err := loader.Load(chartDir)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// values parses YAML values the way `helm install -f` does.
func values(t *testing.T, y string) map[string]any {
	t.Helper()
	v, err := chartutil.ReadValues([]byte(y))
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// render renders the chart as `helm install --dry-run` would, and returns
// the rendered files (NOTES.txt included).
func render(c *chart.Chart, vals map[string]any) (map[string]string, error) {
	rv, err := chartutil.ToRenderValues(c, vals, chartutil.ReleaseOptions{
		Name: release, Namespace: "authz", Revision: 1, IsInstall: true,
	}, chartutil.DefaultCapabilities)
	if err != nil {
		return nil, err
	}
	return engine.Render(c, rv)
}

// decode strictly decodes every rendered object.
func decode(t *testing.T, files map[string]string) *k8sobj.Objects {
	t.Helper()
	o := &k8sobj.Objects{}
	for _, name := range slices.Sorted(func(yield func(string) bool) {
		for k := range files {
			if !yield(k) {
				return
			}
		}
	}) {
		if strings.HasSuffix(name, "NOTES.txt") {
			continue
		}
		if err := o.DecodeAll([]byte(files[name])); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	if t.Failed() {
		t.FailNow()
	}
	return o
}

// renderChecked renders vals, decodes strictly and runs the deployment checks.
func renderChecked(t *testing.T, c *chart.Chart, vals string) (*k8sobj.Objects, map[string]string) {
	t.Helper()
	files, err := render(c, values(t, vals))
	if err != nil {
		t.Fatalf("render: %v", err)
	}
	o := decode(t, files)
	if _, errs := k8sobj.Check(o); len(errs) > 0 {
		for _, err := range errs {
			t.Error(err)
		}
		t.FailNow()
	}
	return o, files
}

func container(o *k8sobj.Objects) corev1.Container {
	return o.Deployments[0].Spec.Template.Spec.Containers[0]
}

func env(c corev1.Container, name string) string {
	for _, e := range c.Env {
		if e.Name == name {
			return e.Value
		}
	}
	return ""
}

func TestChartDefaults(t *testing.T) {
	t.Parallel()
	c := loadChart(t)
	if c.Metadata.APIVersion != "v2" || c.Metadata.Version != "0.1.0" || c.Metadata.AppVersion != "0.1.0" {
		t.Errorf("Chart.yaml: apiVersion %s version %s appVersion %s", c.Metadata.APIVersion, c.Metadata.Version, c.Metadata.AppVersion)
	}
	o, files := renderChecked(t, c, "")
	name := release + "-jwt-authz"
	ctr := container(o)
	if want := "ghcr.io/jwtauthz/jwt-authz:" + c.Metadata.AppVersion; ctr.Image != want {
		t.Errorf("image %s, want %s (the tag defaults to appVersion)", ctr.Image, want)
	}
	if got := env(ctr, "GOMEMLIMIT"); got != "230MiB" {
		t.Errorf("GOMEMLIMIT %q, want 230MiB (90%% of 256Mi)", got)
	}
	if got := env(ctr, "GOGC"); got != "50" {
		t.Errorf("GOGC %q, want 50, as deploy/kubernetes/deployment.yaml sets it", got)
	}
	dep := o.Deployments[0]
	if dep.Name != name || dep.Spec.Replicas != nil {
		t.Errorf("deployment %s replicas %v: want %s, and no replicas while the HPA owns them", dep.Name, dep.Spec.Replicas, name)
	}
	if len(o.HPAs) != 1 || o.HPAs[0].Spec.MinReplicas == nil || *o.HPAs[0].Spec.MinReplicas != 3 || o.HPAs[0].Spec.MaxReplicas != 20 {
		t.Errorf("HPA %+v: want 3 to 20", o.HPAs)
	}
	if len(o.PDBs) != 1 || o.PDBs[0].Spec.MaxUnavailable == nil || o.PDBs[0].Spec.MaxUnavailable.IntValue() != 1 {
		t.Errorf("PDB: want maxUnavailable 1")
	}
	if len(o.NetworkPolicies) != 1 {
		t.Errorf("%d NetworkPolicies, want 1", len(o.NetworkPolicies))
	}
	if len(o.ServiceMonitors)+len(o.PrometheusRules) > 0 {
		t.Error("monitoring objects rendered by default: the chart would not install without the Prometheus Operator")
	}
	var svcs []string
	for _, s := range o.Services {
		svcs = append(svcs, s.Name+"/"+s.Spec.ClusterIP)
	}
	if want := []string{name + "/", name + "-headless/None"}; !slices.Equal(svcs, want) {
		t.Errorf("services %q, want %q", svcs, want)
	}
	if rp := ctr.ReadinessProbe; rp.GRPC == nil {
		t.Errorf("readiness %+v: want grpc.health.v1 without TLS", rp)
	}
	if !strings.Contains(files["jwt-authz/templates/NOTES.txt"], name+".authz.svc:9001") {
		t.Errorf("NOTES.txt does not name the service:\n%s", files["jwt-authz/templates/NOTES.txt"])
	}

	// The ConfigMap is the values' config, with listen from ports and each
	// provider's cache_file in the cache volume.
	cfg, _ := k8sobj.Check(o)
	var cv struct {
		Config map[string]any `json:"config"`
	}
	vb, err := os.ReadFile(chartDir + "/values.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(vb, &cv); err != nil {
		t.Fatal(err)
	}
	var rendered map[string]any
	if err := yaml.Unmarshal([]byte(o.ConfigMaps[0].Data[k8sobj.ConfigKey]), &rendered); err != nil {
		t.Fatal(err)
	}
	cv.Config["listen"] = map[string]any{"grpc": "0.0.0.0:9001", "http": "0.0.0.0:9090"}
	cv.Config["providers"].([]any)[0].(map[string]any)["jwks"].(map[string]any)["cache_file"] = "/var/cache/jwt-authz/auth0.json"
	if !reflect.DeepEqual(rendered, cv.Config) {
		t.Errorf("ConfigMap config:\n%v\nwant the values' config:\n%v", rendered, cv.Config)
	}
	if len(cfg.GetProviders()[0].GetAudiences()) == 0 {
		t.Error("the default config has no audiences")
	}
}

// TestChartValueSets renders the value sets an operator would use; each
// renders, decodes strictly and passes the deployment checks, and does what
// its values say.
func TestChartValueSets(t *testing.T) {
	t.Parallel()
	c := loadChart(t)
	tests := []struct {
		name   string
		values string
		check  func(t *testing.T, o *k8sobj.Objects)
	}{
		{"monitoring on", "metrics:\n  serviceMonitor: {enabled: true, labels: {release: prom}}\n  prometheusRule: {enabled: true}\n",
			func(t *testing.T, o *k8sobj.Objects) {
				if len(o.ServiceMonitors) != 1 || len(o.PrometheusRules) != 1 {
					t.Fatalf("%d ServiceMonitors, %d PrometheusRules", len(o.ServiceMonitors), len(o.PrometheusRules))
				}
				if o.ServiceMonitors[0].Labels["release"] != "prom" {
					t.Errorf("ServiceMonitor labels %v lack release: prom", o.ServiceMonitors[0].Labels)
				}
				if got, want := o.PrometheusRules[0].Spec, repoAlerts(t); !reflect.DeepEqual(got, want) {
					t.Errorf("PrometheusRule spec differs from deploy/prometheus/alerts.yaml")
				}
			}},
		{"digest set", "image: {digest: " + digest + ", tag: ignored}\n", func(t *testing.T, o *k8sobj.Objects) {
			if img := container(o).Image; img != "ghcr.io/jwtauthz/jwt-authz@"+digest {
				t.Errorf("image %s", img)
			}
		}},
		{"digest without its algorithm", "image: {repository: registry.example.com/jwt-authz, digest: " + strings.TrimPrefix(digest, "sha256:") + "}\n",
			func(t *testing.T, o *k8sobj.Objects) {
				if img := container(o).Image; img != "registry.example.com/jwt-authz@"+digest {
					t.Errorf("image %s", img)
				}
			}},
		{"tag set", "image: {tag: 0.2.0-rc.1}\n", func(t *testing.T, o *k8sobj.Objects) {
			if img := container(o).Image; img != "ghcr.io/jwtauthz/jwt-authz:0.2.0-rc.1" {
				t.Errorf("image %s", img)
			}
		}},
		{"TLS volumes", `
config:
  listen:
    tls: {cert_file: /etc/jwt-authz/tls/tls.crt, key_file: /etc/jwt-authz/tls/tls.key, client_ca_file: /etc/jwt-authz/tls/ca.crt}
extraVolumes: [{name: tls, secret: {secretName: jwt-authz-tls}}]
extraVolumeMounts: [{name: tls, mountPath: /etc/jwt-authz/tls, readOnly: true}]
`, func(t *testing.T, o *k8sobj.Objects) {
			ctr := container(o)
			if rp := ctr.ReadinessProbe; rp.HTTPGet == nil || rp.HTTPGet.Path != "/readyz" {
				t.Errorf("readiness %+v: with TLS the kubelet's plaintext gRPC probe fails; want GET /readyz", rp)
			}
			cfg, _ := k8sobj.Check(o)
			tls := cfg.GetListen().GetTls()
			for _, f := range []string{tls.GetCertFile(), tls.GetKeyFile(), tls.GetClientCaFile()} {
				if !mounted(o, f, "jwt-authz-tls") {
					t.Errorf("%s is not in a mount of the Secret jwt-authz-tls", f)
				}
			}
		}},
		{"HPA off", "autoscaling: {enabled: false}\nreplicas: 5\n", func(t *testing.T, o *k8sobj.Objects) {
			if len(o.HPAs) != 0 {
				t.Error("HPA rendered")
			}
			if r := o.Deployments[0].Spec.Replicas; r == nil || *r != 5 {
				t.Errorf("replicas %v, want 5", r)
			}
		}},
		{"cache on a PVC, minAvailable", "cache: {existingClaim: jwks-cache}\npodDisruptionBudget: {minAvailable: 2, maxUnavailable: null}\n", func(t *testing.T, o *k8sobj.Objects) {
			vols := o.Deployments[0].Spec.Template.Spec.Volumes
			if !slices.ContainsFunc(vols, func(v corev1.Volume) bool {
				return v.PersistentVolumeClaim != nil && v.PersistentVolumeClaim.ClaimName == "jwks-cache"
			}) {
				t.Errorf("no volume of the claim jwks-cache: %+v", vols)
			}
			if p := o.PDBs[0].Spec; p.MinAvailable == nil || p.MinAvailable.IntValue() != 2 || p.MaxUnavailable != nil {
				t.Errorf("PDB %+v: want minAvailable 2 only", p)
			}
		}},
		{"two providers, one with its own cache_file", `
config:
  providers:
  - {name: auth0, issuer: "https://example.auth0.com/", audiences: [api], jwks: {discovery: true}}
  - {name: okta, issuer: "https://example.okta.com/", audiences: [api], jwks: {uri: "https://example.okta.com/keys", cache_file: /var/cache/jwt-authz/mine.json}}
`, func(t *testing.T, o *k8sobj.Objects) {
			cfg, _ := k8sobj.Check(o)
			var got []string
			for _, p := range cfg.GetProviders() {
				got = append(got, p.GetJwks().GetCacheFile())
			}
			if want := []string{"/var/cache/jwt-authz/auth0.json", "/var/cache/jwt-authz/mine.json"}; !slices.Equal(got, want) {
				t.Errorf("cache files %q, want %q", got, want)
			}
		}},
		{"everything off", "autoscaling: {enabled: false}\npodDisruptionBudget: {enabled: false}\nnetworkPolicy: {enabled: false}\nservice: {headless: {enabled: false}}\n",
			func(t *testing.T, o *k8sobj.Objects) {
				if n := len(o.HPAs) + len(o.PDBs) + len(o.NetworkPolicies); n != 0 || len(o.Services) != 1 {
					t.Errorf("%d HPA/PDB/NetworkPolicy and %d Services rendered, want 0 and 1", n, len(o.Services))
				}
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			o, _ := renderChecked(t, c, tt.values)
			tt.check(t, o)
		})
	}
}

// mounted reports whether file lies in a mount of the Secret.
func mounted(o *k8sobj.Objects, file, secret string) bool {
	pod := o.Deployments[0].Spec.Template.Spec
	for _, vm := range pod.Containers[0].VolumeMounts {
		if !strings.HasPrefix(file, vm.MountPath+"/") {
			continue
		}
		for _, v := range pod.Volumes {
			if v.Name == vm.Name && v.Secret != nil && v.Secret.SecretName == secret {
				return true
			}
		}
	}
	return false
}

func repoAlerts(t *testing.T) k8sobj.RuleGroups {
	t.Helper()
	b, err := os.ReadFile("../prometheus/alerts.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var r k8sobj.RuleGroups
	if err := k8sobj.StrictYAML(b, &r); err != nil {
		t.Fatal(err)
	}
	return r
}

// TestChartAlertsAreTheRepoAlerts: the chart cannot read files outside its
// directory, so it carries a copy of deploy/prometheus/alerts.yaml; the copy
// must stay byte for byte the same.
func TestChartAlertsAreTheRepoAlerts(t *testing.T) {
	t.Parallel()
	repo, err := os.ReadFile("../prometheus/alerts.yaml")
	if err != nil {
		t.Fatal(err)
	}
	copied, err := os.ReadFile(chartDir + "/files/alerts.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(repo, copied) {
		t.Error("deploy/helm/jwt-authz/files/alerts.yaml differs from deploy/prometheus/alerts.yaml: cp deploy/prometheus/alerts.yaml deploy/helm/jwt-authz/files/alerts.yaml")
	}
}

// TestChartGoMemLimit: for memory limits in every unit (generated, seed
// logged), GOMEMLIMIT is the share goMemLimitPercent of the limit as
// Kubernetes reads the quantity, in whole MiB.
func TestChartGoMemLimit(t *testing.T) {
	t.Parallel()
	c := loadChart(t)
	seed := uint64(20261202)
	t.Logf("seed %d", seed)
	r := rand.New(rand.NewPCG(seed, seed))
	units := []struct {
		suffix string
		min    int
		max    int
	}{{"Mi", 64, 8192}, {"Gi", 1, 16}, {"M", 64, 8000}, {"G", 1, 16}, {"Ki", 65536, 4 << 20}, {"", 64 << 20, 8 << 30}}
	for i := range 24 {
		u := units[i%len(units)]
		q := fmt.Sprintf("%d%s", u.min+r.IntN(u.max-u.min+1), u.suffix)
		pct := []int{90, 80, 75, 95}[r.IntN(4)]
		vals := fmt.Sprintf("resources: {limits: {memory: %q}}\ngoMemLimitPercent: %d\n", q, pct)
		o, _ := renderChecked(t, c, vals)
		got, err := k8sobj.ParseGoMemLimit(env(container(o), "GOMEMLIMIT"))
		if err != nil {
			t.Fatal(err)
		}
		lq := resource.MustParse(q)
		limit := lq.Value()
		if want := limit * int64(pct) / 100 / (1 << 20) * (1 << 20); got != want {
			t.Errorf("limits.memory %s at %d%%: GOMEMLIMIT %d bytes, want %d", q, pct, got, want)
		}
	}
	files, err := render(c, values(t, "goMemLimitPercent: 0\nresources: {limits: {memory: 1Gi}}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if v := env(container(decode(t, files)), "GOMEMLIMIT"); v != "" {
		t.Errorf("goMemLimitPercent 0: GOMEMLIMIT %q set", v)
	}
	files, err = render(c, values(t, "goGC: 0\n"))
	if err != nil {
		t.Fatal(err)
	}
	if v := env(container(decode(t, files)), "GOGC"); v != "" {
		t.Errorf("goGC 0: GOGC %q set", v)
	}
}

// TestChartRefusesBadValues: values that would render a broken object (a
// bad digest, a PDB with both or neither field, a memory limit the template
// cannot read) fail the render with the value's name.
func TestChartRefusesBadValues(t *testing.T) {
	t.Parallel()
	c := loadChart(t)
	for _, tc := range []struct{ values, want string }{
		{"image: {digest: sha256:abc}", "image.digest"},
		{"image: {digest: md5:0123456789abcdef0123456789abcdef}", "image.digest"},
		{"podDisruptionBudget: {minAvailable: 2}", "exactly one of minAvailable and maxUnavailable"},
		{"podDisruptionBudget: {maxUnavailable: null}", "exactly one of minAvailable and maxUnavailable"},
		{"probes: {readiness: tcp}", "probes.readiness"},
		{"resources: {limits: {memory: 0.5Gi}}", "resources.limits.memory"},
		{"resources: {limits: {memory: 256mi}}", "resources.limits.memory"},
		{"resources: {limits: {memory: 512Ki}}", "too small"},
		{"goMemLimitPercent: 150", "goMemLimitPercent"},
		{"goGC: -1", "goGC"},
	} {
		if _, err := render(c, values(t, tc.values)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want one naming %s", tc.values, err, tc.want)
		}
	}
}

// TestChartLint runs `helm lint` (the SDK's lint action, strict: warnings
// fail) with the default values and with monitoring on.
func TestChartLint(t *testing.T) {
	t.Parallel()
	for _, vals := range []string{"", "metrics: {serviceMonitor: {enabled: true}, prometheusRule: {enabled: true}}"} {
		l := action.NewLint()
		l.Strict = true
		l.Namespace = "authz"
		res := l.Run([]string{chartDir}, values(t, vals))
		if res.TotalChartsLinted != 1 {
			t.Errorf("values %q: linted %d charts", vals, res.TotalChartsLinted)
		}
		for _, err := range res.Errors {
			t.Errorf("values %q: helm lint: %v", vals, err)
		}
		for _, m := range res.Messages {
			if m.Severity >= support.WarningSev {
				t.Errorf("values %q: helm lint: %s", vals, m)
			} else {
				t.Logf("helm lint: %s", m)
			}
		}
	}
}

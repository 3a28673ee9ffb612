// Package deploy holds the files of the docker-compose demo (jwt-authz config, Prometheus, Grafana)
// and is the root of a nested Go module (deploy/go.mod): the deploy tests and their heavy test-only
// dependencies (Kubernetes and Istio API types, compose-go, Helm) stay out of the server's go.mod.
// It has no Go code: this test proves the files without Docker by parsing docker-compose.yaml with
// the compose-spec library (compose-go v2, which rejects unknown keys, wrong types and bad durations)
// and checking that the files it mounts exist and that the demo's pieces name each other correctly.
package deploy

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/loader"
	"github.com/compose-spec/compose-go/v2/types"
	"google.golang.org/protobuf/encoding/protojson"
	"sigs.k8s.io/yaml"

	"github.com/jwtauthz/jwt-authz/deploy/internal/k8sobj"
	"github.com/jwtauthz/jwt-authz/internal/metriclist"
	configv1 "github.com/jwtauthz/jwt-authz/proto/jwtauthz/config/v1"
)

// projectName is what `docker compose` would take from the file's `name:`; compose-go needs one.
const projectName = "jwt-authz-demo"

// exportedMetrics are the series jwt-authz exports (docs/reference.md's metrics table).
var exportedMetrics = metriclist.Series()

// repoRoot is the module root; go test runs in deploy/.
func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("repository root: %v", err)
	}
	return root
}

// loadCompose loads a compose document the way `docker compose` does, strictly: schema validation,
// interpolation against an empty environment (so the result does not depend on the caller's
// variables), consistency checks, relative paths resolved against workingDir, every profile active.
func loadCompose(ctx context.Context, workingDir, filename string, content []byte) (*types.Project, error) {
	details := types.ConfigDetails{
		WorkingDir:  workingDir,
		ConfigFiles: []types.ConfigFile{{Filename: filename, Content: content}},
		Environment: types.Mapping{},
	}
	return loader.LoadWithContext(ctx, details,
		func(o *loader.Options) {
			o.SetProjectName(projectName, true)
			o.ResolvePaths = true
		},
		loader.WithProfiles([]string{"*"}),
	)
}

func loadRepoCompose(t *testing.T) (*types.Project, string) {
	t.Helper()
	root := repoRoot(t)
	file := filepath.Join(root, "docker-compose.yaml")
	content, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	p, err := loadCompose(t.Context(), root, file, content)
	if err != nil {
		t.Fatalf("docker-compose.yaml: %v", err)
	}
	return p, root
}

func TestComposeServices(t *testing.T) {
	t.Parallel()
	p, _ := loadRepoCompose(t)
	want := []string{"dev-issuer", "envoy", "grafana", "issuer-admin", "jwt-authz", "mock-target", "prometheus"}
	if got := p.ServiceNames(); !slices.Equal(sorted(got), want) {
		t.Errorf("services = %q, want %q", sorted(got), want)
	}
	if p.Name != projectName {
		t.Errorf("project name = %q, want %q", p.Name, projectName)
	}
	// jwt-authz must start after the issuer whose keys it fetches, Envoy after what it routes to.
	deps := map[string][]string{
		"jwt-authz": {"dev-issuer"},
		"envoy":     {"jwt-authz", "mock-target"},
		"grafana":   {"prometheus"},
	}
	for svc, wantDeps := range deps {
		for _, d := range wantDeps {
			if _, ok := p.Services[svc].DependsOn[d]; !ok {
				t.Errorf("%s does not depend on %s", svc, d)
			}
		}
	}
}

func TestComposePorts(t *testing.T) {
	t.Parallel()
	p, _ := loadRepoCompose(t)
	// service -> "published->target"; every port is published on the host's loopback only.
	want := map[string][]string{
		"dev-issuer":  {"8081->8081"},
		"mock-target": {"8080->8080"},
		"jwt-authz":   {"9001->9001", "9090->9090"},
		"envoy":       {"10000->10000", "10443->10443", "9902->9902"},
		"prometheus":  {"9091->9090"},
		"grafana":     {"3000->3000"},
	}
	hostPorts := map[string]string{}
	for _, name := range p.ServiceNames() {
		var got []string
		for _, pc := range p.Services[name].Ports {
			got = append(got, fmt.Sprintf("%s->%d", pc.Published, pc.Target))
			if pc.HostIP != "127.0.0.1" {
				t.Errorf("%s publishes %s on %q, want 127.0.0.1 (the demo has well-known secrets)", name, pc.Published, pc.HostIP)
			}
			if other, dup := hostPorts[pc.Published]; dup {
				t.Errorf("host port %s published by both %s and %s", pc.Published, other, name)
			}
			hostPorts[pc.Published] = name
		}
		if !slices.Equal(sorted(got), sorted(want[name])) {
			t.Errorf("%s ports = %q, want %q", name, got, want[name])
		}
	}
}

func TestComposeBuildsAndImages(t *testing.T) {
	t.Parallel()
	p, root := loadRepoCompose(t)
	dockerfile, err := os.ReadFile(filepath.Join(root, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"dev-issuer", "mock-target", "jwt-authz"} {
		s := p.Services[name]
		if s.Build == nil {
			t.Errorf("%s: no build section; the Go programs are built from the Dockerfile", name)
			continue
		}
		if s.Build.Context != root {
			t.Errorf("%s: build context %q, want the repository root %q", name, s.Build.Context, root)
		}
		if df := s.Build.Dockerfile; df != "Dockerfile" {
			t.Errorf("%s: dockerfile %q, want Dockerfile", name, df)
		}
		if len(s.Command) == 0 {
			t.Errorf("%s: no command; the shared image needs one per service", name)
			continue
		}
		// jwt-authz runs the runtime image, whose entrypoint is jwt-authz; the others share the dev
		// stage, and the program a service runs is one the Dockerfile builds into /usr/local/bin.
		if name == "jwt-authz" {
			if s.Build.Target != "runtime" || s.Command[0] != "serve" {
				t.Errorf("jwt-authz: target %q command %q, want the runtime stage running serve", s.Build.Target, s.Command)
			}
		} else if prog := filepath.Base(s.Command[0]); s.Build.Target != "dev" || s.Command[0] != "/usr/local/bin/"+prog ||
			!bytes.Contains(dockerfile, []byte("./cmd/"+prog)) {
			t.Errorf("%s: target %q command %q is not a program the dev stage has in /usr/local/bin", name, s.Build.Target, s.Command[0])
		}
		if !s.ReadOnly {
			t.Errorf("%s: read_only should be true", name)
		}
	}
	// Everything else is a published image pinned to a full version.
	pinned := regexp.MustCompile(`^[a-z0-9./-]+:v?\d+\.\d+\.\d+$`)
	for _, name := range []string{"envoy", "prometheus", "grafana", "issuer-admin"} {
		if img := p.Services[name].Image; !pinned.MatchString(img) {
			t.Errorf("%s: image %q is not pinned to a version (name:X.Y.Z)", name, img)
		}
	}
	// The Dockerfile: static binaries stamped from VERSION on distroless, non-root; the runtime
	// stage (the last, the default) holds jwt-authz alone, with the release image's entrypoint.
	for _, want := range []string{
		"FROM golang:1.26 AS build",
		"CGO_ENABLED=0 go build -trimpath",
		`version="${VERSION:-$(cat VERSION)}"`,
		`-ldflags "-s -w -X main.version=${version} -X main.revision=${REVISION}"`,
		"FROM gcr.io/distroless/static-debian12:nonroot AS dev",
		"FROM gcr.io/distroless/static-debian12:nonroot AS runtime\n",
		"COPY --from=build /out/jwt-authz /jwt-authz\nUSER 65532:65532\n",
		`ENTRYPOINT ["/jwt-authz"]`,
		`CMD ["serve", "-config", "/etc/jwt-authz/config.yaml"]`,
	} {
		if !bytes.Contains(dockerfile, []byte(want)) {
			t.Errorf("Dockerfile lacks %q", want)
		}
	}
	if last := dockerfile[bytes.LastIndex(dockerfile, []byte("\nFROM "))+1:]; !bytes.HasPrefix(last, []byte("FROM gcr.io/distroless/static-debian12:nonroot AS runtime")) {
		t.Error("Dockerfile: the runtime stage is not the last one, so `docker build .` does not build it")
	}
}

// TestComposeMounts checks that every bind-mounted host path exists in the repository, and that every
// container path a service is told about (in its command or environment) lies in one of its mounts
// and exists on the host side.
func TestComposeMounts(t *testing.T) {
	t.Parallel()
	p, root := loadRepoCompose(t)
	if errs := checkMounts(p, root); len(errs) > 0 {
		t.Error(errors.Join(errs...))
	}
	// The mounts the other tests rely on.
	want := map[string]map[string]string{ // service -> container path -> repository path
		"jwt-authz":  {"/etc/jwt-authz": "deploy/compose"},
		"envoy":      {"/etc/envoy/envoy.yaml": "deploy/envoy/envoy.yaml", "/etc/envoy/certs": "deploy/envoy/certs"},
		"prometheus": {"/etc/prometheus/prometheus.yml": "deploy/prometheus/prometheus.yml"},
		"grafana": {
			"/etc/grafana/provisioning": "deploy/grafana/provisioning",
			"/etc/grafana/dashboards":   "deploy/grafana/dashboards",
		},
	}
	for svc, mounts := range want {
		for target, src := range mounts {
			if got := bindSource(p.Services[svc], target); got != filepath.Join(root, src) {
				t.Errorf("%s: %s is mounted from %q, want %q", svc, target, got, src)
			}
		}
	}
}

// checkMounts returns a problem for each bind mount whose source is missing or outside root, and for
// each absolute container path in a command, entrypoint or environment value that falls in a bind
// mount but does not exist on the host.
func checkMounts(p *types.Project, root string) []error {
	var errs []error
	for _, name := range p.ServiceNames() {
		s := p.Services[name]
		for _, v := range s.Volumes {
			if v.Type != types.VolumeTypeBind {
				continue
			}
			rel, err := filepath.Rel(root, v.Source)
			if err != nil || strings.HasPrefix(rel, "..") {
				errs = append(errs, fmt.Errorf("%s: bind source %q is outside the repository", name, v.Source))
				continue
			}
			if _, err := os.Stat(v.Source); err != nil {
				errs = append(errs, fmt.Errorf("%s: bind source %s does not exist", name, rel))
			}
			if !v.ReadOnly {
				errs = append(errs, fmt.Errorf("%s: bind mount %s should be read_only", name, rel))
			}
		}
		var paths []string
		for _, arg := range slices.Concat(s.Entrypoint, s.Command) {
			_, val, found := strings.Cut(arg, "=") // --config.file=/etc/...
			if !found {
				val = arg
			}
			paths = append(paths, val)
		}
		for _, v := range s.Environment {
			if v != nil {
				paths = append(paths, *v)
			}
		}
		for _, cp := range paths {
			if !strings.HasPrefix(cp, "/etc/") {
				continue // binaries, URLs, flags
			}
			host := hostPath(s, cp)
			if host == "" {
				errs = append(errs, fmt.Errorf("%s: %s is in no bind mount", name, cp))
				continue
			}
			if _, err := os.Stat(host); err != nil {
				errs = append(errs, fmt.Errorf("%s: %s (on the host %s) does not exist", name, cp, host))
			}
		}
	}
	return errs
}

// hostPath maps a container path to the host through the service's bind mounts; "" when none holds it.
func hostPath(s types.ServiceConfig, containerPath string) string {
	for _, v := range s.Volumes {
		if v.Type != types.VolumeTypeBind {
			continue
		}
		if containerPath == v.Target {
			return v.Source
		}
		if rest, ok := strings.CutPrefix(containerPath, v.Target+"/"); ok {
			return filepath.Join(v.Source, rest)
		}
	}
	return ""
}

func bindSource(s types.ServiceConfig, target string) string {
	for _, v := range s.Volumes {
		if v.Type == types.VolumeTypeBind && v.Target == target {
			return v.Source
		}
	}
	return ""
}

// TestComposeWiring checks that the pieces name each other: the jwt-authz config trusts the issuer
// dev-issuer announces and listens where Envoy and Prometheus look; Envoy's clusters and Prometheus's
// targets are compose services on ports those services listen on.
func TestComposeWiring(t *testing.T) {
	t.Parallel()
	p, root := loadRepoCompose(t)

	// jwt-authz's config, parsed with its own schema as strictly as jwt-authz does (protojson).
	cfgFile := hostPath(p.Services["jwt-authz"], flagValue(t, p.Services["jwt-authz"].Command, "-config"))
	cfgYAML, err := os.ReadFile(cfgFile)
	if err != nil {
		t.Fatal(err)
	}
	cfgJSON, err := yaml.YAMLToJSON(cfgYAML)
	if err != nil {
		t.Fatal(err)
	}
	cfg := &configv1.Config{}
	if err := protojson.Unmarshal(cfgJSON, cfg); err != nil {
		t.Fatalf("%s: %v", cfgFile, err)
	}
	issuer := flagValue(t, p.Services["dev-issuer"].Command, "-issuer")
	if len(cfg.GetProviders()) != 1 {
		t.Fatalf("providers = %d, want 1", len(cfg.GetProviders()))
	}
	prov := cfg.GetProviders()[0]
	if prov.GetName() != "auth0" || prov.GetIssuer() != issuer || !prov.GetJwks().GetDiscovery() {
		t.Errorf("provider = %q issuer %q discovery %v; want auth0, dev-issuer's -issuer %q, discovery", prov.GetName(), prov.GetIssuer(), prov.GetJwks().GetDiscovery(), issuer)
	}
	if !slices.Equal(prov.GetAudiences(), []string{"urn:apigee:target:api"}) {
		t.Errorf("audiences = %q", prov.GetAudiences())
	}
	var headers []string
	for _, ch := range prov.GetClaimHeaders() {
		headers = append(headers, ch.GetClaim()+"->"+ch.GetHeader())
	}
	if want := []string{"sub->x-jwt-sub", "scope->x-jwt-scope", "azp->x-jwt-client-id", "permissions->x-jwt-permissions"}; !slices.Equal(headers, want) {
		t.Errorf("claim_headers = %q, want %q", headers, want)
	}
	var rules []string
	for _, r := range cfg.GetRules() {
		rules = append(rules, fmt.Sprintf("%s %s %v anon=%v", r.GetName(), r.GetMatch().GetPathPrefix(), r.GetRequire().GetScopes(), r.GetAllowAnonymous()))
	}
	if want := []string{"health /healthz [] anon=true", "admin /admin [admin:write] anon=false", "api / [read:target] anon=false"}; !slices.Equal(rules, want) {
		t.Errorf("rules = %q, want %q", rules, want)
	}
	targets := func(svc string) []string {
		var out []string
		for _, pc := range p.Services[svc].Ports {
			out = append(out, strconv.Itoa(int(pc.Target)))
		}
		return out
	}
	for addr, what := range map[string]string{cfg.GetListen().GetGrpc(): "listen.grpc", cfg.GetListen().GetHttp(): "listen.http"} {
		host, port, err := net.SplitHostPort(addr)
		if err != nil || host != "0.0.0.0" || !slices.Contains(targets("jwt-authz"), port) {
			t.Errorf("%s = %q: want 0.0.0.0 and a port jwt-authz publishes (%q)", what, addr, targets("jwt-authz"))
		}
	}

	// Envoy's upstreams are compose services, on the ports they listen on.
	envoyCfg := readYAMLTree(t, filepath.Join(root, "deploy", "envoy", "envoy.yaml"))
	listens := map[string][]string{ // what each service listens on inside the network
		"mock-target": {flagValue(t, p.Services["mock-target"].Command, "-addr")},
		"jwt-authz":   {cfg.GetListen().GetGrpc(), cfg.GetListen().GetHttp()},
		"dev-issuer":  {flagValue(t, p.Services["dev-issuer"].Command, "-addr")},
	}
	var envoyPorts []string
	for _, l := range asList(t, at(t, envoyCfg, "static_resources", "listeners")) {
		envoyPorts = append(envoyPorts, fmt.Sprint(at(t, l, "address", "socket_address", "port_value")))
	}
	listens["envoy"] = nil
	for _, port := range envoyPorts {
		listens["envoy"] = append(listens["envoy"], "0.0.0.0:"+port)
	}
	for _, c := range asList(t, at(t, envoyCfg, "static_resources", "clusters")) {
		for _, e := range asList(t, at(t, c, "load_assignment", "endpoints")) {
			for _, lb := range asList(t, at(t, e, "lb_endpoints")) {
				host := fmt.Sprint(at(t, lb, "endpoint", "address", "socket_address", "address"))
				port := fmt.Sprint(at(t, lb, "endpoint", "address", "socket_address", "port_value"))
				if host == "127.0.0.1" {
					continue // envoy_admin, inside Envoy's container
				}
				if !listensOn(listens[host], port) {
					t.Errorf("envoy.yaml cluster %v: %s:%s is not a compose service listening on that port", at(t, c, "name"), host, port)
				}
			}
		}
	}

	// Prometheus scrapes jwt-authz's /metrics and Envoy's stats listener.
	type staticConfig struct {
		Targets []string `json:"targets"`
	}
	var prom struct {
		Global struct {
			ScrapeInterval     string `json:"scrape_interval"`
			EvaluationInterval string `json:"evaluation_interval"`
		} `json:"global"`
		RuleFiles     []string `json:"rule_files"`
		ScrapeConfigs []struct {
			JobName       string         `json:"job_name"`
			MetricsPath   string         `json:"metrics_path"`
			StaticConfigs []staticConfig `json:"static_configs"`
		} `json:"scrape_configs"`
	}
	unmarshalStrictFile(t, hostPath(p.Services["prometheus"], "/etc/prometheus/prometheus.yml"), &prom)
	// The alert rules are loaded: every rule file is mounted from deploy/prometheus/alerts.yaml.
	if len(prom.RuleFiles) != 1 || hostPath(p.Services["prometheus"], prom.RuleFiles[0]) != filepath.Join(root, "deploy/prometheus/alerts.yaml") {
		t.Errorf("prometheus.yml rule_files %q: want the mounted deploy/prometheus/alerts.yaml", prom.RuleFiles)
	}
	scraped := map[string]string{} // target -> metrics path
	for _, sc := range prom.ScrapeConfigs {
		for _, st := range sc.StaticConfigs {
			for _, target := range st.Targets {
				scraped[target] = cmp.Or(sc.MetricsPath, "/metrics")
				host, port, err := net.SplitHostPort(target)
				if err != nil || !listensOn(listens[host], port) {
					t.Errorf("prometheus.yml job %s: target %q is not a compose service listening on that port", sc.JobName, target)
				}
			}
		}
	}
	_, httpPort, _ := net.SplitHostPort(cfg.GetListen().GetHttp())
	if got := scraped["jwt-authz:"+httpPort]; got != "/metrics" {
		t.Errorf("prometheus.yml: jwt-authz:%s/metrics is not scraped (%v)", httpPort, scraped)
	}
	if !slices.ContainsFunc(envoyPorts, func(port string) bool { return scraped["envoy:"+port] == "/stats/prometheus" }) {
		t.Errorf("prometheus.yml: no Envoy listener is scraped at /stats/prometheus (%v)", scraped)
	}
}

// TestGrafana checks the provisioning (data source, dashboard provider) and the dashboard: every panel
// queries the provisioned data source with PromQL that names only the metrics jwt-authz exports, and the
// views the demo promises are there.
func TestGrafana(t *testing.T) {
	t.Parallel()
	p, root := loadRepoCompose(t)
	grafana := p.Services["grafana"]
	if v := grafana.Environment["GF_AUTH_ANONYMOUS_ENABLED"]; v == nil || *v != "true" {
		t.Error("grafana: anonymous access is not enabled")
	}
	if v := grafana.Environment["GF_AUTH_ANONYMOUS_ORG_ROLE"]; v == nil || *v != "Viewer" {
		t.Error("grafana: anonymous users should be Viewers")
	}

	var ds struct {
		APIVersion  int `json:"apiVersion"`
		Datasources []struct {
			Name      string         `json:"name"`
			UID       string         `json:"uid"`
			Type      string         `json:"type"`
			Access    string         `json:"access"`
			URL       string         `json:"url"`
			IsDefault bool           `json:"isDefault"`
			Editable  bool           `json:"editable"`
			JSONData  map[string]any `json:"jsonData"`
		} `json:"datasources"`
	}
	unmarshalStrictFile(t, filepath.Join(root, "deploy/grafana/provisioning/datasources/prometheus.yaml"), &ds)
	if len(ds.Datasources) != 1 || ds.Datasources[0].Type != "prometheus" || ds.Datasources[0].UID == "" {
		t.Fatalf("datasources = %+v, want one prometheus data source with a uid", ds.Datasources)
	}
	uid := ds.Datasources[0].UID
	promPort := strconv.Itoa(int(p.Services["prometheus"].Ports[0].Target))
	if want := "http://prometheus:" + promPort; ds.Datasources[0].URL != want {
		t.Errorf("datasource url = %q, want %q", ds.Datasources[0].URL, want)
	}

	var prov struct {
		APIVersion int `json:"apiVersion"`
		Providers  []struct {
			Name                  string         `json:"name"`
			Folder                string         `json:"folder"`
			Type                  string         `json:"type"`
			DisableDeletion       bool           `json:"disableDeletion"`
			AllowUIUpdates        bool           `json:"allowUiUpdates"`
			UpdateIntervalSeconds int            `json:"updateIntervalSeconds"`
			Options               map[string]any `json:"options"`
		} `json:"providers"`
	}
	unmarshalStrictFile(t, filepath.Join(root, "deploy/grafana/provisioning/dashboards/jwt-authz.yaml"), &prov)
	if len(prov.Providers) != 1 {
		t.Fatalf("dashboard providers = %d, want 1", len(prov.Providers))
	}
	dashDir := hostPath(grafana, fmt.Sprint(prov.Providers[0].Options["path"]))
	if dashDir != filepath.Join(root, "deploy/grafana/dashboards") {
		t.Errorf("dashboard provider path %v is mounted from %q, want deploy/grafana/dashboards", prov.Providers[0].Options["path"], dashDir)
	}

	data, err := os.ReadFile(filepath.Join(root, "deploy/grafana/dashboards/jwt-authz.json"))
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		UID        string `json:"uid"`
		Title      string `json:"title"`
		Templating struct {
			List []struct {
				Name       string `json:"name"`
				Datasource dsRef  `json:"datasource"`
				Definition string `json:"definition"`
			} `json:"list"`
		} `json:"templating"`
		Panels []struct {
			ID         int                      `json:"id"`
			Type       string                   `json:"type"`
			Title      string                   `json:"title"`
			Datasource dsRef                    `json:"datasource"`
			GridPos    struct{ X, Y, W, H int } `json:"gridPos"`
			Targets    []struct {
				Expr       string `json:"expr"`
				Datasource dsRef  `json:"datasource"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(data, &dash); err != nil {
		t.Fatalf("jwt-authz.json: %v", err)
	}
	if dash.UID == "" || dash.Title == "" {
		t.Error("dashboard needs a uid and a title")
	}
	used := map[string]bool{}
	ids := map[int]bool{}
	for _, v := range dash.Templating.List {
		if v.Datasource.UID != uid {
			t.Errorf("variable %s: datasource uid %q, want %q", v.Name, v.Datasource.UID, uid)
		}
		// label_values(SELECTOR, LABEL): only SELECTOR is PromQL.
		expr := v.Definition
		if m := labelValues.FindStringSubmatch(expr); m != nil {
			expr = m[1]
		}
		if len(promMetrics(expr)) == 0 {
			t.Errorf("variable %s: %q names no metric", v.Name, v.Definition)
		}
		for _, m := range promMetrics(expr) {
			if !exportedMetrics[m] {
				t.Errorf("variable %s: metric %q is not a jwt-authz metric", v.Name, m)
			}
		}
	}
	for _, pn := range dash.Panels {
		if ids[pn.ID] {
			t.Errorf("panel id %d used twice", pn.ID)
		}
		ids[pn.ID] = true
		if pn.GridPos.W <= 0 || pn.GridPos.X+pn.GridPos.W > 24 {
			t.Errorf("panel %q: gridPos %+v does not fit 24 columns", pn.Title, pn.GridPos)
		}
		if pn.Type == "row" {
			continue
		}
		if pn.Datasource.UID != uid {
			t.Errorf("panel %q: datasource uid %q, want the provisioned %q", pn.Title, pn.Datasource.UID, uid)
		}
		if len(pn.Targets) == 0 {
			t.Errorf("panel %q has no query", pn.Title)
		}
		for _, tg := range pn.Targets {
			if tg.Datasource.UID != uid {
				t.Errorf("panel %q: target datasource uid %q, want %q", pn.Title, tg.Datasource.UID, uid)
			}
			metrics := promMetrics(tg.Expr)
			if len(metrics) == 0 {
				t.Errorf("panel %q: expr %q names no metric", pn.Title, tg.Expr)
			}
			for _, m := range metrics {
				if !exportedMetrics[m] {
					t.Errorf("panel %q: metric %q is not a jwt-authz metric", pn.Title, m)
				}
				used[m] = true
			}
		}
	}
	for _, m := range []string{
		"jwt_authz_checks_total",
		"jwt_authz_check_duration_seconds_bucket",
		"jwt_authz_jwks_keys",
		"jwt_authz_jwks_last_success_timestamp_seconds",
		"jwt_authz_jwks_fetches_total",
		"jwt_authz_jwks_unknown_kid_refetches_total",
		"jwt_authz_token_cache_lookups_total",
		"jwt_authz_config_reloads_total",
	} {
		if !used[m] {
			t.Errorf("no panel shows %s", m)
		}
	}
	exprs := string(data)
	for _, want := range []string{
		`sum by (reason) (rate(jwt_authz_checks_total`,
		`histogram_quantile(0.5,`, `histogram_quantile(0.95,`, `histogram_quantile(0.99,`,
		`time() - max by (provider) (jwt_authz_jwks_last_success_timestamp_seconds`,
	} {
		if !strings.Contains(exprs, want) {
			t.Errorf("dashboard has no query with %q", want)
		}
	}
}

var labelValues = regexp.MustCompile(`^label_values\(\s*(.+?)\s*,\s*[a-zA-Z_][a-zA-Z0-9_]*\s*\)$`)

// dsRef is how a Grafana panel, query or variable names its data source.
type dsRef struct {
	UID string `json:"uid"`
}

// promMetrics returns the metric names a PromQL expression selects. It is not a PromQL parser: it
// drops strings, label matchers, ranges and grouping clauses, then keeps the identifiers that are not
// functions or keywords. Good enough for dashboards; TestPromMetrics pins what it understands.
func promMetrics(expr string) []string {
	for _, re := range []*regexp.Regexp{
		regexp.MustCompile(`"(?:[^"\\]|\\.)*"`),
		regexp.MustCompile(`\{[^}]*\}`),
		regexp.MustCompile(`\[[^\]]*\]`),
		regexp.MustCompile(`\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)`),
	} {
		expr = re.ReplaceAllString(expr, " ")
	}
	keywords := map[string]bool{"and": true, "or": true, "unless": true, "bool": true, "offset": true, "atan2": true, "inf": true, "nan": true}
	var out []string
	ident := regexp.MustCompile(`[a-zA-Z_:][a-zA-Z0-9_:]*(\s*\()?`)
	for _, m := range ident.FindAllStringSubmatchIndex(expr, -1) {
		if m[2] >= 0 {
			continue // a function call
		}
		// A number such as 1e3 would match from its "e"; identifiers start after a non-word character.
		if m[0] > 0 && (isWord(expr[m[0]-1]) || expr[m[0]-1] == '.') {
			continue
		}
		name := expr[m[0]:m[1]]
		if keywords[strings.ToLower(name)] || slices.Contains(out, name) {
			continue
		}
		out = append(out, name)
	}
	return out
}

func isWord(c byte) bool {
	return c == '_' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}

func TestPromMetrics(t *testing.T) {
	t.Parallel()
	tests := []struct {
		expr string
		want []string
	}{
		{expr: `sum by (reason) (rate(jwt_authz_checks_total{decision="deny", provider=~"$provider"}[1m]))`, want: []string{"jwt_authz_checks_total"}},
		{expr: `histogram_quantile(0.99, sum by (le) (rate(jwt_authz_check_duration_seconds_bucket[$__rate_interval])))`, want: []string{"jwt_authz_check_duration_seconds_bucket"}},
		{expr: `time() - max by (provider) (jwt_authz_jwks_last_success_timestamp_seconds)`, want: []string{"jwt_authz_jwks_last_success_timestamp_seconds"}},
		{expr: `a_total / on (job) group_left (version) b_info * 1e3 > bool 2`, want: []string{"a_total", "b_info"}},
		{expr: `up offset 5m or envoy_cluster_upstream_rq_total{envoy_cluster_name="jwt_authz"}`, want: []string{"up", "envoy_cluster_upstream_rq_total"}},
		{expr: `label_values(jwt_authz_jwks_keys, provider)`, want: []string{"jwt_authz_jwks_keys", "provider"}},
	}
	for _, tt := range tests {
		if got := promMetrics(tt.expr); !slices.Equal(got, tt.want) {
			t.Errorf("promMetrics(%q) = %q, want %q", tt.expr, got, tt.want)
		}
	}
}

// TestLoaderRejects proves loadCompose is strict: each mutation of the real docker-compose.yaml must
// be refused by compose-go, or by checkMounts for what compose-go does not look at.
func TestLoaderRejects(t *testing.T) {
	t.Parallel()
	root := repoRoot(t)
	file := filepath.Join(root, "docker-compose.yaml")
	good, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		old, new string
		want     string // a substring of the error
	}{
		{name: "unknown service key", old: "    stop_grace_period: 15s", new: "    stop_grace_periode: 15s", want: "stop_grace_periode"},
		{name: "unknown top-level key", old: "services:\n", new: "servics: {}\nservices:\n", want: "servics"},
		{name: "bad duration", old: "    stop_grace_period: 15s", new: "    stop_grace_period: 15 parsecs", want: "15 parsecs"},
		{name: "bad healthcheck duration", old: "      interval: 10s", new: "      interval: often", want: "often"},
		{name: "wrong type", old: "      retries: 5", new: "      retries: five", want: "retries"},
		{name: "dependency on a missing service", old: "      dev-issuer:\n        condition: service_started\n    stop_grace_period", new: "      dev-isuer:\n        condition: service_started\n    stop_grace_period", want: "dev-isuer"},
		{name: "missing bind source", old: "source: ./deploy/compose\n", new: "source: ./deploy/composee\n", want: "deploy/composee does not exist"},
		{name: "config outside the mount", old: `"-config", "/etc/jwt-authz/jwt-authz.yaml"`, new: `"-config", "/etc/jwtauthz/jwt-authz.yaml"`, want: "/etc/jwtauthz/jwt-authz.yaml is in no bind mount"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if strings.Count(string(good), tt.old) != 1 {
				t.Fatalf("docker-compose.yaml holds %q %d times, want once; update this test", tt.old, strings.Count(string(good), tt.old))
			}
			bad := []byte(strings.Replace(string(good), tt.old, tt.new, 1))
			p, err := loadCompose(t.Context(), root, file, bad)
			if err == nil {
				err = errors.Join(checkMounts(p, root)...)
			}
			if err == nil {
				t.Fatal("the mutated compose file was accepted")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error does not mention %q: %v", tt.want, err)
			}
			t.Logf("rejected: %v", err)
		})
	}
	t.Run("no project name", func(t *testing.T) {
		t.Parallel()
		doc := []byte("services:\n  a:\n    image: busybox:1.36.1\n")
		_, err := loader.LoadWithContext(t.Context(), types.ConfigDetails{
			WorkingDir:  t.TempDir(),
			ConfigFiles: []types.ConfigFile{{Filename: "compose.yaml", Content: doc}},
			Environment: types.Mapping{},
		})
		if err == nil {
			t.Error("a compose file without a project name was accepted; loadCompose must keep setting one")
		}
	})
}

func flagValue(t *testing.T, args []string, name string) string {
	t.Helper()
	for i, a := range args {
		if a == name && i+1 < len(args) {
			return args[i+1]
		}
	}
	t.Fatalf("no %s in %q", name, args)
	return ""
}

func listensOn(addrs []string, port string) bool {
	return slices.ContainsFunc(addrs, func(a string) bool {
		_, p, err := net.SplitHostPort(a)
		return err == nil && p == port
	})
}

func readYAMLTree(t *testing.T, file string) map[string]any {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var root map[string]any
	if err := yaml.Unmarshal(data, &root); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	return root
}

// unmarshalStrictFile decodes a YAML file as strictly as the deploy
// module's other files are (k8sobj.StrictYAML: duplicate keys, unknown
// fields and fields in the wrong letter case fail).
func unmarshalStrictFile(t *testing.T, file string, v any) {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if err := k8sobj.StrictYAML(data, v); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
}

// at follows map keys through a generic YAML tree.
func at(t *testing.T, v any, keys ...string) any {
	t.Helper()
	for _, k := range keys {
		m, ok := v.(map[string]any)
		if !ok || m[k] == nil {
			t.Fatalf("no key %q (path %q)", k, keys)
		}
		v = m[k]
	}
	return v
}

func asList(t *testing.T, v any) []any {
	t.Helper()
	l, ok := v.([]any)
	if !ok {
		t.Fatalf("%T is not a list", v)
	}
	return l
}

func sorted(s []string) []string { return slices.Sorted(slices.Values(s)) }

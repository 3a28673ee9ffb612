package k8sobj

import (
	"errors"
	"fmt"
	"path"
	"slices"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"

	"github.com/jwtauthz/jwt-authz/config"
	configv1 "github.com/jwtauthz/jwt-authz/proto/jwtauthz/config/v1"
)

// ConfigKey is the ConfigMap key holding the config file.
const ConfigKey = "config.yaml"

// ImageBinary is where the jwt-authz image keeps its program.
const ImageBinary = "/jwt-authz"

// Check runs the checks every jwt-authz deployment must pass on one
// Deployment with its ConfigMap, Services, HPA, PDB, NetworkPolicy and
// ServiceMonitors, and returns the config the pod reads (validated by the
// config package) with every problem found.
func Check(o *Objects) (*configv1.Config, []error) {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if len(o.Deployments) != 1 || len(o.ConfigMaps) != 1 {
		return nil, []error{fmt.Errorf("%d Deployments and %d ConfigMaps, want one of each", len(o.Deployments), len(o.ConfigMaps))}
	}
	dep, cm := o.Deployments[0], o.ConfigMaps[0]
	pod := dep.Spec.Template
	matches := func(what string, sel map[string]string) {
		if len(sel) == 0 {
			bad("%s: empty selector", what)
		}
		for k, v := range sel {
			if pod.Labels[k] != v {
				bad("%s: selector %s=%s does not match the pod labels %v", what, k, v, pod.Labels)
			}
		}
	}
	if dep.Spec.Selector == nil {
		return nil, []error{errors.New("deployment has no selector")}
	}
	matches("deployment", dep.Spec.Selector.MatchLabels)
	for _, s := range o.Services {
		matches("service "+s.Name, s.Spec.Selector)
	}
	for _, p := range o.PDBs {
		matches("pdb", p.Spec.Selector.MatchLabels)
		if p.Spec.MinAvailable == nil && p.Spec.MaxUnavailable == nil {
			bad("pdb: neither minAvailable nor maxUnavailable")
		}
	}
	for _, np := range o.NetworkPolicies {
		matches("networkpolicy", np.Spec.PodSelector.MatchLabels)
	}
	for _, h := range o.HPAs {
		if h.Spec.ScaleTargetRef.Kind != "Deployment" || h.Spec.ScaleTargetRef.Name != dep.Name {
			bad("hpa targets %+v, want Deployment %s", h.Spec.ScaleTargetRef, dep.Name)
		}
		if len(h.Spec.Metrics) == 0 || h.Spec.Metrics[0].Resource == nil || h.Spec.Metrics[0].Resource.Name != corev1.ResourceCPU {
			bad("hpa does not scale on CPU: %+v", h.Spec.Metrics)
		}
	}

	// The pod: one container, non-root 65532, read-only root, resources, probes.
	if len(pod.Spec.Containers) != 1 {
		return nil, append(errs, fmt.Errorf("%d containers, want 1", len(pod.Spec.Containers)))
	}
	c := pod.Spec.Containers[0]
	if psc := pod.Spec.SecurityContext; psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot ||
		psc.RunAsUser == nil || *psc.RunAsUser != 65532 {
		bad("pod securityContext: want runAsNonRoot: true and runAsUser: 65532")
	}
	if sc := c.SecurityContext; sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem ||
		sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
		bad("container: want readOnlyRootFilesystem: true and allowPrivilegeEscalation: false")
	}
	if c.Image == "" || strings.HasSuffix(c.Image, ":latest") || !strings.ContainsAny(path.Base(c.Image), ":@") {
		bad("image %q: want a version tag or a digest", c.Image)
	}
	if c.Resources.Requests.Cpu().IsZero() || c.Resources.Requests.Memory().IsZero() || c.Resources.Limits.Memory().IsZero() {
		bad("resources %+v: want CPU and memory requests and a memory limit (the HPA needs the CPU request)", c.Resources)
	}
	if err := checkGoMemLimit(c); err != nil {
		errs = append(errs, err)
	}
	ports := map[string]int32{}
	for _, p := range c.Ports {
		ports[p.Name] = p.ContainerPort
	}
	switch rp := c.ReadinessProbe; {
	case rp == nil:
		bad("no readiness probe")
	case rp.GRPC != nil:
		if rp.GRPC.Port != ports["grpc"] {
			bad("readiness probe: grpc.health.v1 on port %d, the grpc port is %d", rp.GRPC.Port, ports["grpc"])
		}
	case rp.HTTPGet != nil:
		if rp.HTTPGet.Path != "/readyz" || rp.HTTPGet.Port.String() != "http-metrics" {
			bad("readiness probe: GET %s on %s, want /readyz on http-metrics", rp.HTTPGet.Path, rp.HTTPGet.Port.String())
		}
	default:
		bad("readiness probe %+v: want grpc or GET /readyz", rp)
	}
	if lp := c.LivenessProbe; lp == nil || lp.HTTPGet == nil || lp.HTTPGet.Path != "/healthz" || lp.HTTPGet.Port.String() != "http-metrics" {
		bad("liveness probe %+v: want GET /healthz on http-metrics", lp)
	}

	// Services: every target port exists on the container; gRPC is HTTP/2
	// by name and appProtocol.
	for _, s := range o.Services {
		for _, p := range s.Spec.Ports {
			if _, ok := ports[p.TargetPort.String()]; !ok {
				bad("service %s port %s targets %q, not a container port (%v)", s.Name, p.Name, p.TargetPort.String(), ports)
			}
			if p.Name == "grpc" && (p.AppProtocol == nil || *p.AppProtocol != "grpc") {
				bad("service %s port grpc: appProtocol %v, want grpc", s.Name, p.AppProtocol)
			}
		}
	}
	for _, sm := range o.ServiceMonitors {
		for _, ep := range sm.Spec.Endpoints {
			scraped := slices.ContainsFunc(o.Services, func(s *corev1.Service) bool {
				return subset(sm.Spec.Selector.MatchLabels, s.Labels) &&
					slices.ContainsFunc(s.Spec.Ports, func(p corev1.ServicePort) bool { return p.Name == ep.Port })
			})
			if ep.Port != "http-metrics" || ep.Path != "/metrics" || !scraped {
				bad("servicemonitor endpoint %s%s: want /metrics on the http-metrics port of a Service it selects", ep.Port, ep.Path)
			}
		}
	}

	// The config comes from the ConfigMap, mounted as a directory (a
	// subPath mount never sees updates, so reloads would never happen).
	mounts := map[string]corev1.VolumeMount{} // volume name -> mount
	for _, vm := range c.VolumeMounts {
		mounts[vm.Name] = vm
	}
	var cmMount *corev1.VolumeMount
	for _, v := range pod.Spec.Volumes {
		if vm, ok := mounts[v.Name]; ok && v.ConfigMap != nil && v.ConfigMap.Name == cm.Name {
			cmMount = &vm
		}
	}
	if cmMount == nil {
		return nil, append(errs, fmt.Errorf("no mount of ConfigMap %s", cm.Name))
	}
	if cmMount.SubPath != "" {
		bad("config mounted with subPath %q: ConfigMap updates would never reach the file", cmMount.SubPath)
	}
	// The image (release/ and the Dockerfile's runtime stage) holds the
	// program at /jwt-authz; a command naming any other path fails to start.
	if len(c.Command) > 0 && c.Command[0] != ImageBinary {
		bad("command %q: the image's program is %s", c.Command, ImageBinary)
	}
	args := slices.Concat(c.Command, c.Args)
	i := slices.Index(args, "-config")
	if i < 0 || i+1 >= len(args) || !slices.Contains(args, "serve") {
		return nil, append(errs, fmt.Errorf("command %q args %q: want serve -config FILE", c.Command, c.Args))
	}
	if want := cmMount.MountPath + "/" + ConfigKey; args[i+1] != want {
		bad("-config %s, want %s (the ConfigMap's key %s)", args[i+1], want, ConfigKey)
	}
	data, ok := cm.Data[ConfigKey]
	if !ok {
		return nil, append(errs, fmt.Errorf("ConfigMap %s has no key %s", cm.Name, ConfigKey))
	}
	cfg, err := config.Parse([]byte(data))
	if err != nil {
		return nil, append(errs, fmt.Errorf("the ConfigMap's config is not valid: %w", err))
	}
	for _, hp := range []struct{ addr, port string }{{cfg.GetListen().GetGrpc(), "grpc"}, {cfg.GetListen().GetHttp(), "http-metrics"}} {
		if hp.addr != "0.0.0.0:"+strconv.Itoa(int(ports[hp.port])) {
			bad("config listens on %q; the pod's %s port is %d on all interfaces", hp.addr, hp.port, ports[hp.port])
		}
	}

	// cache_file: a writable emptyDir or PVC mount holds each provider's file.
	for i, p := range cfg.GetProviders() {
		f := p.GetJwks().GetCacheFile()
		if f == "" {
			bad("providers[%d].jwks.cache_file is not set", i)
			continue
		}
		if !writableVolume(pod.Spec.Volumes, c.VolumeMounts, f) {
			bad("providers[%d].jwks.cache_file %s is not in a writable emptyDir or PVC mount", i, f)
		}
	}
	return cfg, errs
}

func subset(sel, labels map[string]string) bool {
	for k, v := range sel {
		if labels[k] != v {
			return false
		}
	}
	return len(sel) > 0
}

func writableVolume(vols []corev1.Volume, mounts []corev1.VolumeMount, file string) bool {
	for _, vm := range mounts {
		if vm.ReadOnly || vm.SubPath != "" || !strings.HasPrefix(file, strings.TrimSuffix(vm.MountPath, "/")+"/") {
			continue
		}
		for _, v := range vols {
			if v.Name == vm.Name && (v.EmptyDir != nil || v.PersistentVolumeClaim != nil) {
				return true
			}
		}
	}
	return false
}

// checkGoMemLimit: GOMEMLIMIT is set, parses as the Go runtime reads it, and
// lies between half the memory limit and the limit.
func checkGoMemLimit(c corev1.Container) error {
	var val string
	for _, e := range c.Env {
		if e.Name == "GOMEMLIMIT" {
			val = e.Value
		}
	}
	if val == "" {
		return errors.New("no GOMEMLIMIT: without it the GC lets the heap reach twice the live size")
	}
	n, err := ParseGoMemLimit(val)
	if err != nil {
		return err
	}
	limit := c.Resources.Limits.Memory().Value()
	if n <= limit/2 || n >= limit {
		return fmt.Errorf("GOMEMLIMIT %s = %d bytes, want between half the memory limit and the limit %d", val, n, limit)
	}
	return nil
}

// ParseGoMemLimit parses a GOMEMLIMIT value the way the Go runtime does
// (runtime/debug: an integer with an optional B, KiB, MiB, GiB or TiB).
func ParseGoMemLimit(s string) (int64, error) {
	units := []struct {
		suffix string
		mult   int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40}, {"B", 1}}
	mult := int64(1)
	for _, u := range units {
		if rest, ok := strings.CutSuffix(s, u.suffix); ok {
			s, mult = rest, u.mult
			break
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("GOMEMLIMIT %q: not an integer with B, KiB, MiB, GiB or TiB", s)
	}
	return n * mult, nil
}

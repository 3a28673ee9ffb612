package k8sobj

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// base decodes the kustomize base, which passes Check.
func base(t *testing.T) *Objects {
	t.Helper()
	files, err := filepath.Glob("../../kubernetes/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("kustomize base: %v", err)
	}
	o := &Objects{}
	for _, f := range files {
		if filepath.Base(f) == "kustomization.yaml" {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if err := o.Decode(b); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
	}
	if _, errs := Check(o); len(errs) > 0 {
		t.Fatalf("the base fails Check: %v", errs)
	}
	return o
}

func pod(o *Objects) *corev1.PodSpec { return &o.Deployments[0].Spec.Template.Spec }

func ctr(o *Objects) *corev1.Container { return &pod(o).Containers[0] }

// TestCheckCatchesMistakes: each mistake a deployment could make is reported.
func TestCheckCatchesMistakes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		mistake func(o *Objects)
		want    string
	}{
		{"service selects other pods", func(o *Objects) { o.Services[0].Spec.Selector = map[string]string{"app": "x"} }, "does not match the pod labels"},
		{"runs as root", func(o *Objects) { u := int64(0); pod(o).SecurityContext.RunAsUser = &u }, "runAsUser: 65532"},
		{"writable root", func(o *Objects) { f := false; ctr(o).SecurityContext.ReadOnlyRootFilesystem = &f }, "readOnlyRootFilesystem"},
		{"latest image", func(o *Objects) { ctr(o).Image = "ghcr.io/jwtauthz/jwt-authz:latest" }, "want a version tag or a digest"},
		{"untagged image", func(o *Objects) { ctr(o).Image = "ghcr.io/jwtauthz/jwt-authz" }, "want a version tag or a digest"},
		{"GOMEMLIMIT above the limit", func(o *Objects) { ctr(o).Env[0].Value = "300MiB" }, "GOMEMLIMIT"},
		{"GOMEMLIMIT unreadable", func(o *Objects) { ctr(o).Env[0].Value = "200MB" }, "GOMEMLIMIT"},
		{"no GOMEMLIMIT", func(o *Objects) { ctr(o).Env = nil }, "no GOMEMLIMIT"},
		{"no memory limit", func(o *Objects) { ctr(o).Resources.Limits = nil }, "memory limit"},
		{"config through subPath", func(o *Objects) { ctr(o).VolumeMounts[0].SubPath = "config.yaml" }, "subPath"},
		{"program elsewhere", func(o *Objects) { ctr(o).Command = []string{"/usr/local/bin/jwt-authz", "serve"} }, "the image's program is /jwt-authz"},
		{"config elsewhere", func(o *Objects) { ctr(o).Args = []string{"-config", "/tmp/config.yaml"} }, "want /etc/jwt-authz/config.yaml"},
		{"invalid config", func(o *Objects) {
			o.ConfigMaps[0].Data[ConfigKey] = strings.Replace(o.ConfigMaps[0].Data[ConfigKey], "audiences:", "audience:", 1)
		}, "not valid"},
		{"listens on another port", func(o *Objects) { ctr(o).Ports[0].ContainerPort = 9002 }, "config listens on"},
		{"cache_file on a read-only mount", func(o *Objects) { ctr(o).VolumeMounts[1].ReadOnly = true }, "cache_file"},
		{"cache_file with no volume", func(o *Objects) {
			ctr(o).VolumeMounts = ctr(o).VolumeMounts[:1]
		}, "cache_file"},
		{"readiness on the wrong port", func(o *Objects) { ctr(o).ReadinessProbe.GRPC.Port = 9090 }, "readiness probe"},
		{"liveness on readiness", func(o *Objects) { ctr(o).LivenessProbe.HTTPGet.Path = "/readyz" }, "liveness probe"},
		{"service targets a missing port", func(o *Objects) { o.Services[0].Spec.Ports[0].TargetPort = intstr.FromString("grpcs") }, "not a container port"},
		{"HPA on another deployment", func(o *Objects) { o.HPAs[0].Spec.ScaleTargetRef.Name = "other" }, "hpa targets"},
		{"two deployments", func(o *Objects) { o.Deployments = append(o.Deployments, &appsv1.Deployment{}) }, "want one of each"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			o := base(t)
			tt.mistake(o)
			_, errs := Check(o)
			for _, err := range errs {
				if strings.Contains(err.Error(), tt.want) {
					return
				}
			}
			t.Errorf("errors %v, want one containing %q", errs, tt.want)
		})
	}
}

// TestParseGoMemLimit agrees with Kubernetes on the binary units.
func TestParseGoMemLimit(t *testing.T) {
	t.Parallel()
	for gomem, quantity := range map[string]string{
		"230MiB": "230Mi", "1GiB": "1Gi", "512KiB": "512Ki", "1TiB": "1Ti", "123456B": "123456", "123456": "123456",
	} {
		n, err := ParseGoMemLimit(gomem)
		if err != nil {
			t.Fatalf("%s: %v", gomem, err)
		}
		if q := resource.MustParse(quantity); n != q.Value() {
			t.Errorf("%s = %d, Kubernetes reads %s as %d", gomem, n, quantity, q.Value())
		}
	}
	for _, s := range []string{"", "200MB", "1.5GiB", "-1", "MiB", "12 MiB"} {
		if _, err := ParseGoMemLimit(s); err == nil {
			t.Errorf("%q parsed", s)
		}
	}
}

// TestDecodeAll skips comment-only documents and names unknown kinds.
func TestDecodeAll(t *testing.T) {
	t.Parallel()
	o := &Objects{}
	stream := "# a comment only\n---\napiVersion: v1\nkind: Service\nmetadata: {name: a}\n---\n\n---\napiVersion: v1\nkind: Secret\nmetadata: {name: s}\n"
	err := o.DecodeAll([]byte(stream))
	if len(o.Services) != 1 || err == nil || !strings.Contains(err.Error(), `"Secret"`) {
		t.Errorf("services %d, error %v: want one Service and an error naming Secret", len(o.Services), err)
	}
}

// Package k8sobj owns the strict decoding of jwt-authz's Kubernetes objects
// (the kustomize base and component, the Helm chart's renderings) into the
// Kubernetes API types, and the checks every way of deploying jwt-authz must
// pass: selectors, ports, probes, security, GOMEMLIMIT, the config file
// (validated by the config package) and its cache_file volume. It is used
// by the deploy module's tests only.
package k8sobj

import (
	"bytes"
	"errors"
	"fmt"
	"regexp"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"
)

// StrictYAML decodes YAML the way the API server does: duplicate keys,
// unknown fields and fields in the wrong letter case all fail
// (encoding/json, under sigs.k8s.io/yaml.UnmarshalStrict, would accept
// "ImagePullPolicy" for "imagePullPolicy").
func StrictYAML(b []byte, v any) error {
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

// ServiceMonitor is monitoring.coreos.com/v1 ServiceMonitor, as far as
// jwt-authz uses it: the operator's Go types are a large module, and strict
// decoding into this subset still fails on a misspelt field.
type ServiceMonitor struct {
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

// RuleGroups is Prometheus's rule file format (rulefmt), as far as
// jwt-authz uses it; it is also the spec of a PrometheusRule.
type RuleGroups struct {
	Groups []RuleGroup `json:"groups"`
}

// RuleGroup is one group of rules.
type RuleGroup struct {
	Name     string `json:"name"`
	Interval string `json:"interval,omitempty"`
	Rules    []Rule `json:"rules"`
}

// Rule is an alerting or recording rule.
type Rule struct {
	Alert       string            `json:"alert,omitempty"`
	Record      string            `json:"record,omitempty"`
	Expr        string            `json:"expr"`
	For         string            `json:"for,omitempty"`
	Labels      map[string]string `json:"labels,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty"`
}

// PrometheusRule is monitoring.coreos.com/v1 PrometheusRule.
type PrometheusRule struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              RuleGroups `json:"spec"`
}

// Objects are decoded objects, by kind.
type Objects struct {
	Namespaces      []*corev1.Namespace
	ConfigMaps      []*corev1.ConfigMap
	Deployments     []*appsv1.Deployment
	Services        []*corev1.Service
	HPAs            []*autoscalingv2.HorizontalPodAutoscaler
	PDBs            []*policyv1.PodDisruptionBudget
	NetworkPolicies []*networkingv1.NetworkPolicy
	ServiceMonitors []*ServiceMonitor
	PrometheusRules []*PrometheusRule
}

// Decode decodes one object strictly into the type of its apiVersion and
// kind; another kind is an error.
func (o *Objects) Decode(b []byte) error {
	var tm metav1.TypeMeta
	if err := yaml.Unmarshal(b, &tm); err != nil {
		return err
	}
	switch tm.APIVersion + " " + tm.Kind {
	case "v1 Namespace":
		return decodeInto(b, &o.Namespaces)
	case "v1 ConfigMap":
		return decodeInto(b, &o.ConfigMaps)
	case "apps/v1 Deployment":
		return decodeInto(b, &o.Deployments)
	case "v1 Service":
		return decodeInto(b, &o.Services)
	case "autoscaling/v2 HorizontalPodAutoscaler":
		return decodeInto(b, &o.HPAs)
	case "policy/v1 PodDisruptionBudget":
		return decodeInto(b, &o.PDBs)
	case "networking.k8s.io/v1 NetworkPolicy":
		return decodeInto(b, &o.NetworkPolicies)
	case "monitoring.coreos.com/v1 ServiceMonitor":
		return decodeInto(b, &o.ServiceMonitors)
	case "monitoring.coreos.com/v1 PrometheusRule":
		return decodeInto(b, &o.PrometheusRules)
	}
	return fmt.Errorf("unexpected kind %q %q", tm.APIVersion, tm.Kind)
}

func decodeInto[T any](b []byte, list *[]*T) error {
	v := new(T)
	if err := StrictYAML(b, v); err != nil {
		return err
	}
	*list = append(*list, v)
	return nil
}

var docSeparator = regexp.MustCompile(`(?m)^---[ \t]*$`)

// DecodeAll decodes a stream of YAML documents; documents holding only
// comments are skipped, as kubectl does.
func (o *Objects) DecodeAll(stream []byte) error {
	var errs []error
	for i, doc := range docSeparator.Split(string(stream), -1) {
		if empty([]byte(doc)) {
			continue
		}
		if err := o.Decode([]byte(doc)); err != nil {
			errs = append(errs, fmt.Errorf("document %d: %w\n%s", i, err, doc))
		}
	}
	return errors.Join(errs...)
}

func empty(doc []byte) bool {
	for line := range bytes.Lines(doc) {
		line = bytes.TrimSpace(line)
		if len(line) > 0 && line[0] != '#' {
			return false
		}
	}
	return true
}

// StrictYAMLSubset decodes YAML that must be well formed (no duplicate
// keys) into v, which may name only some of its fields.
func StrictYAMLSubset(b []byte, v any) error {
	js, err := yaml.YAMLToJSONStrict(b)
	if err != nil {
		return err
	}
	return kjson.UnmarshalCaseSensitivePreserveInts(js, v)
}

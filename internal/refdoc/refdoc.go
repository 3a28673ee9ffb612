// Package refdoc writes docs/reference.md from what the code holds: the
// config schema (the proto's descriptors, and the comments of its .proto
// source, which the generated Go does not keep), the metrics the packages
// register, and the reasons with their HTTP status, gRPC code, challenge
// and Apigee code. Its test keeps the file in step with the code:
//
//	go test ./internal/refdoc -update
//
// A config field without an example here, or an example for a field that
// no longer exists, fails the generation. Generate is a pure function of
// its input; nothing here is used at run time.
package refdoc

import (
	"bufio"
	"bytes"
	"fmt"
	"regexp"
	"sort"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/jwtauthz/jwt-authz/authz"
	"github.com/jwtauthz/jwt-authz/envoy"
	"github.com/jwtauthz/jwt-authz/jwks"
	configv1 "github.com/jwtauthz/jwt-authz/proto/jwtauthz/config/v1"
	"github.com/jwtauthz/jwt-authz/replay"
)

// Generate returns docs/reference.md for the .proto source protoSrc.
func Generate(protoSrc []byte) ([]byte, error) {
	comments := protoComments(protoSrc)
	var b bytes.Buffer
	b.WriteString(intro)
	var missing []string
	used := map[string]bool{}
	writeMessage(&b, "", (&configv1.Config{}).ProtoReflect().Descriptor(), comments, used, &missing)
	for p := range examples {
		if !used[p] {
			missing = append(missing, p+": an example for a field the schema does not have")
		}
	}
	for p := range notes {
		if !used[p] {
			missing = append(missing, p+": a note for a field the schema does not have")
		}
	}
	if len(missing) > 0 {
		sort.Strings(missing)
		return nil, fmt.Errorf("refdoc: add to (or remove from) examples and notes in internal/refdoc/examples.go:\n  %s", strings.Join(missing, "\n  "))
	}
	writeMetrics(&b)
	writeReasons(&b)
	return b.Bytes(), nil
}

const intro = `# Reference

Every config field, metric and reason of jwt-authz. This file is generated from the code — the config
schema ([proto/jwtauthz/config/v1/config.proto](../proto/jwtauthz/config/v1/config.proto) and its
comments), the metrics the packages register, and the reason table of ` + "`authz`" + ` — by
` + "`go test ./internal/refdoc -update`" + `; a test fails when it is out of date. For what a denial
means and what to check, see [troubleshooting.md](troubleshooting.md).

## Configuration

One YAML (or JSON) file. Names are snake_case (protojson's lowerCamelCase spellings are accepted too);
durations are strings in seconds (` + "`\"30s\"`, `\"0.5s\"`" + `); an unknown field, a wrong type or a key
written twice in one mapping is refused with its field path (` + "`providers[0].jwks.uri: ...`" + `),
every problem at once. Check a file with ` + "`jwt-authz validate -config FILE`" + `.
A default in the table is what an absent field means; "—" means no value (the feature is off, or the
field is required where its description says so).

`

// message field comments of the .proto source: "Message.field" -> text,
// and "Message" -> the message's own comment.
func protoComments(src []byte) map[string]string {
	out := map[string]string{}
	msgRE := regexp.MustCompile(`^message (\w+) \{`)
	fieldRE := regexp.MustCompile(`^\s+(?:optional |repeated )?[\w.]+ (\w+) = \d+;`)
	var msg string
	var pending []string
	sc := bufio.NewScanner(bytes.NewReader(src))
	for sc.Scan() {
		line := sc.Text()
		trimmed := strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(trimmed, "//"):
			pending = append(pending, strings.TrimSpace(strings.TrimPrefix(trimmed, "//")))
			continue
		case msgRE.MatchString(line):
			msg = msgRE.FindStringSubmatch(line)[1]
			out[msg] = strings.Join(pending, " ")
		case fieldRE.MatchString(line) && msg != "":
			out[msg+"."+fieldRE.FindStringSubmatch(line)[1]] = strings.Join(pending, " ")
		}
		pending = nil
	}
	return out
}

var (
	defaultRE      = regexp.MustCompile(`Default:? (.+?)(?:\. |\.$|;|: | \(|$)`)
	defaultAfterRE = regexp.MustCompile(`(\S+) \(default`)
)

// defaultOf reads the default from a field's comment, or names the zero
// value.
func defaultOf(comment string, fd protoreflect.FieldDescriptor) string {
	if m := defaultRE.FindStringSubmatch(comment); m != nil {
		return "`" + strings.Trim(m[1], "`") + "`"
	}
	if m := defaultAfterRE.FindStringSubmatch(comment); m != nil {
		return "`" + m[1] + "`"
	}
	if fd.Kind() == protoreflect.BoolKind && !fd.IsList() {
		return "`false`"
	}
	return "—"
}

func typeOf(fd protoreflect.FieldDescriptor) string {
	var t string
	switch fd.Kind() {
	case protoreflect.MessageKind:
		switch fd.Message().FullName() {
		case "google.protobuf.Duration":
			t = "duration"
		case "google.protobuf.Value":
			t = "string, number or bool"
		default:
			t = "object"
		}
	case protoreflect.StringKind:
		t = "string"
	case protoreflect.BoolKind:
		t = "bool"
	default:
		t = "integer ≥ 0"
	}
	if fd.IsList() {
		return "list of " + t
	}
	if o := fd.ContainingOneof(); o != nil && !o.IsSynthetic() {
		t += " (one of " + oneofNames(o) + ")"
	}
	return t
}

func oneofNames(o protoreflect.OneofDescriptor) string {
	var names []string
	for i := range o.Fields().Len() {
		names = append(names, string(o.Fields().Get(i).Name()))
	}
	return strings.Join(names, ", ")
}

func cell(s string) string { return strings.ReplaceAll(s, "|", `\|`) }

// writeMessage writes the table of md at path, then the tables of its
// message fields.
func writeMessage(b *bytes.Buffer, path string, md protoreflect.MessageDescriptor, comments map[string]string, used map[string]bool, missing *[]string) {
	title := path
	if title == "" {
		title = "top level"
	}
	fmt.Fprintf(b, "### %s\n\n", title)
	if c := comments[string(md.Name())]; c != "" {
		fmt.Fprintf(b, "%s\n\n", c)
	}
	b.WriteString("| field | type | default | example | description |\n|---|---|---|---|---|\n")
	type child struct {
		path string
		md   protoreflect.MessageDescriptor
	}
	var children []child
	for i := range md.Fields().Len() {
		fd := md.Fields().Get(i)
		p := string(fd.Name())
		if path != "" {
			p = path + "." + p
		}
		key := p
		if fd.IsList() && fd.Kind() == protoreflect.MessageKind && fd.Message().FullName() != "google.protobuf.Value" {
			key = p + "[]"
		}
		comment := comments[string(md.Name())+"."+string(fd.Name())]
		ex, ok := examples[key]
		if !ok {
			*missing = append(*missing, key+": no example")
		}
		used[key] = true
		typ := typeOf(fd)
		if fd.Kind() == protoreflect.MessageKind && typ == "object" || strings.HasPrefix(typ, "list of object") || strings.HasPrefix(typ, "object (") {
			anchor := strings.NewReplacer("[", "", "]", "", ".", "").Replace(key)
			typ = strings.Replace(typ, "object", fmt.Sprintf("[object](#%s)", anchor), 1)
			children = append(children, child{key, fd.Message()})
		}
		desc := strings.TrimSpace(comment + " " + notes[key])
		fmt.Fprintf(b, "| `%s` | %s | %s | %s | %s |\n", p, typ, cell(defaultOf(comment, fd)), cell(ex), cell(desc))
	}
	b.WriteString("\n")
	for _, c := range children {
		writeMessage(b, c.path, c.md, comments, used, missing)
	}
}

// recorder is a prometheus.Registerer that keeps what is registered.
type recorder struct{ cs []prometheus.Collector }

func (r *recorder) Register(c prometheus.Collector) error { r.cs = append(r.cs, c); return nil }
func (r *recorder) MustRegister(cs ...prometheus.Collector) {
	r.cs = append(r.cs, cs...)
}
func (r *recorder) Unregister(prometheus.Collector) bool { return true }

// ServeMetrics are the metrics cmd/jwt-authz serve registers itself;
// its test checks them against a running server's /metrics.
var ServeMetrics = []Metric{
	{Name: "jwt_authz_config_reloads_total", Type: "counter", Labels: "`result`", Help: "Config reloads by result (success, error)."},
	{Name: "jwt_authz_build_info", Type: "gauge", Labels: "`version`, `goversion`", Help: "Build information; always 1."},
}

// Metric is one row of the metrics table.
type Metric struct{ Name, Type, Labels, Help string }

var descRE = regexp.MustCompile(`fqName: "([^"]+)", help: "((?:[^"\\]|\\.)*)".*variableLabels: \{([^}]*)\}`)

// Metrics lists the metrics the packages register, then ServeMetrics.
func Metrics() []Metric {
	r := &recorder{}
	authz.NewMetrics(r)
	authz.NewCacheMetrics(r)
	jwks.NewMetrics(r)
	if _, err := replay.NewMemory(replay.MemoryOptions{Registerer: r}); err != nil {
		panic(err) // a recorder refuses nothing
	}
	var out []Metric
	for _, c := range r.cs {
		var typ string
		// Gauge first: a Gauge also has a Counter's methods.
		switch c.(type) {
		case *prometheus.GaugeVec, prometheus.Gauge:
			typ = "gauge"
		case *prometheus.CounterVec, prometheus.Counter:
			typ = "counter"
		case *prometheus.HistogramVec, prometheus.Histogram:
			typ = "histogram"
		default:
			typ = "untyped"
		}
		ch := make(chan *prometheus.Desc, 8)
		c.Describe(ch)
		close(ch)
		for d := range ch {
			m := descRE.FindStringSubmatch(d.String())
			if m == nil {
				continue
			}
			labels := "—"
			if m[3] != "" {
				var ls []string
				for _, l := range strings.Split(m[3], ",") {
					ls = append(ls, "`"+strings.TrimSpace(l)+"`")
				}
				labels = strings.Join(ls, ", ")
			}
			out = append(out, Metric{Name: m[1], Type: typ, Labels: labels, Help: strings.ReplaceAll(m[2], `\"`, `"`)})
		}
	}
	return append(out, ServeMetrics...)
}

func writeMetrics(b *bytes.Buffer) {
	b.WriteString(`## Metrics

On ` + "`GET /metrics`" + ` of the HTTP listener (` + "`listen.http`" + `), in Prometheus' text format, plus the Go and process
collectors (` + "`go_*`, `process_*`" + `). Label values come only from constants and the config: ` + "`provider`" + ` is a
provider's name or ` + "`none`" + `, ` + "`reason`" + ` one of the [reasons](#reasons), ` + "`decision`" + ` is allow or deny.

| metric | type | labels | meaning |
|---|---|---|---|
`)
	for _, m := range Metrics() {
		fmt.Fprintf(b, "| `%s` | %s | %s | %s |\n", m.Name, m.Type, m.Labels, cell(m.Help))
	}
	b.WriteString("\n")
}

func writeReasons(b *bytes.Buffer) {
	b.WriteString(`## Reasons

Every Check ends with one reason: the ` + "`reason`" + ` label of ` + "`jwt_authz_checks_total`" + `, the ` + "`reason`" + ` of the deny body
and of the decision log, ` + "`X-Jwt-Authz-Reason`" + ` in the HTTP authorization mode, and ` + "`reason`" + ` in Envoy's
dynamic metadata. A denial answers with the HTTP status below (` + "`denied_response.status`" + `), the gRPC code in
` + "`CheckResponse.status`" + `, the ` + "`WWW-Authenticate`" + ` challenge (realm R is ` + "`realm`" + ` in the config) and the body
` + "`{\"error\": ERROR, \"error_description\": \"…\", \"reason\": REASON}`" + ` — or, with ` + "`deny_body: apigee`" + `,
` + "`{\"fault\": {\"faultstring\": \"…\", \"detail\": {\"errorcode\": APIGEE}}}`" + `. What each one means and what to
check: [troubleshooting.md](troubleshooting.md).

| reason | decision | HTTP | gRPC code | challenge | body ` + "`error`" + ` | Apigee ` + "`errorcode`" + ` |
|---|---|---|---|---|---|---|
`)
	for _, r := range authz.Reasons {
		st := r.Status()
		allow := st == 200
		code := envoy.Response(&authz.Decision{Allow: allow, Reason: r, Status: st}).GetStatus().GetCode()
		decision, challenge, errCode, apigee := "allow", "—", "—", "—"
		if !allow {
			decision = "deny"
			errCode = "`" + r.ErrorCode() + "`"
			apigee = "`" + r.ApigeeCode() + "`"
			switch {
			case st == 401 && r == authz.ReasonMissingToken:
				challenge = "`Bearer realm=\"R\"`, and a second `DPoP algs=\"…\"` when a provider accepts DPoP"
			case r == authz.ReasonInvalidProof:
				challenge = "`DPoP algs=\"…\", error=\"invalid_dpop_proof\", error_description=\"…\"`"
			case r == authz.ReasonSenderMismatch || r == authz.ReasonMissingProof || r == authz.ReasonUnboundToken:
				challenge = "`DPoP algs=\"…\", error=\"invalid_token\", error_description=\"…\"` for DPoP; the Bearer one below for mTLS"
			case st == 401:
				challenge = "`Bearer realm=\"R\", error=\"invalid_token\", error_description=\"…\"`"
			case st == 403:
				challenge = "`Bearer realm=\"R\", error=\"insufficient_scope\"` (+ `scope=\"…\"` when scopes are missing)"
			case st == 503:
				challenge = "none; `retry-after: 5`"
			default:
				challenge = "none"
			}
		}
		fmt.Fprintf(b, "| `%s` | %s | %d | %d %s | %s | %s | %s |\n", r, decision, st, code, codes.Code(code), challenge, errCode, apigee)
	}
	b.WriteString("\n")
}

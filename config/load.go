// Package config reads jwt-authz's YAML configuration into the
// jwtauthz.config.v1.Config proto, validates it (every problem, each with
// its field path, at once) and maps it to authz and jwks options. It starts
// nothing: package stack runs what the options describe. Defaults and
// invariants belong to the library that uses a value (jwks.Options.Validate,
// authz.ValidProviderName, authz.Algorithms); config reports their errors at
// the config's field paths. Besides cmd/ and stack, it is the only package
// that reads the proto.
//
// Concurrency: every function is a pure function of its input.
package config

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"regexp"
	"sort"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/reflect/protoreflect"
	"sigs.k8s.io/yaml"

	configv1 "github.com/jwtauthz/jwt-authz/proto/jwtauthz/config/v1"
)

// MaxFileBytes bounds the config file.
const MaxFileBytes = 4 << 20

// Load reads and validates the config file at path.
func Load(path string) (*configv1.Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return Parse(b)
}

// Parse decodes and validates a YAML (or JSON) document. The error joins
// every problem found, each prefixed with its field path.
func Parse(b []byte) (*configv1.Config, error) {
	if len(b) > MaxFileBytes {
		return nil, fmt.Errorf("config: file larger than %d bytes", MaxFileBytes)
	}
	js, err := yaml.YAMLToJSON(b)
	if err != nil {
		return nil, fmt.Errorf("config: not valid YAML: %w", err)
	}
	var doc any
	if err := json.Unmarshal(js, &doc); err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	if doc == nil {
		doc = map[string]any{}
	}
	cfg := &configv1.Config{}
	var errs fieldErrors
	checkDuplicateKeys(&errs, b, cfg.ProtoReflect().Descriptor())
	// checkShape drops what it reports, so the rest can still be decoded
	// and validated: every problem is reported at once.
	if !checkShape(&errs, "", doc, cfg.ProtoReflect().Descriptor()) {
		return nil, errs.join()
	}
	js, _ = json.Marshal(doc)
	if err := (protojson.UnmarshalOptions{}).Unmarshal(js, cfg); err != nil {
		// checkShape should have caught it; keep protojson's words.
		return nil, fmt.Errorf("config: %w", err)
	}
	validate(&errs, cfg)
	if len(errs) > 0 {
		return nil, errs.join()
	}
	return cfg, nil
}

// fieldErrors collects problems with their paths.
type fieldErrors []string

func (e *fieldErrors) add(path, format string, args ...any) {
	if path == "" {
		path = "config"
	}
	*e = append(*e, path+": "+fmt.Sprintf(format, args...))
}

func (e fieldErrors) join() error {
	if len(e) == 0 {
		return nil
	}
	errs := make([]error, len(e))
	for i, s := range e {
		errs[i] = errors.New(s)
	}
	return errors.Join(errs...)
}

func join(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

var durationRE = regexp.MustCompile(`^-?[0-9]+(\.[0-9]{1,9})?s$`)

// checkShape walks the decoded document against the message descriptor so
// that every unknown field and wrong type is reported with its path, all
// at once (protojson stops at the first and names a JSON line and column
// that the YAML author never saw).
// It returns false when v itself is unusable; unusable parts inside an
// object are deleted from it.
func checkShape(errs *fieldErrors, path string, v any, md protoreflect.MessageDescriptor) bool {
	switch md.FullName() {
	case "google.protobuf.Duration":
		s, ok := v.(string)
		if !ok || !durationRE.MatchString(s) {
			errs.add(path, "invalid duration %s: use seconds with an \"s\", such as \"30s\" or \"0.5s\"", show(v))
			return false
		}
		return true
	case "google.protobuf.Value":
		return true
	}
	obj, ok := v.(map[string]any)
	if !ok {
		errs.add(path, "must be an object, not %s", kind(v))
		return false
	}
	keys := make([]string, 0, len(obj))
	for k := range obj {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	seenOneof := map[protoreflect.FullName]string{}
	for _, k := range keys {
		fd := md.Fields().ByName(protoreflect.Name(k))
		if fd == nil {
			fd = md.Fields().ByJSONName(k)
		}
		p := join(path, k)
		if fd == nil {
			errs.add(p, "unknown field")
			delete(obj, k)
			continue
		}
		if _, both := obj[string(fd.Name())]; both && k != string(fd.Name()) {
			// The field under both of its names: checkDuplicateKeys has
			// reported it; protojson would stop at it.
			delete(obj, k)
			continue
		}
		if o := fd.ContainingOneof(); o != nil && !o.IsSynthetic() {
			if other, dup := seenOneof[o.FullName()]; dup {
				errs.add(p, "only one of %s and %s may be set", other, k)
				delete(obj, k)
				continue
			}
			seenOneof[o.FullName()] = k
		}
		val := obj[k]
		if val == nil {
			delete(obj, k)
			continue
		}
		if fd.IsList() {
			list, ok := val.([]any)
			if !ok {
				errs.add(p, "must be a list, not %s", kind(val))
				delete(obj, k)
				continue
			}
			kept := list[:0]
			for i, e := range list {
				if checkValue(errs, fmt.Sprintf("%s[%d]", p, i), e, fd) {
					kept = append(kept, e)
				}
			}
			obj[k] = kept
			continue
		}
		if !checkValue(errs, p, val, fd) {
			delete(obj, k)
		}
	}
	return true
}

func checkValue(errs *fieldErrors, path string, v any, fd protoreflect.FieldDescriptor) bool {
	switch fd.Kind() {
	case protoreflect.MessageKind:
		return checkShape(errs, path, v, fd.Message())
	case protoreflect.StringKind:
		if _, ok := v.(string); !ok {
			errs.add(path, "must be a string, not %s", kind(v))
			return false
		}
	case protoreflect.BoolKind:
		if _, ok := v.(bool); !ok {
			errs.add(path, "must be true or false, not %s", kind(v))
			return false
		}
	case protoreflect.Uint32Kind, protoreflect.Int32Kind, protoreflect.Uint64Kind, protoreflect.Int64Kind:
		f, ok := v.(float64)
		if !ok || f != float64(int64(f)) {
			errs.add(path, "must be a whole number, not %s", show(v))
			return false
		}
		if f < 0 && (fd.Kind() == protoreflect.Uint32Kind || fd.Kind() == protoreflect.Uint64Kind) {
			errs.add(path, "must not be negative")
			return false
		}
		if fd.Kind() == protoreflect.Uint32Kind && f > 1<<32-1 {
			errs.add(path, "too large")
			return false
		}
	}
	return true
}

func kind(v any) string {
	switch v.(type) {
	case map[string]any:
		return "an object"
	case []any:
		return "a list"
	case string:
		return "a string"
	case float64:
		return "a number"
	case bool:
		return "a bool"
	}
	return "null"
}

func show(v any) string {
	switch v := v.(type) {
	case string:
		return fmt.Sprintf("%q", v)
	case float64:
		return fmt.Sprintf("%v", v)
	}
	return kind(v)
}

package authz

import (
	"bytes"
	"encoding/json"
	"math"
	"strconv"
	"strings"
)

// MaxHeaderValueBytes is the largest claim header value forwarded; a longer
// one is not sent and the header is removed instead.
const MaxHeaderValueBytes = 8 << 10

// claims is a verified token's payload. Numbers stay json.Number so they
// are forwarded in their JSON form.
type claims map[string]any

// decodeClaims decodes a payload that is exactly one JSON object with no
// member named twice at any depth (see oneObject).
func decodeClaims(b []byte) (claims, bool) {
	if oneObject(b) != nil {
		return nil, false
	}
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var c claims
	if err := d.Decode(&c); err != nil {
		return nil, false
	}
	return c, true
}

// lookup returns the claim at name, or at a dotted path into objects when
// nested is true.
func (c claims) lookup(name string, nested bool) (any, bool) {
	if !nested {
		v, ok := c[name]
		return v, ok && v != nil
	}
	var cur any = map[string]any(c)
	for part := range strings.SplitSeq(name, ".") {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		if cur, ok = m[part]; !ok {
			return nil, false
		}
	}
	return cur, cur != nil
}

// maxNumericDate is 10000-01-01T00:00:00Z: a NumericDate from then on is
// no date a token means, and bounding dates keeps every sum and difference
// of them far from overflow.
const maxNumericDate = 253402300800

// numericDate reads a NumericDate claim (RFC 7519 §2). ok is false when
// the claim is present but not a finite, unsigned number before year
// 10000.
func (c claims) numericDate(name string) (v float64, present, ok bool) {
	raw, present := c[name]
	if !present {
		return 0, false, true
	}
	n, isNum := raw.(json.Number) // null too is no date (jwx refuses it, go-jose reads it as absent)
	if !isNum {
		return 0, true, false
	}
	f, err := n.Float64()
	// A minus sign is refused even on zero: "-0" is no date either.
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) || strings.HasPrefix(string(n), "-") || f >= maxNumericDate {
		return 0, true, false
	}
	return f, true, true
}

func (c claims) str(name string) string {
	s, _ := c[name].(string)
	return s
}

// audiences returns aud as a list: a string or an array of strings.
func (c claims) audiences() []string {
	switch v := c["aud"].(type) {
	case string:
		if v == "" {
			return nil
		}
		return []string{v}
	case []any:
		out := make([]string, 0, len(v))
		for _, e := range v {
			if s, ok := e.(string); ok && s != "" {
				out = append(out, s)
			}
		}
		return out
	}
	return nil
}

// scopes collects the token's scopes from scope (space-separated, RFC 8693
// style), scp (string or array) and permissions (Auth0 RBAC). A string
// scope claim is not copied: inText says its fields are scopes (the
// verified token keeps it for metadata anyway); the rest are returned
// joined with NUL. An array element holding a NUL is left out: it could
// not be told apart from two scopes (and no configured scope holds one).
func (c claims) scopes() (joined string, inText bool) {
	var b strings.Builder
	add1 := func(s string) {
		if s == "" || strings.IndexByte(s, 0) >= 0 {
			return
		}
		if b.Len() > 0 {
			b.WriteByte(0)
		}
		b.WriteString(s)
	}
	add := func(v any) {
		switch v := v.(type) {
		case string:
			for f := range strings.FieldsSeq(v) {
				add1(f)
			}
		case []any:
			for _, e := range v {
				if s, ok := e.(string); ok {
					add1(s)
				}
			}
		}
	}
	if _, inText = c["scope"].(string); !inText {
		add(c["scope"])
	}
	add(c["scp"])
	add(c["permissions"])
	return b.String(), inText
}

// hasScope reports whether the token holds the scope want.
func (v *verified) hasScope(want string) bool {
	if v.scopeInText {
		for f := range strings.FieldsSeq(v.scope) {
			if f == want {
				return true
			}
		}
	}
	return inJoined(v.scopes, want)
}

// inJoined reports whether the NUL-joined set holds want.
func inJoined(set, want string) bool {
	if want == "" || strings.IndexByte(want, 0) >= 0 {
		return false
	}
	for set != "" {
		e := set
		if i := strings.IndexByte(set, 0); i >= 0 {
			e, set = set[:i], set[i+1:]
		} else {
			set = ""
		}
		if e == want {
			return true
		}
	}
	return false
}

// claimText renders a claim as a header value: a string as is, a number in
// its JSON form, a bool as true/false, an array of scalars joined with ","
// (objects inside as compact JSON), an object as compact JSON. ok is false
// for null.
func claimText(v any) (string, bool) {
	switch v := v.(type) {
	case nil:
		return "", false
	case string:
		return v, true
	case json.Number:
		return v.String(), true
	case bool:
		return strconv.FormatBool(v), true
	case []any:
		parts := make([]string, 0, len(v))
		for _, e := range v {
			if e == nil {
				continue
			}
			s, _ := scalarOrJSON(e)
			parts = append(parts, s)
		}
		return strings.Join(parts, ","), true
	default:
		return scalarOrJSON(v)
	}
}

func scalarOrJSON(v any) (string, bool) {
	switch v.(type) {
	case string, json.Number, bool:
		return claimText(v)
	}
	b, err := json.Marshal(v)
	if err != nil {
		return "", false
	}
	return string(b), true
}

// headerSafe reports whether s may be sent as a header value: no control
// characters (CR/LF would split headers) and at most MaxHeaderValueBytes.
func headerSafe(s string) bool {
	if len(s) > MaxHeaderValueBytes {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}

// ClaimValue is one acceptable value of a required claim: a string, a
// float64 number or a bool.
type ClaimValue any

// valueSet matches claim values by type: strings against strings, numbers
// against numbers, bools against bools.
type valueSet struct {
	strs  map[string]struct{}
	nums  map[float64]struct{}
	bools [2]bool // [false, true]
}

func newValueSet(vals []ClaimValue) valueSet {
	vs := valueSet{strs: map[string]struct{}{}, nums: map[float64]struct{}{}}
	for _, v := range vals {
		switch v := v.(type) {
		case string:
			vs.strs[v] = struct{}{}
		case float64:
			vs.nums[v] = struct{}{}
		case int:
			vs.nums[float64(v)] = struct{}{}
		case bool:
			if v {
				vs.bools[1] = true
			} else {
				vs.bools[0] = true
			}
		}
	}
	return vs
}

// matches reports whether claim v (or, for an array, any element) is in
// the set.
func (vs valueSet) matches(v any) bool {
	switch v := v.(type) {
	case string:
		_, ok := vs.strs[v]
		return ok
	case json.Number:
		f, err := v.Float64()
		if err != nil {
			return false
		}
		_, ok := vs.nums[f]
		return ok
	case bool:
		if v {
			return vs.bools[1]
		}
		return vs.bools[0]
	case []any:
		for _, e := range v {
			if _, isArr := e.([]any); !isArr && vs.matches(e) {
				return true
			}
		}
	}
	return false
}

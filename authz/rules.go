package authz

import (
	"fmt"
	"regexp"
	"strings"
)

// Rule is one entry of the ordered rule list; the first that matches a
// request decides what it needs.
type Rule struct {
	Name  string
	Match Match
	// Require: what a token must carry.
	Require Requirement
	// AllowAnonymous: no token needed; a token that is present must still
	// be valid.
	AllowAnonymous bool
	// AllowCORSPreflight: OPTIONS with access-control-request-method passes
	// without a token.
	AllowCORSPreflight bool
	// DryRun: decide, log and count, but always allow.
	DryRun bool
}

// Match selects requests. Empty fields match everything.
type Match struct {
	// PathPrefix matches whole segments: "/admin" matches "/admin" and
	// "/admin/x", not "/administrator".
	PathPrefix string
	PathExact  string
	// PathRegex is RE2 matched against the whole normalised path.
	PathRegex string
	// Methods compared case-insensitively.
	Methods []string
	// Hosts: exact, or "*.example.com" for any subdomain; port ignored.
	Hosts []string
}

// Requirement is what a token must carry under a rule.
type Requirement struct {
	// Providers: the token's provider must be one of them (empty: any).
	Providers []string
	// Scopes: all of them.
	Scopes []string
	// AnyScopes: at least one of them.
	AnyScopes []string
	Claims    []ClaimRequirement
	// SenderConstrained: the token must be bound (DPoP or mTLS) and
	// proven; an unbound one is unbound_token.
	SenderConstrained bool
}

// ClaimRequirement asks for a claim, and optionally one of some values.
type ClaimRequirement struct {
	Name   string
	Nested bool
	// Values: any of them (string, float64 or bool). Empty: the claim must
	// only be present.
	Values []ClaimValue
}

// rule is a Rule compiled for matching.
type rule struct {
	Rule
	prefix  string // without trailing "/"
	re      *regexp.Regexp
	methods []string // upper-case
	exact   []string // lower-case exact hosts
	suffix  []string // ".example.com" for "*.example.com"
	claims  []claimReq
}

type claimReq struct {
	ClaimRequirement
	values valueSet
}

// compileRule compiles r. With foldCase, path patterns are lower-cased
// (and the regex made case-insensitive) to meet a lower-cased path.
func compileRule(r Rule, foldCase bool) (*rule, error) {
	c := &rule{Rule: r}
	if foldCase {
		c.Match.PathPrefix = strings.ToLower(r.Match.PathPrefix)
		c.Match.PathExact = strings.ToLower(r.Match.PathExact)
	}
	if c.Match.PathPrefix != "" {
		c.prefix = strings.TrimSuffix(c.Match.PathPrefix, "/")
	}
	if r.Match.PathRegex != "" {
		flags := ""
		if foldCase {
			flags = "(?i)"
		}
		re, err := regexp.Compile(flags + `^(?:` + r.Match.PathRegex + `)$`)
		if err != nil {
			return nil, fmt.Errorf("rule %q: path_regex: %w", r.Name, err)
		}
		c.re = re
	}
	for _, m := range r.Match.Methods {
		c.methods = append(c.methods, strings.ToUpper(m))
	}
	for _, h := range r.Match.Hosts {
		h = strings.ToLower(h)
		if rest, ok := strings.CutPrefix(h, "*."); ok {
			c.suffix = append(c.suffix, "."+rest)
		} else {
			c.exact = append(c.exact, normalizeHost(h))
		}
	}
	for _, cr := range r.Require.Claims {
		c.claims = append(c.claims, claimReq{ClaimRequirement: cr, values: newValueSet(cr.Values)})
	}
	return c, nil
}

// matches reports whether the rule applies to a normalised path, an
// upper-case method and a normalised host.
func (r *rule) matches(path, method, host string) bool {
	m := r.Match
	if m.PathExact != "" && path != m.PathExact {
		return false
	}
	if m.PathPrefix != "" && !prefixMatch(path, r.prefix) {
		return false
	}
	if r.re != nil && !r.re.MatchString(path) {
		return false
	}
	if len(r.methods) > 0 && !contains(r.methods, method) &&
		!(method == "HEAD" && contains(r.methods, "GET")) {
		// HEAD meets a GET rule: most servers answer HEAD with the GET
		// handler, so a GET-only rule must also guard it.
		return false
	}
	if len(r.exact)+len(r.suffix) > 0 && !r.hostMatches(host) {
		return false
	}
	return true
}

func prefixMatch(path, prefix string) bool {
	if prefix == "" { // "/" matches every path
		return true
	}
	return strings.HasPrefix(path, prefix) && (len(path) == len(prefix) || path[len(prefix)] == '/')
}

func (r *rule) hostMatches(host string) bool {
	if contains(r.exact, host) {
		return true
	}
	for _, s := range r.suffix {
		if len(host) > len(s) && strings.HasSuffix(host, s) {
			return true
		}
	}
	return false
}

func contains(list []string, s string) bool {
	for _, e := range list {
		if e == s {
			return true
		}
	}
	return false
}

package authz

import (
	"encoding/json"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Decision is the outcome of one Check. A denial is a Decision, not an
// error. The protocol adapters render it; every field they need is here.
type Decision struct {
	Allow  bool
	Reason Reason
	// Status is the HTTP status: 200 when allowed, else 401, 403, 500 or 503.
	Status int
	// Provider is the name of the token's provider; "" when there was none.
	Provider string
	// Rule is the name of the rule that applied; "" when none.
	Rule string
	// Description is the human text of a denial (error_description), also
	// logged. It never holds token material.
	Description string

	// Headers are set on the upstream request (allowed only).
	Headers []Header
	// RemoveHeaders are removed from the upstream request (allowed only).
	RemoveHeaders []string
	// RemoveQuery are query parameters removed from the upstream request.
	RemoveQuery []string
	// Metadata is for Envoy's dynamic metadata (access logs, rate limits).
	Metadata Metadata

	// Challenges are the WWW-Authenticate values of a denial, one header
	// entry each: none, one, or a Bearer and a DPoP challenge when no
	// token was sent and a provider accepts DPoP.
	Challenges []string
	// RetryAfter is the retry-after header value of a 503; "" for none.
	RetryAfter string
	// Body is the rendered deny body, ContentType its media type.
	Body        []byte
	ContentType string

	// KeyID and WouldReason are for the decision log: the token's kid and,
	// under dry_run, the reason the request would have been denied.
	KeyID       string
	WouldReason Reason
	// MissingScopes lists required scopes the token lacks.
	MissingScopes []string
	// Answer is where an adapter may keep its encoded rendering of this
	// allowed decision for the next request with the same token and rule;
	// the zero Answer when the decision cannot be reused (see Answer).
	Answer Answer

	// dpopAlgs, when set, makes the challenge a DPoP one (the request used
	// the DPoP scheme, or the token is DPoP-bound) with these algs.
	dpopAlgs string
	// alsoDPoP adds a DPoP challenge with these algs beside the Bearer one
	// (no token, and a provider accepts DPoP).
	alsoDPoP string
}

// Header is one upstream header to set (overwriting any client value).
type Header struct {
	Name  string
	Value string
}

// Metadata is what Envoy receives as dynamic metadata
// (envoy.filters.http.ext_authz namespace).
type Metadata struct {
	Issuer   string
	Subject  string
	ClientID string
	Scope    string
	// CnfMethod is how the token's binding was proven: "dpop", "mtls" or
	// "" for an unbound token; CnfThumbprint the proven thumbprint.
	CnfMethod     string
	CnfThumbprint string
}

// TextSafe returns s when it may go into dynamic metadata or a log field,
// else "": the value is left out, as a claim header is. It refuses more
// than headers do (a tab, C1 controls, U+2028/U+2029 and invalid UTF-8
// too), since access logs are lines of text; and anything over
// MaxHeaderValueBytes.
func TextSafe(s string) string {
	if len(s) > MaxHeaderValueBytes {
		return ""
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c == 0x7f {
			return ""
		}
		if c >= 0x80 {
			return textSafeUnicode(s[i:], s)
		}
	}
	return s
}

func textSafeUnicode(rest, s string) string {
	for _, r := range rest {
		if r == utf8.RuneError || unicode.IsControl(r) || r == '\u2028' || r == '\u2029' {
			// RuneError also stands for invalid UTF-8; a real U+FFFD is
			// left out too, which costs nothing that matters.
			return ""
		}
	}
	return s
}

// DecisionLabel is the `decision` metric label: allow or deny.
func (d *Decision) DecisionLabel() string {
	if d.Allow {
		return "allow"
	}
	return "deny"
}

// BodyFormat selects the deny body.
type BodyFormat int

// Deny body formats.
const (
	// BodyJSON is {"error","error_description","reason"}.
	BodyJSON BodyFormat = iota
	// BodyApigee is Apigee's fault JSON, so clients written against
	// Apigee's VerifyJWT keep working.
	BodyApigee
)

// finishDeny fills the status, challenge and body of a denial.
func (d *Decision) finishDeny(realm string, format BodyFormat) {
	d.Allow = false
	d.Status = d.Reason.Status()
	code := d.Reason.ErrorCode()
	d.Challenges = nil
	scheme, params := `Bearer`, `realm=`+quote(realm)
	if d.dpopAlgs != "" {
		// RFC 9449 §7.1: the DPoP challenge names the accepted algs.
		scheme, params = `DPoP`, `algs=`+quote(d.dpopAlgs)
	}
	switch d.Status {
	case 401:
		switch {
		case d.Reason == ReasonMissingToken:
			// RFC 6750 §3.1: no error code when the request had no token.
			d.Challenges = append(d.Challenges, scheme+` `+params)
			if d.alsoDPoP != "" {
				d.Challenges = append(d.Challenges, `DPoP algs=`+quote(d.alsoDPoP))
			}
		default:
			d.Challenges = append(d.Challenges, scheme+` `+params+`, error=`+quote(code)+`, error_description=`+quote(d.Description))
		}
	case 403:
		c := scheme + ` ` + params + `, error="insufficient_scope"`
		if len(d.MissingScopes) > 0 {
			c += `, scope=` + quote(strings.Join(d.MissingScopes, " "))
		}
		d.Challenges = append(d.Challenges, c)
	case 503:
		d.RetryAfter = "5"
	}
	d.ContentType = "application/json"
	switch format {
	case BodyApigee:
		d.Body = marshal(map[string]any{"fault": map[string]any{
			"faultstring": d.Description,
			"detail":      map[string]string{"errorcode": d.Reason.ApigeeCode()},
		}})
	default:
		d.Body = marshal(struct {
			Error       string `json:"error"`
			Description string `json:"error_description"`
			Reason      Reason `json:"reason"`
		}{code, d.Description, d.Reason})
	}
}

func marshal(v any) []byte {
	b, _ := json.Marshal(v) // maps of strings always marshal
	return b
}

// quote makes a quoted-string (RFC 7230 §3.2.6) of s; characters that
// cannot appear in one are dropped.
func quote(s string) string {
	var b strings.Builder
	b.Grow(len(s) + 2)
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			b.WriteByte('\\')
			b.WriteByte(c)
		case c < 0x20 || c == 0x7f:
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// ApigeeCode returns the Apigee errorcode that deny_body: apigee answers
// with for a denial with r; "" for the allowing reasons.
func (r Reason) ApigeeCode() string { return outcomes[r].apigee }

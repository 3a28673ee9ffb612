package envoy

import (
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/jwtauthz/jwt-authz/authz"
)

// encodeDecision writes the CheckResponse that Response renders for d,
// byte for byte as proto.MarshalOptions{Deterministic: true} encodes it
// (fields in number order, oneof members last, proto3 defaults left out,
// map keys sorted),
// without building the message: one allocation instead of some fifty.
// TestEncodeDecisionMatchesProto holds it to the proto encoding over
// generated decisions, and the golden tests to the goldens.
func encodeDecision(d *authz.Decision) []byte {
	var meta [10]metaField
	fields := metadataFields(d, meta[:0])
	metaSize := structSize(fields)
	var size int
	var statusSize, bodySize int
	if d.Allow {
		bodySize = okSize(d)
		size = sizeField(fnRespStatus, 0) + sizeField(fnRespOK, bodySize)
	} else {
		statusSize = sizeVarintField(int64(grpcCode(d.Status))) + sizeStringField(string(d.Reason))
		bodySize = deniedSize(d)
		size = sizeField(fnRespStatus, statusSize) + sizeField(fnRespDenied, bodySize)
	}
	size += sizeField(fnRespMetadata, metaSize)

	// Go's encoding writes fields in number order, but the members of a
	// oneof (http_response: denied_response, ok_response) after the rest.
	b := make([]byte, 0, size)
	if d.Allow {
		b = appendLen(b, fnRespStatus, 0)
	} else {
		b = appendLen(b, fnRespStatus, statusSize)
		b = appendVarintField(b, 1, int64(grpcCode(d.Status)))
		b = appendStringNonEmpty(b, 2, string(d.Reason))
	}
	b = appendLen(b, fnRespMetadata, metaSize)
	for _, f := range fields {
		b = appendLen(b, 1, entrySize(f))
		b = appendString(b, 1, f.key)
		b = appendLen(b, 2, sizeString(3, f.value))
		b = appendString(b, 3, f.value)
	}
	if d.Allow {
		b = appendLen(b, fnRespOK, bodySize)
		for _, h := range d.Headers {
			b = appendHeaderOption(b, fnOKHeaders, h.Name, h.Value, appendOverwrite)
		}
		for _, h := range d.RemoveHeaders {
			b = appendString(b, fnOKHeadersToRemove, h)
		}
		for _, q := range d.RemoveQuery {
			b = appendString(b, fnOKQueryToRemove, q)
		}
		return b
	}
	b = appendLen(b, fnRespDenied, bodySize)
	b = appendLen(b, fnDeniedStatus, sizeVarintField(int64(d.Status))) // always set, even empty
	b = appendVarintField(b, 1, int64(d.Status))
	for _, h := range deniedHeaders(d) {
		b = appendHeaderOption(b, fnDeniedHeaders, h.name, h.value, h.action)
	}
	b = appendStringNonEmpty(b, fnDeniedBody, string(d.Body))
	return b
}

// Field numbers of the answer (external_auth.proto, base.proto,
// http_status.proto, google/rpc/status.proto, struct.proto); checked
// against the proto encoding by TestEncodeDecisionMatchesProto.
const (
	fnRespStatus   = 1
	fnRespDenied   = 2
	fnRespOK       = 3
	fnRespMetadata = 4

	fnOKHeaders         = 2
	fnOKHeadersToRemove = 5
	fnOKQueryToRemove   = 8

	fnDeniedStatus  = 1
	fnDeniedHeaders = 2
	fnDeniedBody    = 3

	fnHVOHeader       = 1
	fnHVOAppendAction = 3
	// appendOverwrite is HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD,
	// appendAdd HeaderValueOption_APPEND_IF_EXISTS_OR_ADD (the default,
	// so never written).
	appendOverwrite = 2
	appendAdd       = 0
)

type metaField struct{ key, value string }

// metadataFields are metadata(d)'s fields in key order.
func metadataFields(d *authz.Decision, out []metaField) []metaField {
	m := d.Metadata
	opt := func(k, v string) {
		if v = authz.TextSafe(v); v != "" {
			out = append(out, metaField{k, v})
		}
	}
	opt("client_id", m.ClientID)
	opt("cnf_method", m.CnfMethod)
	opt("cnf_thumbprint", m.CnfThumbprint)
	out = append(out, metaField{"decision", d.DecisionLabel()})
	opt("issuer", m.Issuer)
	opt("provider", d.Provider)
	out = append(out, metaField{"reason", string(d.Reason)})
	opt("rule", d.Rule)
	opt("scope", m.Scope)
	opt("subject", m.Subject)
	return out
}

func entrySize(f metaField) int {
	return sizeString(1, f.key) + sizeField(2, sizeString(3, f.value))
}

func structSize(fields []metaField) int {
	n := 0
	for _, f := range fields {
		n += sizeField(1, entrySize(f))
	}
	return n
}

func headerOptionSize(k, v string, action int64) int {
	hv := sizeStringNonEmpty(k) + sizeStringNonEmpty(v)
	return sizeField(fnHVOHeader, hv) + sizeVarintField(action)
}

func okSize(d *authz.Decision) int {
	n := 0
	for _, h := range d.Headers {
		n += sizeField(fnOKHeaders, headerOptionSize(h.Name, h.Value, appendOverwrite))
	}
	for _, h := range d.RemoveHeaders {
		n += sizeString(fnOKHeadersToRemove, h)
	}
	for _, q := range d.RemoveQuery {
		n += sizeString(fnOKQueryToRemove, q)
	}
	return n
}

// headerOption is a header of an answer and its append action.
type headerOption struct {
	name, value string
	action      int64
}

// deniedHeaders are the denied answer's headers, as Response sets them: a
// second challenge (Bearer and DPoP) is appended, not overwritten.
func deniedHeaders(d *authz.Decision) []headerOption {
	out := make([]headerOption, 0, 2+len(d.Challenges))
	for i, c := range d.Challenges {
		action := int64(appendOverwrite)
		if i > 0 {
			action = appendAdd
		}
		out = append(out, headerOption{"www-authenticate", c, action})
	}
	out = append(out, headerOption{"content-type", d.ContentType, appendOverwrite})
	if d.RetryAfter != "" {
		out = append(out, headerOption{"retry-after", d.RetryAfter, appendOverwrite})
	}
	return out
}

func deniedSize(d *authz.Decision) int {
	n := sizeField(fnDeniedStatus, sizeVarintField(int64(d.Status)))
	for _, h := range deniedHeaders(d) {
		n += sizeField(fnDeniedHeaders, headerOptionSize(h.name, h.value, h.action))
	}
	return n + sizeStringNonEmptyField(fnDeniedBody, string(d.Body))
}

// Sizes and appenders of length-delimited and varint fields. A proto3
// string or int that is empty or zero is left out (the *NonEmpty and
// varint forms); repeated strings and oneof members are always written.

func sizeField(num protowire.Number, n int) int {
	return protowire.SizeTag(num) + protowire.SizeBytes(n)
}

func sizeString(num protowire.Number, s string) int { return sizeField(num, len(s)) }

// sizeStringNonEmpty is for fields 1 and 2 of a message (tags of one byte).
func sizeStringNonEmpty(s string) int {
	if s == "" {
		return 0
	}
	return 1 + protowire.SizeBytes(len(s))
}

func sizeStringNonEmptyField(num protowire.Number, s string) int {
	if s == "" {
		return 0
	}
	return sizeString(num, s)
}

// sizeStringField is a google.rpc.Status message (field 2).
func sizeStringField(s string) int { return sizeStringNonEmpty(s) }

// sizeVarintField is a field 1..15 holding v (an int32 or enum, never
// negative here); zero is left out.
func sizeVarintField(v int64) int {
	if v == 0 {
		return 0
	}
	return 1 + protowire.SizeVarint(uint64(v))
}

func appendLen(b []byte, num protowire.Number, n int) []byte {
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendVarint(b, uint64(n))
}

func appendString(b []byte, num protowire.Number, s string) []byte {
	b = appendLen(b, num, len(s))
	return append(b, s...)
}

func appendStringNonEmpty(b []byte, num protowire.Number, s string) []byte {
	if s == "" {
		return b
	}
	return appendString(b, num, s)
}

func appendVarintField(b []byte, num protowire.Number, v int64) []byte {
	if v == 0 {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.VarintType)
	return protowire.AppendVarint(b, uint64(v))
}

func appendHeaderOption(b []byte, num protowire.Number, k, v string, action int64) []byte {
	b = appendLen(b, num, headerOptionSize(k, v, action))
	b = appendLen(b, fnHVOHeader, sizeStringNonEmpty(k)+sizeStringNonEmpty(v))
	b = appendStringNonEmpty(b, 1, k)
	b = appendStringNonEmpty(b, 2, v)
	return appendVarintField(b, fnHVOAppendAction, action)
}

package envoy

import (
	"strings"
	"unicode/utf8"
	"unsafe"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// Field numbers of the path from CheckRequest to what a decision reads
// (envoy/service/auth/v3/attribute_context.proto, external_auth.proto,
// envoy/config/core/v3/base.proto). TestFieldNumbers checks them against
// the descriptors.
const (
	fnCheckAttributes = 1 // CheckRequest.attributes

	fnAttrSource  = 1  // AttributeContext.source (Peer)
	fnAttrRequest = 4  // AttributeContext.request
	fnAttrContext = 10 // AttributeContext.context_extensions

	fnPeerCertificate = 5 // Peer.certificate

	fnRequestHTTP = 2 // AttributeContext.Request.http

	fnHTTPMethod    = 2  // HttpRequest.method
	fnHTTPHeaders   = 3  // HttpRequest.headers (map)
	fnHTTPPath      = 4  // HttpRequest.path
	fnHTTPHost      = 5  // HttpRequest.host
	fnHTTPScheme    = 6  // HttpRequest.scheme
	fnHTTPHeaderMap = 13 // HttpRequest.header_map

	fnHeaderMapHeaders = 1 // HeaderMap.headers
	fnHVKey            = 1 // HeaderValue.key
	fnHVValue          = 2 // HeaderValue.value
	fnHVRawValue       = 3 // HeaderValue.raw_value
	fnEntryKey         = 1 // map entry key
	fnEntryValue       = 2 // map entry value
)

var (
	mdCheckRequest = (*authv3.CheckRequest)(nil).ProtoReflect().Descriptor()
	mdAttributes   = (*authv3.AttributeContext)(nil).ProtoReflect().Descriptor()
	mdPeer         = (*authv3.AttributeContext_Peer)(nil).ProtoReflect().Descriptor()
	mdRequest      = (*authv3.AttributeContext_Request)(nil).ProtoReflect().Descriptor()
	mdHTTP         = (*authv3.AttributeContext_HttpRequest)(nil).ProtoReflect().Descriptor()
	mdHeaderMap    = (*corev3.HeaderMap)(nil).ProtoReflect().Descriptor()
	mdHeaderValue  = (*corev3.HeaderValue)(nil).ProtoReflect().Descriptor()
	mdStringEntry  = mdHTTP.Fields().ByNumber(fnHTTPHeaders).Message()
)

// maxMapKeys bounds the headers-map keys the reader compares for
// duplicates; a request with more goes to the full decode.
const maxMapKeys = 64

// maxSkipDepth bounds the nesting the validator of skipped fields follows;
// deeper messages go to the full decode (whose limit is far higher).
const maxSkipDepth = 32

// reader reads a CheckRequest's wire form selectively. Strings are views
// into the input until finish copies the kept ones into one allocation.
type reader struct {
	keep   []string // sorted lower-case header names to keep
	limits Limits

	seen                             uint32 // singular fields met, by bit
	method, path, host, scheme, cert string
	// Kept entries live in arrays here: the reader stays on the stack.
	// More than fit go to the full decode.
	headers                               kvList // kept map-form headers
	mapCount, mapSize                     int
	mapKeys                               [maxMapKeys]string
	mapFold                               bool   // a map key with an upper-case letter
	hm                                    kvList // kept header_map entries, in order
	hmCount, hmSize                       int
	context                               kvList
	hasSource, hasRequest, hasHTTP, hasHM bool
}

// kvList is a short list of string pairs held in place.
type kvList struct {
	a [16]kv
	n int
}

// add appends; false when full.
func (l *kvList) add(k, v string) bool {
	if l.n == len(l.a) {
		return false
	}
	l.a[l.n] = kv{k, v}
	l.n++
	return true
}

func (l *kvList) all() []kv { return l.a[:l.n] }

type kv struct{ k, v string }

// Bits of reader.seen: a singular field met twice is merged (messages)
// or last-wins (scalars) by the full decode; the reader leaves both to it.
const (
	seenAttributes = 1 << iota
	seenSource
	seenRequest
	seenHTTP
	seenMethod
	seenPath
	seenHost
	seenScheme
	seenCert
	seenHeaderMap
)

// readCheck reads b into out, keeping what a decision can use: method,
// path, host, scheme, the source certificate, context_extensions and the
// headers named in keep, both header forms, within the limits. It reports
// false when it met anything it does not read exactly as proto.Unmarshal
// would (then out is untouched and the caller decodes fully): malformed
// wire data, a wire type other than the declared one, invalid UTF-8 in a
// string, a singular field repeated, a headers-map key repeated or with
// upper-case letters, too many headers to compare, groups, packed fields,
// deep nesting, or a request over the header limits (whose denial the
// full path words).
//
// parts, when not nil, is where the nested messages go (the caller's
// allocation); nil allocates them.
func readCheck(b []byte, keep []string, limits Limits, out *authv3.CheckRequest, parts *checkParts) bool {
	r := reader{keep: keep, limits: limits}
	if !r.message(b, mdCheckRequest, r.checkRequest) {
		return false
	}
	if parts == nil {
		parts = new(checkParts)
	}
	return r.finish(out, parts)
}

// checkParts are the nested messages of a selectively read CheckRequest,
// allocated together.
type checkParts struct {
	attrs authv3.AttributeContext
	req   authv3.AttributeContext_Request
	http  authv3.AttributeContext_HttpRequest
	peer  authv3.AttributeContext_Peer
}

// message walks the fields of one message: field handles the ones the
// reader keeps (reporting bytes consumed, -1 to give up, 0 for "not
// mine"); the rest are validated against md and skipped.
func (r *reader) message(b []byte, md protoreflect.MessageDescriptor, field func(num protowire.Number, typ protowire.Type, b []byte) int) bool {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 || num > protowire.MaxValidNumber {
			return false
		}
		b = b[n:]
		n = field(num, typ, b)
		if n < 0 {
			return false
		}
		if n == 0 {
			if n = skipField(md, num, typ, b, 0); n < 0 {
				return false
			}
		}
		b = b[n:]
	}
	return true
}

// once records a singular field; false when it was met before.
func (r *reader) once(bit uint32) bool {
	if r.seen&bit != 0 {
		return false
	}
	r.seen |= bit
	return true
}

// bytesField consumes a length-delimited value: the bytes and the length
// consumed, or -1.
func bytesField(typ protowire.Type, b []byte) ([]byte, int) {
	if typ != protowire.BytesType {
		return nil, -1
	}
	v, n := protowire.ConsumeBytes(b)
	return v, n
}

// stringField is bytesField for a proto3 string: valid UTF-8 or -1.
func stringField(typ protowire.Type, b []byte) (string, int) {
	v, n := bytesField(typ, b)
	if n < 0 || !utf8.Valid(v) {
		return "", -1
	}
	return view(v), n
}

// view is a string over b's bytes without a copy; finish copies what is
// kept before the input is released.
func view(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }

// sub runs f over a nested message once, for a singular field.
func (r *reader) sub(bit uint32, typ protowire.Type, b []byte, md protoreflect.MessageDescriptor,
	f func(protowire.Number, protowire.Type, []byte) int) int {
	v, n := bytesField(typ, b)
	if n < 0 || !r.once(bit) || !r.message(v, md, f) {
		return -1
	}
	return n
}

func (r *reader) checkRequest(num protowire.Number, typ protowire.Type, b []byte) int {
	if num == fnCheckAttributes {
		return r.sub(seenAttributes, typ, b, mdAttributes, r.attributes)
	}
	return 0
}

func (r *reader) attributes(num protowire.Number, typ protowire.Type, b []byte) int {
	switch num {
	case fnAttrSource:
		r.hasSource = true
		return r.sub(seenSource, typ, b, mdPeer, r.peer)
	case fnAttrRequest:
		r.hasRequest = true
		return r.sub(seenRequest, typ, b, mdRequest, r.request)
	case fnAttrContext:
		k, v, n := r.entry(typ, b)
		if n > 0 && !r.context.add(k, v) {
			return -1
		}
		return n
	}
	return 0
}

func (r *reader) peer(num protowire.Number, typ protowire.Type, b []byte) int {
	if num == fnPeerCertificate {
		return r.str(seenCert, &r.cert, typ, b)
	}
	return 0
}

func (r *reader) request(num protowire.Number, typ protowire.Type, b []byte) int {
	if num == fnRequestHTTP {
		r.hasHTTP = true
		return r.sub(seenHTTP, typ, b, mdHTTP, r.http)
	}
	return 0
}

func (r *reader) str(bit uint32, dst *string, typ protowire.Type, b []byte) int {
	v, n := stringField(typ, b)
	if n < 0 || !r.once(bit) {
		return -1
	}
	*dst = v
	return n
}

func (r *reader) http(num protowire.Number, typ protowire.Type, b []byte) int {
	switch num {
	case fnHTTPMethod:
		return r.str(seenMethod, &r.method, typ, b)
	case fnHTTPPath:
		return r.str(seenPath, &r.path, typ, b)
	case fnHTTPHost:
		return r.str(seenHost, &r.host, typ, b)
	case fnHTTPScheme:
		return r.str(seenScheme, &r.scheme, typ, b)
	case fnHTTPHeaders:
		k, v, n := r.entry(typ, b)
		if n < 0 {
			return -1
		}
		if r.mapCount >= maxMapKeys {
			return -1
		}
		for _, seen := range r.mapKeys[:r.mapCount] {
			if seen == k {
				return -1 // last-wins: left to the full decode
			}
		}
		r.mapKeys[r.mapCount] = k
		r.mapCount++
		r.mapSize += len(k) + len(v)
		if hasUpper(k) {
			r.mapFold = true
		} else if name, ok := r.kept(k); ok && !r.headers.add(name, v) {
			return -1
		}
		return n
	case fnHTTPHeaderMap:
		r.hasHM = true
		return r.sub(seenHeaderMap, typ, b, mdHeaderMap, r.headerMap)
	}
	return 0
}

func (r *reader) headerMap(num protowire.Number, typ protowire.Type, b []byte) int {
	if num != fnHeaderMapHeaders {
		return 0
	}
	v, n := bytesField(typ, b)
	if n < 0 {
		return -1
	}
	var key, value string
	var raw []byte
	var seen uint32
	ok := r.message(v, mdHeaderValue, func(num protowire.Number, typ protowire.Type, b []byte) int {
		var bit uint32
		switch num {
		case fnHVKey:
			bit = 1
		case fnHVValue:
			bit = 2
		case fnHVRawValue:
			bit = 4
		default:
			return 0
		}
		if seen&bit != 0 {
			return -1
		}
		seen |= bit
		if num == fnHVRawValue {
			v, n := bytesField(typ, b)
			raw = v
			return n
		}
		s, n := stringField(typ, b)
		if num == fnHVKey {
			key = s
		} else {
			value = s
		}
		return n
	})
	if !ok {
		return -1
	}
	// As Server.Request reads it: value, or raw_value when value is empty.
	if value == "" && len(raw) > 0 {
		value = view(raw)
	}
	r.hmCount++
	r.hmSize += len(key) + len(value)
	if name, ok := r.kept(lowerASCIIView(key)); ok && !r.hm.add(name, value) {
		return -1
	}
	return n
}

// entry reads a map<string, string> entry: key and value in any order,
// each at most once; other fields are validated and skipped, as the full
// decode drops them.
func (r *reader) entry(typ protowire.Type, b []byte) (string, string, int) {
	v, n := bytesField(typ, b)
	if n < 0 {
		return "", "", -1
	}
	var key, value string
	var seen uint32
	for len(v) > 0 {
		num, typ, m := protowire.ConsumeTag(v)
		if m < 0 || num > protowire.MaxValidNumber {
			return "", "", -1
		}
		v = v[m:]
		var dst *string
		var bit uint32
		switch num {
		case fnEntryKey:
			dst, bit = &key, 1
		case fnEntryValue:
			dst, bit = &value, 2
		default:
			if m = skipField(mdStringEntry, num, typ, v, 0); m < 0 {
				return "", "", -1
			}
			v = v[m:]
			continue
		}
		if seen&bit != 0 {
			return "", "", -1
		}
		seen |= bit
		s, m := stringField(typ, v)
		if m < 0 {
			return "", "", -1
		}
		*dst = s
		v = v[m:]
	}
	return key, value, n
}

// kept returns the keep list's spelling of a lower-case header name. The
// list is short (about ten names): a scan that compares lengths first is
// quicker than a search.
func (r *reader) kept(name string) (string, bool) {
	for _, k := range r.keep {
		if len(k) == len(name) && k == name {
			return k, true
		}
	}
	return "", false
}

func hasUpper(s string) bool {
	for i := 0; i < len(s); i++ {
		if 'A' <= s[i] && s[i] <= 'Z' {
			return true
		}
	}
	return false
}

// lowerASCIIView lower-cases s as Server.request does, for a lookup only:
// a name with upper-case letters (rare) is copied.
func lowerASCIIView(s string) string {
	if !hasUpper(s) {
		return s
	}
	return strings.ToLower(s)
}

// finish applies the limits as Server.Request does, then builds out from
// the kept fields, copying their bytes into one allocation.
func (r *reader) finish(out *authv3.CheckRequest, parts *checkParts) bool {
	useHM := r.hmCount > 0 // Server.Request reads header_map when it has entries
	if useHM {
		if r.hmCount > r.limits.MaxHeaders || r.hmSize > r.limits.MaxHeaderBytes {
			return false
		}
	} else if r.mapFold || r.mapCount > r.limits.MaxHeaders || r.mapSize > r.limits.MaxHeaderBytes {
		return false
	}
	total := len(r.method) + len(r.path) + len(r.host) + len(r.scheme) + len(r.cert)
	kept := r.headers.all()
	if useHM {
		kept = r.hm.all()
	}
	for _, h := range kept {
		total += len(h.v)
	}
	for _, c := range r.context.all() {
		total += len(c.k) + len(c.v)
	}
	arena := make([]byte, 0, total)
	cp := func(s string) string {
		if s == "" {
			return ""
		}
		start := len(arena)
		arena = append(arena, s...)
		return view(arena[start:len(arena):len(arena)])
	}
	attrs := &parts.attrs
	out.Attributes = attrs
	if r.hasSource {
		attrs.Source = &parts.peer
		attrs.Source.Certificate = cp(r.cert)
	}
	if r.context.n > 0 {
		attrs.ContextExtensions = make(map[string]string, r.context.n)
		for _, c := range r.context.all() {
			attrs.ContextExtensions[cp(c.k)] = cp(c.v) // last wins, as in the full decode
		}
	}
	if !r.hasRequest {
		return true
	}
	attrs.Request = &parts.req
	if !r.hasHTTP {
		return true
	}
	h := &parts.http
	h.Method, h.Path, h.Host, h.Scheme = cp(r.method), cp(r.path), cp(r.host), cp(r.scheme)
	attrs.Request.Http = h
	if useHM {
		hv := make([]corev3.HeaderValue, len(kept))
		h.HeaderMap = &corev3.HeaderMap{Headers: make([]*corev3.HeaderValue, len(kept))}
		for i, e := range kept {
			hv[i].Key, hv[i].Value = e.k, cp(e.v)
			h.HeaderMap.Headers[i] = &hv[i]
		}
		return true
	}
	if r.hasHM {
		h.HeaderMap = &corev3.HeaderMap{} // present, empty: the map form is read
	}
	if len(kept) > 0 {
		h.Headers = make(map[string]string, len(kept))
		for _, e := range kept {
			h.Headers[e.k] = cp(e.v)
		}
	}
	return true
}

// skipField validates one field that the reader does not keep, against
// md, and returns the bytes it takes, or -1 when the full decode might
// read it differently or refuse it: the validator accepts only what
// proto.Unmarshal certainly accepts.
func skipField(md protoreflect.MessageDescriptor, num protowire.Number, typ protowire.Type, b []byte, depth int) int {
	fd := md.Fields().ByNumber(num)
	if fd == nil {
		// An unknown field: kept as unknown bytes, checked for form only.
		return protowire.ConsumeFieldValue(num, typ, b)
	}
	switch fd.Kind() {
	case protoreflect.BoolKind, protoreflect.EnumKind, protoreflect.Int32Kind, protoreflect.Int64Kind,
		protoreflect.Uint32Kind, protoreflect.Uint64Kind, protoreflect.Sint32Kind, protoreflect.Sint64Kind:
		if typ != protowire.VarintType {
			return -1 // packed or mismatched: not read here
		}
		_, n := protowire.ConsumeVarint(b)
		return n
	case protoreflect.Fixed32Kind, protoreflect.Sfixed32Kind, protoreflect.FloatKind:
		if typ != protowire.Fixed32Type {
			return -1
		}
		_, n := protowire.ConsumeFixed32(b)
		return n
	case protoreflect.Fixed64Kind, protoreflect.Sfixed64Kind, protoreflect.DoubleKind:
		if typ != protowire.Fixed64Type {
			return -1
		}
		_, n := protowire.ConsumeFixed64(b)
		return n
	case protoreflect.StringKind:
		v, n := bytesField(typ, b)
		if n < 0 || fd.ParentFile().Syntax() != protoreflect.Proto3 || !utf8.Valid(v) {
			return -1
		}
		return n
	case protoreflect.BytesKind:
		_, n := bytesField(typ, b)
		return n
	case protoreflect.MessageKind:
		v, n := bytesField(typ, b)
		if n < 0 || !validMessage(v, fd.Message(), depth+1) {
			return -1
		}
		return n
	}
	return -1 // groups
}

// validMessage reports whether every field of b reads as md says.
func validMessage(b []byte, md protoreflect.MessageDescriptor, depth int) bool {
	if depth > maxSkipDepth || md.ParentFile().Syntax() != protoreflect.Proto3 {
		return false // proto2 may have required fields; editions differ on UTF-8
	}
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 || num > protowire.MaxValidNumber {
			return false
		}
		b = b[n:]
		if n = skipField(md, num, typ, b, depth); n < 0 {
			return false
		}
		b = b[n:]
	}
	return true
}

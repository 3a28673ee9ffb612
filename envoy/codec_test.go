package envoy

import (
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/jwtauthz/jwt-authz/authz"
)

// TestFieldNumbers holds the reader's field numbers to the descriptors.
func TestFieldNumbers(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		md   protoreflect.MessageDescriptor
		name string
		num  protowire.Number
	}{
		{mdCheckRequest, "attributes", fnCheckAttributes},
		{mdAttributes, "source", fnAttrSource},
		{mdAttributes, "request", fnAttrRequest},
		{mdAttributes, "context_extensions", fnAttrContext},
		{mdPeer, "certificate", fnPeerCertificate},
		{mdRequest, "http", fnRequestHTTP},
		{mdHTTP, "method", fnHTTPMethod},
		{mdHTTP, "headers", fnHTTPHeaders},
		{mdHTTP, "path", fnHTTPPath},
		{mdHTTP, "host", fnHTTPHost},
		{mdHTTP, "scheme", fnHTTPScheme},
		{mdHTTP, "header_map", fnHTTPHeaderMap},
		{mdHeaderMap, "headers", fnHeaderMapHeaders},
		{mdHeaderValue, "key", fnHVKey},
		{mdHeaderValue, "value", fnHVValue},
		{mdHeaderValue, "raw_value", fnHVRawValue},
		{mdStringEntry, "key", fnEntryKey},
		{mdStringEntry, "value", fnEntryValue},
	} {
		fd := tc.md.Fields().ByName(protoreflect.Name(tc.name))
		if fd == nil || fd.Number() != tc.num {
			t.Errorf("%s.%s: descriptor says %v, reader uses %d", tc.md.FullName(), tc.name, fd, tc.num)
		}
	}
}

// testKeep is the header set of the differential tests: the shape of
// HeadersRead with a custom header source and a cookie source.
var testKeep = func() []string {
	k := []string{":authority", "access-control-request-method", "authorization", "cookie", "dpop", "origin",
		"x-forwarded-client-cert", "x-forwarded-host", "x-forwarded-proto", "x-token"}
	slices.Sort(k)
	return k
}()

// testLimits are small enough for generated requests to cross them.
var testLimits = Limits{MaxHeaders: 12, MaxHeaderBytes: 2048}

// view of a request as far as a decision can tell: the translated
// authz.Request restricted to the kept headers, the limit outcome, and
// the fields the sender-constraint checks read.
type decisionView struct {
	Method, Path, Host, Scheme, Cert, Bad string
	Headers                               map[string]string
	Repeated                              map[string]int
	Context                               map[string]string
}

func viewOf(s *Server, req *authv3.CheckRequest, keep []string) decisionView {
	r, refused := s.request(req)
	h := req.GetAttributes().GetRequest().GetHttp()
	v := decisionView{Bad: refused.Description, Scheme: h.GetScheme(), Cert: req.GetAttributes().GetSource().GetCertificate()}
	if r == nil {
		return v
	}
	v.Method, v.Path, v.Host, v.Context = r.Method, r.Path, r.Host, r.Context
	if len(v.Context) == 0 {
		v.Context = nil
	}
	for _, k := range keep {
		if val, ok := r.Headers[k]; ok {
			if v.Headers == nil {
				v.Headers = map[string]string{}
			}
			v.Headers[k] = val
		}
		if n := r.Repeated[k]; n > 0 {
			if v.Repeated == nil {
				v.Repeated = map[string]int{}
			}
			v.Repeated[k] = n
		}
	}
	return v
}

// outcome is what the reader and the full decode made of b.
type outcome int

const (
	outFast     outcome = iota // read selectively, same view
	outFallback                // left to the full decode, which accepted it
	outRefused                 // refused by the full decode (and so by the reader)
)

// compareDecodes reads b both ways and fails t on any disagreement.
func compareDecodes(t testing.TB, s *Server, b []byte) outcome {
	t.Helper()
	var full, part authv3.CheckRequest
	errFull := proto.Unmarshal(b, &full)
	ok := readCheck(b, testKeep, s.limits, &part, nil)
	switch {
	case !ok && errFull != nil:
		return outRefused
	case !ok:
		if !proto.Equal(&part, &authv3.CheckRequest{}) {
			t.Fatalf("reader gave up but changed its output: %v\ninput %x", &part, b)
		}
		return outFallback
	case errFull != nil:
		t.Fatalf("reader accepted what proto.Unmarshal refuses (%v)\ninput %x", errFull, b)
	}
	want, got := viewOf(s, &full, testKeep), viewOf(s, &part, testKeep)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("reader and full decode disagree (-full +reader):\n%s\ninput %x", diff, b)
	}
	return outFast
}

// gen writes CheckRequests in wire form field by field, in random order,
// with the irregularities a sender may produce.
type gen struct {
	r    *rand.Rand
	hits map[string]int // which irregularities were produced
	// clean turns irregularities off for one request (field order,
	// unknown fields and both header forms stay), so that about half the
	// requests are the kind Envoy sends.
	clean bool
}

func (g *gen) p(x float64) bool { return g.r.Float64() < x }

// odd is p for an irregularity.
func (g *gen) odd(x float64) bool { return !g.clean && g.p(x) }

func (g *gen) note(what string) { g.hits[what]++ }

var headerPool = []string{":authority", ":path", ":method", "authorization", "cookie", "dpop", "origin",
	"x-token", "x-forwarded-proto", "x-forwarded-host", "x-forwarded-client-cert", "access-control-request-method",
	"user-agent", "accept", "x-request-id", "x-forwarded-for", "content-type", "x-jwt-sub"}

func (g *gen) name() string {
	n := headerPool[g.r.IntN(len(headerPool))]
	if g.odd(0.05) {
		g.note("upper-case name")
		n = strings.ToUpper(n[:1]) + n[1:]
	}
	if g.p(0.02) {
		return ""
	}
	return n
}

func (g *gen) value() []byte {
	x := g.r.IntN(100)
	if g.clean && x >= 8 && x < 14 {
		x = 50
	}
	switch {
	case x < 8:
		return nil
	case x < 11:
		g.note("huge value")
		return []byte(strings.Repeat("v", 1000+g.r.IntN(3000)))
	case x < 14:
		g.note("invalid utf-8")
		return []byte("a\xffb")
	case x < 40:
		return []byte("Bearer eyJhbGciOiJSUzI1NiJ9.e30.c2ln")
	default:
		b := make([]byte, g.r.IntN(40))
		for i := range b {
			b[i] = byte('a' + g.r.IntN(26))
		}
		return b
	}
}

func wireBytes(num protowire.Number, v []byte) []byte {
	b := protowire.AppendTag(nil, num, protowire.BytesType)
	return protowire.AppendBytes(b, v)
}

// fields joins chunks in random order (sometimes as given).
func (g *gen) fields(chunks [][]byte) []byte {
	if g.p(0.7) {
		g.r.Shuffle(len(chunks), func(i, j int) { chunks[i], chunks[j] = chunks[j], chunks[i] })
	}
	return slices.Concat(chunks...)
}

// extra adds unknown fields and, rarely, a known number with the wrong
// wire type, a group, or a malformed value.
func (g *gen) extra(chunks [][]byte, known protowire.Number) [][]byte {
	for g.p(0.15) {
		g.note("unknown field")
		num := protowire.Number(100 + g.r.IntN(50))
		switch g.r.IntN(4) {
		case 0:
			chunks = append(chunks, protowire.AppendVarint(protowire.AppendTag(nil, num, protowire.VarintType), g.r.Uint64()))
		case 1:
			chunks = append(chunks, protowire.AppendFixed32(protowire.AppendTag(nil, num, protowire.Fixed32Type), g.r.Uint32()))
		case 2:
			chunks = append(chunks, wireBytes(num, g.value()))
		default:
			g.note("group")
			b := protowire.AppendTag(nil, num, protowire.StartGroupType)
			b = protowire.AppendVarint(protowire.AppendTag(b, 1, protowire.VarintType), 7)
			chunks = append(chunks, protowire.AppendTag(b, num, protowire.EndGroupType))
		}
	}
	if g.odd(0.03) {
		g.note("wrong wire type")
		chunks = append(chunks, protowire.AppendVarint(protowire.AppendTag(nil, known, protowire.VarintType), 1))
	}
	return chunks
}

// entry is a map<string,string> entry, fields in any order, sometimes
// missing or repeated.
func (g *gen) entry(k string, v []byte) []byte {
	var c [][]byte
	if !g.p(0.03) {
		c = append(c, wireBytes(fnEntryKey, []byte(k)))
	}
	if !g.p(0.03) {
		c = append(c, wireBytes(fnEntryValue, v))
	}
	if g.odd(0.02) {
		g.note("entry field repeated")
		c = append(c, wireBytes(fnEntryValue, g.value()))
	}
	return g.fields(g.extra(c, fnEntryKey))
}

func (g *gen) headerValue() []byte {
	var c [][]byte
	c = append(c, wireBytes(fnHVKey, []byte(g.name())))
	switch g.r.IntN(4) {
	case 0:
		c = append(c, wireBytes(fnHVValue, g.value()))
	case 1:
		g.note("raw_value")
		c = append(c, wireBytes(fnHVRawValue, g.value()))
	case 2:
		g.note("value and raw_value")
		c = append(c, wireBytes(fnHVValue, g.value()), wireBytes(fnHVRawValue, g.value()))
	}
	return g.fields(g.extra(c, fnHVKey))
}

func (g *gen) http() []byte {
	var c [][]byte
	str := func(num protowire.Number, v string) {
		n := 1
		if g.odd(0.03) {
			g.note("scalar repeated")
			n = 2
		}
		for range n {
			c = append(c, wireBytes(num, []byte(v)))
		}
	}
	if !g.p(0.05) {
		str(fnHTTPMethod, []string{"GET", "POST", "get", "OPTIONS"}[g.r.IntN(4)])
	}
	if !g.p(0.05) {
		str(fnHTTPPath, []string{"/", "/v1/items?x=1", "/admin", "*"}[g.r.IntN(4)])
	}
	if g.p(0.9) {
		str(fnHTTPHost, []string{"api.example.com", "API.example.com:8443", ""}[g.r.IntN(3)])
	}
	if g.p(0.7) {
		str(fnHTTPScheme, []string{"https", "http"}[g.r.IntN(2)])
	}
	if g.p(0.5) {
		c = append(c, wireBytes(1, []byte("req-id")), wireBytes(10, []byte("HTTP/2")))
	}
	if g.p(0.1) {
		g.note("body")
		c = append(c, wireBytes(11, g.value()), wireBytes(12, g.value()))
	}
	if g.p(0.2) {
		c = append(c, protowire.AppendVarint(protowire.AppendTag(nil, 9, protowire.VarintType), uint64(g.r.IntN(1<<20))))
	}
	n := g.r.IntN(16)
	used := map[string]bool{}
	if g.clean {
		n = g.r.IntN(10)
	}
	for range n {
		k := g.name()
		if g.clean && used[k] {
			continue // the map form has each key once
		}
		used[k] = true
		if g.odd(0.04) && n > 0 {
			g.note("duplicate map key")
			c = append(c, wireBytes(fnHTTPHeaders, g.entry(k, g.value())))
		}
		c = append(c, wireBytes(fnHTTPHeaders, g.entry(k, g.value())))
	}
	if g.p(0.4) {
		var hm [][]byte
		for range g.r.IntN(16) {
			hm = append(hm, wireBytes(fnHeaderMapHeaders, g.headerValue()))
		}
		reps := 1
		if g.odd(0.03) {
			g.note("header_map repeated")
			reps = 2
		}
		for range reps {
			c = append(c, wireBytes(fnHTTPHeaderMap, g.fields(g.extra(hm, fnHeaderMapHeaders))))
		}
	}
	return g.fields(g.extra(c, fnHTTPPath))
}

func (g *gen) checkRequest() []byte {
	var attrs [][]byte
	if g.p(0.95) {
		req := [][]byte{wireBytes(fnRequestHTTP, g.http())}
		if g.p(0.3) {
			ts, _ := proto.Marshal(&authv3.AttributeContext_Request{})
			req = append(req, wireBytes(1, ts))
		}
		attrs = append(attrs, wireBytes(fnAttrRequest, g.fields(g.extra(req, fnRequestHTTP))))
	}
	for range g.r.IntN(4) {
		k := []string{"rule", "scopes", "providers", "allow_anonymous"}[g.r.IntN(4)]
		attrs = append(attrs, wireBytes(fnAttrContext, g.entry(k, g.value())))
	}
	if g.p(0.3) {
		g.note("source")
		peer := [][]byte{wireBytes(fnPeerCertificate, g.value())}
		if g.p(0.5) {
			addr, _ := proto.Marshal(&corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{Address: "10.0.0.1"}}})
			peer = append(peer, wireBytes(1, addr), wireBytes(4, []byte("spiffe://x")))
		}
		attrs = append(attrs, wireBytes(fnAttrSource, g.fields(g.extra(peer, fnPeerCertificate))))
	}
	if g.p(0.3) {
		g.note("metadata")
		md, _ := structpb.NewStruct(map[string]any{"a": "b", "n": 1.5, "l": []any{"x", true}})
		meta, _ := proto.Marshal(&corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{"f": md}})
		if g.odd(0.2) {
			g.note("invalid utf-8 in skipped field")
			meta = wireBytes(1, g.entry("k\xff", nil))
		}
		attrs = append(attrs, wireBytes(11, meta))
	}
	b := wireBytes(fnCheckAttributes, g.fields(g.extra(attrs, fnAttrRequest)))
	switch x := g.r.IntN(100); {
	case g.clean:
	case x < 3:
		g.note("truncated")
		b = b[:g.r.IntN(len(b)+1)]
	case x < 6:
		g.note("byte flipped")
		b = slices.Clone(b)
		b[g.r.IntN(len(b))] ^= byte(1 + g.r.IntN(255))
	}
	return b
}

// TestReaderAgreesWithFullDecode compares the selective reader with
// proto.Unmarshal on generated requests: whenever the reader answers, the
// full decode accepts the same bytes and a decision sees the same request.
func TestReaderAgreesWithFullDecode(t *testing.T) {
	t.Parallel()
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	g := &gen{r: rand.New(rand.NewPCG(seed, 15)), hits: map[string]int{}}
	s := NewServer(Options{Limits: testLimits})
	var count [3]int
	const n = 20000
	for i := range n {
		g.clean = i%2 == 0
		count[compareDecodes(t, s, g.checkRequest())]++
	}
	t.Logf("fast %d, fallback %d, refused %d; irregularities %v", count[outFast], count[outFallback], count[outRefused], g.hits)
	if count[outFast] < n/3 || count[outFallback] == 0 || count[outRefused] == 0 {
		t.Errorf("generator too narrow: fast %d, fallback %d, refused %d of %d", count[outFast], count[outFallback], count[outRefused], n)
	}
	for _, what := range []string{"upper-case name", "huge value", "invalid utf-8", "unknown field", "group", "wrong wire type",
		"duplicate map key", "raw_value", "value and raw_value", "header_map repeated", "scalar repeated", "source",
		"metadata", "invalid utf-8 in skipped field", "truncated", "byte flipped", "entry field repeated"} {
		if g.hits[what] == 0 {
			t.Errorf("generator never produced %q", what)
		}
	}
}

// FuzzReadCheck is the differential test under the fuzzer: any input the
// reader accepts, proto.Unmarshal accepts, and both give a decision the
// same request.
func FuzzReadCheck(f *testing.F) {
	g := &gen{r: rand.New(rand.NewPCG(1, 15)), hits: map[string]int{}}
	for i := range 40 {
		g.clean = i%2 == 0
		f.Add(g.checkRequest())
	}
	typical, _ := proto.Marshal(&authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{Method: "GET", Path: "/",
			Host: "api.example.com", Headers: map[string]string{"authorization": "Bearer a.b.c", ":authority": "api.example.com"}}}}})
	f.Add(typical)
	s := NewServer(Options{Limits: testLimits})
	f.Fuzz(func(t *testing.T, b []byte) {
		compareDecodes(t, s, b)
	})
}

// TestReaderKeepsOnlyWhatIsRead shows the reader's output on an
// Envoy-shaped request: the kept headers only, in both forms.
func TestReaderKeepsOnlyWhatIsRead(t *testing.T) {
	t.Parallel()
	hdrs := map[string]string{":authority": "api.example.com", "authorization": "Bearer t", "user-agent": "x", "accept": "*/*"}
	full := &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		Source:            &authv3.AttributeContext_Peer{Certificate: "-----BEGIN%20CERTIFICATE-----", Principal: "p"},
		ContextExtensions: map[string]string{"rule": "api"},
		Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{Method: "GET", Path: "/x",
			Host: "api.example.com", Scheme: "https", Protocol: "HTTP/2", Headers: hdrs}}}}
	b, err := proto.Marshal(full)
	if err != nil {
		t.Fatal(err)
	}
	var part authv3.CheckRequest
	if !readCheck(b, testKeep, Limits{MaxHeaders: 200, MaxHeaderBytes: 64 << 10}, &part, nil) {
		t.Fatal("reader gave up on a plain request")
	}
	want := &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		Source:            &authv3.AttributeContext_Peer{Certificate: "-----BEGIN%20CERTIFICATE-----"},
		ContextExtensions: map[string]string{"rule": "api"},
		Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{Method: "GET", Path: "/x",
			Host: "api.example.com", Scheme: "https",
			Headers: map[string]string{":authority": "api.example.com", "authorization": "Bearer t"}}}}}
	if !proto.Equal(&part, want) {
		t.Errorf("read %v\nwant %v", &part, want)
	}

	// The same headers as header_map, one repeated: kept in order.
	full.Attributes.Request.Http.Headers = nil
	full.Attributes.Request.Http.HeaderMap = &corev3.HeaderMap{Headers: []*corev3.HeaderValue{
		{Key: "Authorization", Value: "Bearer t"}, {Key: "accept", Value: "*/*"}, {Key: "authorization", RawValue: []byte("Bearer u")}}}
	b, _ = proto.Marshal(full)
	part = authv3.CheckRequest{}
	if !readCheck(b, testKeep, Limits{MaxHeaders: 200, MaxHeaderBytes: 64 << 10}, &part, nil) {
		t.Fatal("reader gave up on header_map")
	}
	s := NewServer(Options{})
	r, refused := s.request(&part)
	if bad := refused.Description; bad != "" || r.Headers["authorization"] != "Bearer t,Bearer u" || r.Repeated["authorization"] != 2 || len(r.Headers) != 1 {
		t.Errorf("header_map read as %+v (%q)", r, bad)
	}
}

// TestReaderFallsBackOverLimits: a request over the header limits is left
// to the full path, which words the denial.
func TestReaderFallsBackOverLimits(t *testing.T) {
	t.Parallel()
	many := map[string]string{}
	for i := range 13 {
		many[strings.Repeat("h", i+1)] = "v"
	}
	for name, h := range map[string]map[string]string{
		"count": many,
		"bytes": {"x-big": strings.Repeat("v", 2048)},
	} {
		b, _ := proto.Marshal(&authv3.CheckRequest{Attributes: &authv3.AttributeContext{Request: &authv3.AttributeContext_Request{
			Http: &authv3.AttributeContext_HttpRequest{Method: "GET", Path: "/", Headers: h}}}})
		var part authv3.CheckRequest
		if readCheck(b, testKeep, testLimits, &part, nil) {
			t.Errorf("%s: reader read a request over the limits", name)
		}
	}
}

// TestHeadersReadCoversSources: the codec keeps what the authorizer's
// token sources name, and what every decision may read (authz's
// TestHeadersRead holds the DPoP, forwarding and XFCC headers, which
// appear as configured).
func TestHeadersReadCoversSources(t *testing.T) {
	t.Parallel()
	a, err := authz.New(authz.Options{Providers: []authz.Provider{{Name: "p", Issuer: "https://i/", Keys: authz.StaticKeys(nil),
		Sources: []authz.TokenSource{{Header: "X-Api-Token"}, {Cookie: "at"}, {Query: "access_token"}}}}})
	if err != nil {
		t.Fatal(err)
	}
	got := a.HeadersRead()
	for _, h := range []string{"x-api-token", "cookie", ":authority", ":scheme", "origin", "access-control-request-method"} {
		if !slices.Contains(got, h) {
			t.Errorf("HeadersRead() = %v, lacks %q", got, h)
		}
	}
}

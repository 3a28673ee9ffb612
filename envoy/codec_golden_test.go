package envoy_test

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/proto"

	"github.com/jwtauthz/jwt-authz/internal/stacktest"
)

// rawCodec is a client codec that keeps the answer's bytes as they came
// over the wire.
type rawCodec struct{}

type rawAnswer struct{ b []byte }

func (rawCodec) Name() string { return "proto" }

func (rawCodec) Marshal(v any) (mem.BufferSlice, error) {
	b, err := proto.Marshal(v.(proto.Message))
	return mem.BufferSlice{mem.SliceBuffer(b)}, err
}

func (rawCodec) Unmarshal(data mem.BufferSlice, v any) error {
	r, ok := v.(*rawAnswer)
	if !ok {
		return fmt.Errorf("rawCodec: %T", v)
	}
	r.b = data.Materialize()
	return nil
}

// checkRaw sends r to the stack and returns the answer's wire bytes.
func checkRaw(t *testing.T, s *stacktest.Stack, r stacktest.Req) []byte {
	t.Helper()
	conn, err := grpc.NewClient(s.Addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var out rawAnswer
	if err := conn.Invoke(ctx, "/envoy.service.auth.v3.Authorization/Check", r.CheckRequest(), &out, grpc.ForceCodecV2(rawCodec{})); err != nil {
		t.Fatalf("Check: %v", err)
	}
	return out.b
}

// assertStoredAnswer sends r twice more after first (the rendered answer
// of its first Check): the answers must equal first, and when the
// token's answer is stored (stored), be exactly the deterministic
// encoding of first, both times.
func assertStoredAnswer(t *testing.T, s *stacktest.Stack, r stacktest.Req, first *authv3.CheckResponse, stored bool) {
	t.Helper()
	want, err := proto.MarshalOptions{Deterministic: true}.Marshal(first)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		b := checkRaw(t, s, r)
		got := &authv3.CheckResponse{}
		if err := proto.Unmarshal(b, got); err != nil {
			t.Fatalf("answer %d: %v", i+2, err)
		}
		if !proto.Equal(got, first) {
			t.Errorf("answer %d differs from the first:\n got %v\nwant %v", i+2, got, first)
		}
		if stored && !bytes.Equal(b, want) {
			t.Errorf("answer %d: stored bytes differ from the deterministic encoding of the first answer:\n got %x\nwant %x", i+2, b, want)
		}
	}
}

// TestStoredAnswersAreInvisible sends the same random sequence of
// requests (tokens, rules, token places, context_extensions, repeats) to
// a stack with the token cache (and so stored answers) and to one
// without: every answer must be the same message.
func TestStoredAnswersAreInvisible(t *testing.T) {
	t.Parallel()
	w := newRulesWorld(t, "")
	yaml := fmt.Sprintf(rulesYAML, w.a.IssuerURL(), w.a.JWKSURL(), w.b.IssuerURL(), w.b.JWKSURL())
	uncached := stacktest.Start(t, yaml+"token_cache: {max_entries: 0}\n", stacktest.Options{})
	rich := map[string]any{"https://example.com/tenant": "acme", "level": 3, "beta": true,
		"org": map[string]any{"id": "o-1"}, "roles": []string{"editor"}}
	toks := []string{
		w.a.Sign(t, with(w.a, rich)),
		w.a.Sign(t, with(w.a, nil)),
		w.a.Sign(t, with(w.a, map[string]any{"scope": "read:target admin:write", "sub": "admin@clients"})),
		w.b.Sign(t, w.b.Claims("other@clients")),
	}
	paths := []string{"/v1/items", "/v2/items/9", "/t/x", "/exact", "/org", "/public/x", "/admin", "/trial/x", "/other"}
	contexts := []map[string]string{nil, {"rule": "public"}, {"rule": "versioned"}, {"scopes": "admin:write"}, {"providers": "auth0"}}
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 7))
	var reqs []stacktest.Req
	for range 60 {
		tok := toks[rng.IntN(len(toks))]
		r := stacktest.Req{Path: paths[rng.IntN(len(paths))], Context: contexts[rng.IntN(len(contexts))]}
		switch rng.IntN(3) {
		case 0:
			r.Token = tok
		case 1:
			r.Path += "?a=1&access_token=" + tok
		default:
			r.Headers = map[string]string{"cookie": "a=1; at=" + tok}
		}
		reqs = append(reqs, r)
	}
	stored := 0
	for range 4 { // repeats: the first pass fills the cache, later ones use stored answers
		for _, r := range reqs {
			var got, want authv3.CheckResponse
			gb, wb := checkRaw(t, w.Stack, r), checkRaw(t, uncached, r)
			if err := proto.Unmarshal(gb, &got); err != nil {
				t.Fatal(err)
			}
			if err := proto.Unmarshal(wb, &want); err != nil {
				t.Fatal(err)
			}
			if !proto.Equal(&got, &want) {
				t.Fatalf("%+v: with stored answers\n%v\nwithout a cache\n%v", r, &got, &want)
			}
			if det, _ := (proto.MarshalOptions{Deterministic: true}).Marshal(&got); got.GetOkResponse() != nil && bytes.Equal(det, gb) {
				stored++
			}
		}
	}
	if stored == 0 {
		t.Error("no answer came from stored bytes")
	}
}

// TestCodecIsInvisible sends the same random requests — tokens in every
// place, CORS preflights, hosts from :authority, spoofed claim headers,
// sender-constraint and forwarding headers, noise — to a stack serving
// through the codec and to one decoding every request in full: the
// answers must be the same message. A header some check reads but
// HeadersRead leaves out would show here.
func TestCodecIsInvisible(t *testing.T) {
	t.Parallel()
	w := newRulesWorld(t, "")
	yaml := fmt.Sprintf(rulesYAML, w.a.IssuerURL(), w.a.JWKSURL(), w.b.IssuerURL(), w.b.JWKSURL())
	full := stacktest.Start(t, yaml, stacktest.Options{FullDecode: true})
	good := w.a.Sign(t, with(w.a, nil))
	toks := []string{good, w.b.Sign(t, w.b.Claims("other@clients")), tamper(good), "a.b"}
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 9))
	pick := func(xs ...string) string { return xs[rng.IntN(len(xs))] }
	for range 300 {
		r := stacktest.Req{Method: pick("GET", "OPTIONS", "POST", "HEAD"), Path: pick("/v1/items", "/cors/x", "/public/x", "/admin", "/t/x"),
			Host: pick("api.example.com", "", "acme.tenants.example.com"), Headers: map[string]string{}}
		if rng.IntN(2) == 0 {
			r.Token = toks[rng.IntN(len(toks))]
		}
		// Each header is there about a third of the time, with a value
		// that matters to it or not.
		for k, vs := range map[string][]string{
			"cookie":                        {"at=" + toks[rng.IntN(len(toks))], "a=1"},
			"origin":                        {"https://app.example.com", ""},
			"access-control-request-method": {"GET", "bad method"},
			":authority":                    {"api.example.com", "evil.example.com", "a..b"},
			"dpop":                          {"x.y.z"},
			"x-forwarded-client-cert":       {"Hash=ab;Cert=x"},
			"x-forwarded-proto":             {"https", "http"},
			"x-forwarded-host":              {"api.example.com"},
			"x-jwt-sub":                     {"spoof"},
			"authorization":                 {"Basic dTpw", "Bearer " + good, "DPoP " + good},
			"user-agent":                    {"x"},
		} {
			if rng.IntN(3) == 0 {
				r.Headers[k] = vs[rng.IntN(len(vs))]
			}
		}
		var got, want authv3.CheckResponse
		if err := proto.Unmarshal(checkRaw(t, w.Stack, r), &got); err != nil {
			t.Fatal(err)
		}
		if err := proto.Unmarshal(checkRaw(t, full, r), &want); err != nil {
			t.Fatal(err)
		}
		if !proto.Equal(&got, &want) {
			t.Fatalf("%+v: through the codec\n%v\nfully decoded\n%v", r, &got, &want)
		}
	}
}

package envoy

import (
	"bytes"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/jwtauthz/jwt-authz/authz"
)

// TestEncodeDecisionMatchesProto: the direct encoding of a decision is
// the deterministic proto encoding of Response's message, over generated
// allowed and denied decisions (empty, long and unsafe values, any number
// of headers, challenges, removals and metadata fields).
func TestEncodeDecisionMatchesProto(t *testing.T) {
	t.Parallel()
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	r := rand.New(rand.NewPCG(seed, 5))
	str := func() string {
		switch r.IntN(6) {
		case 0:
			return ""
		case 1:
			return strings.Repeat("x", r.IntN(300))
		case 2:
			return "a\r\nb"
		case 3:
			return "caf\u00e9 \u2028"
		}
		return []string{"x-jwt-sub", "svc@clients", "read:target write:target", "https://tenant.example.com/"}[r.IntN(4)]
	}
	reasons := []authz.Reason{authz.ReasonOK, authz.ReasonAnonymous, authz.ReasonDryRun, authz.ReasonMissingToken,
		authz.ReasonInvalidSignature, authz.ReasonInsufficientScope, authz.ReasonKeysUnavailable, authz.ReasonBadRequest, ""}
	enc := proto.MarshalOptions{Deterministic: true}
	for i := range 3000 {
		d := authz.Decision{Allow: r.IntN(2) == 0, Reason: reasons[r.IntN(len(reasons))], Provider: str(), Rule: str(),
			Metadata: authz.Metadata{Issuer: str(), Subject: str(), ClientID: str(), Scope: str(),
				CnfMethod: str(), CnfThumbprint: str()}}
		if d.Allow {
			d.Status = 200
			for range r.IntN(6) {
				d.Headers = append(d.Headers, authz.Header{Name: str(), Value: str()})
			}
			for range r.IntN(4) {
				d.RemoveHeaders = append(d.RemoveHeaders, str())
			}
			for range r.IntN(2) {
				d.RemoveQuery = append(d.RemoveQuery, str())
			}
		} else {
			d.Status = []int{0, 400, 401, 403, 500, 503}[r.IntN(6)]
			for range r.IntN(3) {
				d.Challenges = append(d.Challenges, str())
			}
			d.RetryAfter, d.ContentType, d.Body = str(), str(), []byte(str())
		}
		want, err := enc.Marshal(Response(&d))
		if err != nil {
			t.Fatal(err)
		}
		if got := encodeDecision(&d); !bytes.Equal(got, want) {
			t.Fatalf("case %d %+v:\n got %x\nwant %x", i, d, got, want)
		}
	}
}

// BenchmarkEncodeDecision writes the shaped floor's answer directly;
// BenchmarkMarshalResponse builds and marshals it as proto does.
func BenchmarkEncodeDecision(b *testing.B) {
	d := shapedDecision()
	b.ReportAllocs()
	for b.Loop() {
		encodeDecision(d)
	}
}

func BenchmarkMarshalResponse(b *testing.B) {
	d := shapedDecision()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := proto.Marshal(Response(d)); err != nil {
			b.Fatal(err)
		}
	}
}

func shapedDecision() *authz.Decision {
	const scope = "read:target write:target read:users openid profile"
	return &authz.Decision{Allow: true, Reason: authz.ReasonOK, Status: 200, Provider: "tenant", Rule: "api",
		Headers: []authz.Header{{Name: "x-jwt-sub", Value: "svc-0000000@clients"}, {Name: "x-jwt-scope", Value: scope},
			{Name: "x-jwt-client-id", Value: "k3yQm2Zp9VbX7nR4tL8wC1dF6gH0jS5a"},
			{Name: "x-jwt-permissions", Value: "read:target,write:target,read:users"}},
		Metadata: authz.Metadata{Issuer: "https://tenant.example.com/",
			Subject: "svc-0000000@clients", ClientID: "k3yQm2Zp9VbX7nR4tL8wC1dF6gH0jS5a", Scope: scope}}
}

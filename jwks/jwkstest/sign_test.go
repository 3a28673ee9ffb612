package jwkstest_test

import (
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/jwtauthz/jwt-authz/jwks/jwkstest"
)

func TestWith(t *testing.T) {
	t.Parallel()
	base := map[string]any{"a": 1, "b": "x", "c": true}
	got := jwkstest.With(base, map[string]any{"b": nil, "c": false, "d": "new"})
	if diff := cmp.Diff(map[string]any{"a": 1, "c": false, "d": "new"}, got); diff != "" {
		t.Errorf("With (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(map[string]any{"a": 1, "b": "x", "c": true}, base); diff != "" {
		t.Errorf("With changed its input (-want +got):\n%s", diff)
	}
}

func decodePart(t *testing.T, part string) map[string]any {
	t.Helper()
	b, err := base64.RawURLEncoding.DecodeString(part)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestUnsignedAndTamper(t *testing.T) {
	t.Parallel()
	parts := strings.Split(jwkstest.Unsigned("none", map[string]any{"sub": "s"}), ".")
	if len(parts) != 3 || parts[2] != "AA" {
		t.Fatalf("Unsigned parts = %q", parts)
	}
	if diff := cmp.Diff(map[string]any{"alg": "none", "typ": "JWT"}, decodePart(t, parts[0])); diff != "" {
		t.Errorf("header (-want +got):\n%s", diff)
	}
	tok := jwkstest.Unsigned("RS256", map[string]any{"sub": "s", "scope": "read"})
	tampered := strings.Split(jwkstest.Tamper(tok, map[string]any{"scope": "admin", "sub": nil}), ".")
	orig := strings.Split(tok, ".")
	if tampered[0] != orig[0] || tampered[2] != orig[2] {
		t.Errorf("Tamper changed the header or signature: %q", tampered)
	}
	if diff := cmp.Diff(map[string]any{"scope": "admin"}, decodePart(t, tampered[1])); diff != "" {
		t.Errorf("tampered claims (-want +got):\n%s", diff)
	}
}

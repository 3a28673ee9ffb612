package authz_test

import (
	"encoding/json"
	"fmt"
	"math"
	mrand "math/rand/v2"
	"strconv"
	"testing"
	"time"

	"github.com/jwtauthz/jwt-authz/authz"
	"github.com/jwtauthz/jwt-authz/jwks/jwkstest"
)

// TestMaxLifetimeCannotOverflow: for generated iat and exp — near now,
// decades away, beyond year 9999, negative, 1e300, fractional — a
// provider with a 24 h max_lifetime answers as the model says: a date out
// of [0, year 10000) is malformed_token, a lifetime over 24 h is
// token_too_old, never ok. Before, exp - iat was turned into a Duration,
// which overflows and wraps for the large values.
func TestMaxLifetimeCannotOverflow(t *testing.T) {
	t.Parallel()
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := mrand.New(mrand.NewPCG(seed, 4))
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	const maxLife, skew = 24 * time.Hour, 30 * time.Second
	o := benchOptions(t, 100, func() time.Time { return now })
	o.Providers[0].MaxLifetime = maxLife
	a, err := authz.New(o)
	if err != nil {
		t.Fatal(err)
	}
	n := float64(now.Unix())
	pick := func() string {
		switch rng.IntN(8) {
		case 0:
			return []string{"1e300", "20000000000", "-9000000000", "9223372036854775807", "9.3e18", "-1", "-0",
				"253402300799", "253402300800", "1e19", "18446744073709551616", "0", "4e18"}[rng.IntN(13)]
		case 1:
			return strconv.FormatFloat(n+rng.Float64()*4e11-2e11, 'f', -1, 64)
		case 2:
			return strconv.FormatFloat(math.Ldexp(1, rng.IntN(80)), 'g', -1, 64)
		default:
			return strconv.FormatInt(int64(n)+rng.Int64N(4*86400)-2*86400, 10)
		}
	}
	for i := range 300 {
		iatText, expText := pick(), pick()
		if rng.IntN(3) == 0 {
			iatText = strconv.FormatInt(now.Unix()-60, 10)
		}
		claims := benchClaims(now, fmt.Sprintf("c%d", i))
		claims["iat"], claims["exp"] = json.Number(iatText), json.Number(expText)
		tok := jwkstest.SignToken(t, "EdDSA", keys(t).ed, map[string]any{"kid": "EdDSA"}, claims)
		got := a.Check(t.Context(), benchRequest("Bearer "+tok)).Reason

		iat, _ := strconv.ParseFloat(iatText, 64)
		exp, _ := strconv.ParseFloat(expText, 64)
		inRange := func(text string, f float64) bool { return text[0] != '-' && f < 253402300800 }
		var want authz.Reason
		switch {
		case !inRange(iatText, iat) || !inRange(expText, exp):
			want = authz.ReasonMalformedToken
		case exp+skew.Seconds() <= n:
			want = authz.ReasonExpired
		case iat > n+skew.Seconds():
			want = authz.ReasonNotYetValid
		case exp-iat > maxLife.Seconds():
			want = authz.ReasonTokenTooOld
		default:
			want = authz.ReasonOK
		}
		if got != want {
			t.Errorf("iat %s exp %s: got %q, want %q", iatText, expText, got, want)
		}
	}
}

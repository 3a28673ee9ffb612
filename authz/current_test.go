package authz_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/expfmt"

	"github.com/jwtauthz/jwt-authz/authz"
	"github.com/jwtauthz/jwt-authz/jwks/jwkstest"
)

// panickyKeys is a key source with a bug.
type panickyKeys struct{}

func (panickyKeys) Key(context.Context, string) (*authz.Key, error) { panic("key source bug") }
func (panickyKeys) Keys(context.Context) ([]*authz.Key, error)      { panic("key source bug") }

// scrape renders reg as the text /metrics serves.
func scrape(t *testing.T, reg *prometheus.Registry) string {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	for _, mf := range mfs {
		if _, err := expfmt.MetricFamilyToText(&b, mf); err != nil {
			t.Fatal(err)
		}
	}
	return b.String()
}

func TestCurrentBeforeFirstConfig(t *testing.T) {
	t.Parallel()
	c := authz.NewCurrent(authz.CurrentOptions{})
	read := func() (*authz.Request, authz.Refusal) {
		t.Error("read called without an authorizer")
		return nil, authz.Refusal{}
	}
	d := c.Check(t.Context(), read)
	if d.Allow || d.Status != 503 || d.Reason != authz.ReasonKeysUnavailable || d.RetryAfter != "5" || challenge(d) != "" {
		t.Errorf("got allow=%v %d %s retry-after %q challenge %q; want a 503 keys_unavailable with retry-after 5",
			d.Allow, d.Status, d.Reason, d.RetryAfter, challenge(d))
	}
	if !strings.Contains(string(d.Body), `"error":"temporarily_unavailable"`) {
		t.Errorf("body %s", d.Body)
	}
}

// TestCurrentAnswersEveryInput draws requests, refusals and panics (in the
// adapter's translation and in deciding) and checks that each ends in the
// decision its kind promises, that a panic is logged, and that the scraped
// jwt_authz_checks_total counts every decision under its reason.
func TestCurrentAnswersEveryInput(t *testing.T) {
	t.Parallel()
	const seed = 20261202
	t.Logf("seed %d", seed)
	r := rand.New(rand.NewPCG(seed, seed))
	reg := prometheus.NewRegistry()
	o := benchOptions(t, 100, nil)
	o.Metrics, o.CacheMetrics = authz.NewMetrics(reg), nil
	o.Providers = append(o.Providers, authz.Provider{Name: "buggy", Issuer: "https://buggy.example/", Keys: panickyKeys{},
		Audiences: []string{benchAudience}, Algorithms: []string{"RS256"}})
	a, err := authz.New(o)
	if err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer // the draws run one after another: no lock needed
	c := authz.NewCurrent(authz.CurrentOptions{Logger: slog.New(slog.NewJSONHandler(&logs, nil))})
	c.Store(a)
	good := benchToken(t, "RS256", time.Now(), "svc@clients")
	buggy := signedFor(t, "https://buggy.example/")
	want := map[string]int{}
	panics := 0
	for i := range 300 {
		var read func() (*authz.Request, authz.Refusal)
		var reason authz.Reason
		switch kind := r.IntN(5); kind {
		case 0:
			reason = authz.ReasonOK
			read = func() (*authz.Request, authz.Refusal) { return benchRequest("Bearer " + good), authz.Refusal{} }
		case 1:
			reason = authz.ReasonMissingToken
			read = func() (*authz.Request, authz.Refusal) { return benchRequest(""), authz.Refusal{} }
		case 2:
			reason = []authz.Reason{authz.ReasonBadRequest, authz.ReasonHeadersTooLarge}[r.IntN(2)]
			desc := fmt.Sprintf("refusal %d", i)
			read = func() (*authz.Request, authz.Refusal) { return nil, authz.Refuse(reason, desc) }
		case 3:
			reason = authz.ReasonInternalError
			panics++
			read = func() (*authz.Request, authz.Refusal) { panic(fmt.Sprintf("adapter bug %d", i)) }
		case 4:
			reason = authz.ReasonInternalError
			panics++
			read = func() (*authz.Request, authz.Refusal) { return benchRequest("Bearer " + buggy), authz.Refusal{} }
		}
		d := c.Check(t.Context(), read)
		if d.Reason != reason || d.Status != reason.Status() || d.Allow != (reason == authz.ReasonOK) {
			t.Fatalf("draw %d: %s %d (%s), want %s %d", i, d.Reason, d.Status, d.Description, reason, reason.Status())
		}
		if !d.Allow && reason.Status() != 401 && reason.Status() != 403 && challenge(d) != "" {
			t.Fatalf("draw %d: %s has a challenge %q", i, d.Reason, challenge(d))
		}
		label := "deny"
		if d.Allow {
			label = "allow"
		}
		provider := d.Provider
		if provider == "" {
			provider = "none"
		}
		want[fmt.Sprintf(`jwt_authz_checks_total{decision=%q,provider=%q,reason=%q} `, label, provider, reason)]++
	}
	text := scrape(t, reg)
	for series, n := range want {
		if !strings.Contains(text, fmt.Sprintf("%s%d\n", series, n)) {
			t.Errorf("scrape lacks %s%d:\n%s", series, n, text)
		}
	}
	if got := strings.Count(logs.String(), `"msg":"check panicked"`); got != panics {
		t.Errorf("%d panics logged, want %d", got, panics)
	}
}

// TestCurrentSwap: while authorizers are stored over and over, every check
// finishes on one of them (its realm is in the challenge), never on none.
func TestCurrentSwap(t *testing.T) {
	t.Parallel()
	one, two := withRealm(t, "one"), withRealm(t, "two")
	c := authz.NewCurrent(authz.CurrentOptions{})
	c.Store(one)
	read := func() (*authz.Request, authz.Refusal) { return benchRequest(""), authz.Refusal{} }
	stop := make(chan struct{})
	swapped := make(chan struct{})
	go func() {
		defer close(swapped)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
				c.Store([]*authz.Authorizer{one, two}[i%2])
			}
		}
	}()
	var checkers sync.WaitGroup
	for range 4 {
		checkers.Go(func() {
			for range 500 {
				d := c.Check(context.Background(), read)
				if c := challenge(d); c != `Bearer realm="one"` && c != `Bearer realm="two"` {
					t.Errorf("challenge %q from neither authorizer", challenge(d))
					return
				}
			}
		})
	}
	checkers.Wait()
	close(stop)
	<-swapped
}

// TestCurrentCheckOn: CheckOn decides on the authorizer it is given even
// after another was stored (the codec read the request for that one), with
// Current's handling of refusals and panics; nil answers as before the
// first config.
func TestCurrentCheckOn(t *testing.T) {
	t.Parallel()
	old, current := withRealm(t, "old"), withRealm(t, "current")
	c := authz.NewCurrent(authz.CurrentOptions{})
	c.Store(current)
	ctx := context.Background()
	for _, tc := range []struct {
		name   string
		read   func() (*authz.Request, authz.Refusal)
		reason authz.Reason
		status int
	}{
		{"a request", func() (*authz.Request, authz.Refusal) { return benchRequest(""), authz.Refusal{} }, authz.ReasonMissingToken, 401},
		{"a refusal", func() (*authz.Request, authz.Refusal) {
			return nil, authz.Refuse(authz.ReasonHeadersTooLarge, "request headers too large")
		}, authz.ReasonHeadersTooLarge, 431},
		{"a panic", func() (*authz.Request, authz.Refusal) { panic("adapter bug") }, authz.ReasonInternalError, 500},
	} {
		d := c.CheckOn(ctx, old, tc.read)
		if d.Allow || d.Reason != tc.reason || d.Status != tc.status {
			t.Errorf("%s: allow=%v %s %d, want %s %d", tc.name, d.Allow, d.Reason, d.Status, tc.reason, tc.status)
		}
		if tc.status == 401 && !strings.HasPrefix(challenge(d), `Bearer realm="old"`) {
			t.Errorf("%s: challenge %q, want the old authorizer's realm", tc.name, challenge(d))
		}
	}
	for _, a := range []struct {
		a    *authz.Authorizer
		want float64
	}{{old, 1}, {current, 0}} {
		if got := testutil.ToFloat64(a.a.Metrics().Checks("deny", string(authz.ReasonInternalError), "none")); got != a.want {
			t.Errorf("an authorizer counted %v internal_error denials, want %v (the old one decides)", got, a.want)
		}
	}
	d := c.CheckOn(ctx, nil, func() (*authz.Request, authz.Refusal) {
		t.Error("read called without an authorizer")
		return nil, authz.Refusal{}
	})
	if d.Allow || d.Status != 503 || d.Reason != authz.ReasonKeysUnavailable {
		t.Errorf("nil authorizer: allow=%v %d %s, want a 503 keys_unavailable", d.Allow, d.Status, d.Reason)
	}
}

// signedFor is a valid-looking RS256 token of another issuer.
func signedFor(t *testing.T, issuer string) string {
	t.Helper()
	claims := benchClaims(time.Now(), "svc@clients")
	claims["iss"] = issuer
	return jwkstest.SignToken(t, "RS256", keys(t).signer("RS256"), map[string]any{"kid": "RS256"}, claims)
}

// withRealm is the bench authorizer with its challenges' realm set to name.
func withRealm(t *testing.T, name string) *authz.Authorizer {
	t.Helper()
	o := benchOptions(t, 10, nil)
	o.Realm = name
	a, err := authz.New(o)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

package main

import (
	"context"
	"fmt"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/jwtauthz/jwt-authz/internal/stacktest"
	"github.com/jwtauthz/jwt-authz/jwks/jwkstest"
)

const soakYAML = `
realm: %q
providers:
- name: auth0
  issuer: %q
  audiences: ["urn:apigee:target:api"]
  jwks: {uri: %q, refresh_interval: "1s", min_refresh_interval: "0.5s", fetch_timeout: "0.5s"}
  claim_headers: [{claim: "sub", header: "x-jwt-sub"}]
rules:
- name: api
  match: {path_prefix: "/"}
  require: {scopes: ["read:target"]}
token_cache: {max_entries: 1000}
`

func metricValue(metrics, name string) float64 {
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name) + ` ([0-9.e+]+)$`).FindStringSubmatch(metrics)
	if m == nil {
		return -1
	}
	v, _ := strconv.ParseFloat(m[1], 64)
	return v
}

// TestSoak drives Check at a steady rate with valid, expired, forged and
// random tokens, and DPoP-bound ones (with a fresh proof, a replayed proof,
// or sent as Bearer), while the issuer rotates keys, its JWKS endpoint fails for
// a while, and the config is reloaded by file change and SIGHUP. Every
// request's answer is known in advance; it asserts zero gRPC errors, zero
// wrong decisions and bounded goroutine and RSS growth. SOAK_DURATION sets
// the length (make soak: 3m; make test: a short run).
func TestSoak(t *testing.T) {
	dur := 6 * time.Second
	if v := os.Getenv("SOAK_DURATION"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Fatal(err)
		}
		dur = d
	}
	iss := jwkstest.New(t, jwkstest.Options{})
	dir := t.TempDir()
	cfg := filepath.Join(dir, "jwt-authz.yaml")
	gen := 0
	writeGen := func() {
		gen++
		writeConfig(t, cfg, fmt.Sprintf(soakYAML, fmt.Sprintf("soak-%d", gen), iss.IssuerURL(), iss.JWKSURL()))
	}
	writeGen()
	p := startServe(t, cfg)
	eventually(t, "ready", func() bool { c, _ := p.get(t, "/readyz"); return c == 200 })

	conn, err := grpc.NewClient(p.grpc, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := authv3.NewAuthorizationClient(conn)

	// The signing kid changes on rotation; readers take it atomically.
	var signKid atomic.Value
	signKid.Store(iss.KID())
	// DPoP clients: a proof key, and tokens bound to it.
	dpopKey := jwkstest.NewDPoPKey(t, "ES256")
	type tokenSet struct{ valid, expired, forged, bound []string }
	mint := func(kid string) tokenSet {
		var s tokenSet
		now := time.Now().Unix()
		for i := range 20 {
			c := iss.Claims(fmt.Sprintf("client-%d@clients", i))
			s.valid = append(s.valid, iss.SignWith(t, kid, nil, c))
			c["cnf"] = map[string]any{"jkt": dpopKey.JKT}
			s.bound = append(s.bound, iss.SignWith(t, kid, nil, c))
			delete(c, "cnf")
			c["exp"], c["iat"] = now-3600, now-7200
			s.expired = append(s.expired, iss.SignWith(t, kid, nil, c))
			v := s.valid[i]
			s.forged = append(s.forged, v[:len(v)-4]+"AAAA")
		}
		return s
	}
	var tokens atomic.Pointer[tokenSet]
	ts := mint(iss.KID())
	tokens.Store(&ts)

	_, m0 := p.get(t, "/metrics")
	g0, rss0 := metricValue(m0, "go_goroutines"), metricValue(m0, "process_resident_memory_bytes")

	ctx, cancel := context.WithTimeout(context.Background(), dur)
	defer cancel()
	var sent, grpcErrors, wrong atomic.Int64
	var wrongMu sync.Mutex
	var wrongSamples []string
	const workers, perWorkerRate = 4, 100 // 400 Checks/s in all
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := mrand.New(mrand.NewPCG(uint64(w), 7))
			var lastProof, lastBound string // a proof already accepted, for replays
			tick := time.NewTicker(time.Second / perWorkerRate)
			defer tick.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-tick.C:
				}
				set := tokens.Load()
				var tok string
				var wantCode int32
				req := stacktest.Req{Path: "/echo"}
				switch k := rng.IntN(12); {
				case k < 6:
					tok, wantCode = set.valid[rng.IntN(len(set.valid))], 0
				case k < 7: // DPoP: a bound token with a fresh proof
					tok = set.bound[rng.IntN(len(set.bound))]
					proof := dpopKey.Proof(t, "GET", "http://api.example.com/echo", tok, time.Now())
					req.Headers = map[string]string{"authorization": "DPoP " + tok, "dpop": proof}
					lastProof, lastBound, tok = proof, tok, ""
				case k < 8 && lastProof != "": // DPoP: a replayed proof
					req.Headers = map[string]string{"authorization": "DPoP " + lastBound, "dpop": lastProof}
					wantCode = 16
				case k < 9: // DPoP: a bound token as Bearer
					tok, wantCode = set.bound[rng.IntN(len(set.bound))], 16
				case k < 10:
					tok, wantCode = set.expired[rng.IntN(len(set.expired))], 16
				case k < 11:
					tok, wantCode = set.forged[rng.IntN(len(set.forged))], 16
				default:
					tok, wantCode = strconv.FormatUint(rng.Uint64(), 36)+".x.y", 16
				}
				req.Token = tok
				rctx, rcancel := context.WithTimeout(context.Background(), 2*time.Second)
				resp, err := client.Check(rctx, req.CheckRequest())
				rcancel()
				sent.Add(1)
				if err != nil {
					grpcErrors.Add(1)
					continue
				}
				if got := resp.GetStatus().GetCode(); got != wantCode {
					wrong.Add(1)
					wrongMu.Lock()
					if len(wrongSamples) < 5 {
						wrongSamples = append(wrongSamples, fmt.Sprintf("want %d got %d reason %s", wantCode, got,
							resp.GetDynamicMetadata().GetFields()["reason"].GetStringValue()))
					}
					wrongMu.Unlock()
				}
			}
		}()
	}

	// The disturbances, spread over the run.
	phase := dur / 6
	step := func() bool {
		select {
		case <-ctx.Done():
			return false
		case <-time.After(phase):
			return true
		}
	}
	rotations, failures, reloads := 0, 0, 0
	for step() {
		// Rotate as Auth0 does: publish the next key, switch to it once
		// jwt-authz has it.
		next := iss.AddKey("RS256")
		eventually(t, "next key fetched", func() bool { _, b := p.get(t, "/debug/keys"); return strings.Contains(b, next) })
		ns := mint(next)
		tokens.Store(&ns)
		rotations++
		if !step() {
			break
		}
		// The IdP fails in turn in each way; valid tokens keep working.
		iss.SetFailure([]jwkstest.Failure{jwkstest.Status500, jwkstest.Garbage, jwkstest.EmptySet, jwkstest.Timeout}[failures%4])
		failures++
		if !step() {
			iss.SetFailure(jwkstest.None)
			break
		}
		iss.SetFailure(jwkstest.None)
		writeGen() // reload by file change
		syscall.Kill(os.Getpid(), syscall.SIGHUP)
		reloads += 2
	}
	wg.Wait()
	iss.SetFailure(jwkstest.None)

	_, m1 := p.get(t, "/metrics")
	g1, rss1 := metricValue(m1, "go_goroutines"), metricValue(m1, "process_resident_memory_bytes")
	t.Logf("soak: %s, %d Checks (%.0f/s), %d gRPC errors, %d wrong decisions, %d rotations, %d JWKS failure windows, %d reloads; goroutines %v -> %v, RSS %.1f -> %.1f MiB",
		dur, sent.Load(), float64(sent.Load())/dur.Seconds(), grpcErrors.Load(), wrong.Load(), rotations, failures, reloads,
		g0, g1, rss0/(1<<20), rss1/(1<<20))
	if sent.Load() == 0 {
		t.Fatal("no Checks sent")
	}
	if grpcErrors.Load() != 0 {
		t.Errorf("%d gRPC errors", grpcErrors.Load())
	}
	if wrong.Load() != 0 {
		t.Errorf("%d wrong decisions, e.g. %v", wrong.Load(), wrongSamples)
	}
	if g1 > g0+25 {
		t.Errorf("goroutines grew from %v to %v", g0, g1)
	}
	if rss1 > rss0+96<<20 {
		t.Errorf("RSS grew from %.1f to %.1f MiB", rss0/(1<<20), rss1/(1<<20))
	}
	if reloads > 0 && !strings.Contains(m1, `jwt_authz_config_reloads_total{result="success"}`) {
		t.Error("no successful reload counted")
	}
}

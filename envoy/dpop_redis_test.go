package envoy_test

import (
	"context"
	"fmt"
	"net"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"github.com/jwtauthz/jwt-authz/internal/stacktest"
	"github.com/jwtauthz/jwt-authz/jwks/jwkstest"
	"github.com/jwtauthz/jwt-authz/replay"
)

// startRedisServer runs Debian's redis-server on a free loopback port
// until the test ends, or skips t when it is not installed.
func startRedisServer(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Skip("redis-server is not installed (Debian package redis-server); skipping the shared replay-store test")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	_, port, _ := net.SplitHostPort(addr)
	cmd := exec.Command(bin, "--port", port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", t.TempDir())
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	probe, err := replay.NewRedis(replay.RedisOptions{Address: addr, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer probe.Close()
	deadline := time.Now().Add(10 * time.Second)
	for probe.Ping(context.Background()) != nil {
		if time.Now().After(deadline) {
			t.Fatal("redis-server does not answer")
		}
		time.Sleep(10 * time.Millisecond) // polling for readiness, bounded by the deadline
	}
	return addr
}

// TestDPoPSharedReplayStore: two replicas sharing a Redis replay store
// accept a proof once in total; with Redis gone, proofs are refused
// (fail closed) and counted.
func TestDPoPSharedReplayStore(t *testing.T) {
	t.Parallel()
	addr := startRedisServer(t)
	iss := jwkstest.New(t, jwkstest.Options{})
	config := func(addr, timeout string) string {
		return fmt.Sprintf(`
providers:
- name: auth0
  issuer: %q
  audiences: ["urn:apigee:target:api"]
  jwks: {uri: %q}
  dpop: {replay_store: {redis: {address: %q, timeout: %q}}}
`, iss.IssuerURL(), iss.JWKSURL(), addr, timeout)
	}
	yaml := config(addr, "0.5s")
	one := stacktest.Start(t, yaml, stacktest.Options{})
	two := stacktest.Start(t, yaml, stacktest.Options{})
	w := &dpopWorld{}
	w.clock.Store(time.Now().UnixNano())
	key := jwkstest.NewDPoPKey(t, "ES256")
	tok := iss.Sign(t, with(iss, map[string]any{"cnf": map[string]any{"jkt": key.JKT}}))
	p := key.SignClaims(t, w.proofClaims("GET", apiURL+"/items", tok))

	assertDecision(t, one.Check(t, dpopReq("GET", "/items", tok, p)), want{allow: true, reason: "ok", http: 200})
	assertDecision(t, two.Check(t, dpopReq("GET", "/items", tok, p)), badProof("the DPoP proof was already used"))
	fresh := key.SignClaims(t, w.proofClaims("GET", apiURL+"/items", tok))
	assertDecision(t, two.Check(t, dpopReq("GET", "/items", tok, fresh)), want{allow: true, reason: "ok", http: 200})

	// Redis down: refused, with the DPoP challenge, and counted.
	three := stacktest.Start(t, config("127.0.0.1:"+strconv.Itoa(closedPort(t)), "0.2s"), stacktest.Options{})
	other := key.SignClaims(t, w.proofClaims("GET", apiURL+"/items", tok))
	assertDecision(t, three.Check(t, dpopReq("GET", "/items", tok, other)), badProof("the DPoP proof could not be checked for replay"))
	if n := gathered(t, three, "jwt_authz_dpop_replay_store_errors_total", map[string]string{"store": "redis", "error": "unavailable"}); n != 1 {
		t.Errorf("replay store errors %v, want 1", n)
	}
}

// closedPort is a loopback port nothing listens on.
func closedPort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	return port
}

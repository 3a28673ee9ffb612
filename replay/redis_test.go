package replay

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redis/go-redis/v9"
)

// redisServer is a real redis-server started by the test on a free loopback
// port, with no persistence, stopped at cleanup.
type redisServer struct {
	addr  string
	cmd   *exec.Cmd
	admin *redis.Client
	done  chan struct{}
}

// redisSetup is how a test's redis-server runs.
type redisSetup struct {
	password string // --requirepass
	tls      *testTLS
}

func startRedis(t *testing.T) *redisServer {
	t.Helper()
	return startRedisWith(t, redisSetup{})
}

func startRedisWith(t *testing.T, setup redisSetup) *redisServer {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Skip("redis-server is not installed (Debian package redis-server); skipping the Redis replay-store tests")
	}
	var lastErr error
	for range 5 { // a free port can be taken between probe and bind: retry
		s, err := tryStartRedis(t, bin, setup)
		if err == nil {
			return s
		}
		lastErr = err
	}
	if setup.tls != nil {
		t.Skipf("redis-server does not start with TLS (built without it?): %v", lastErr)
	}
	t.Fatalf("start redis-server: %v", lastErr)
	return nil
}

func tryStartRedis(t *testing.T, bin string, setup redisSetup) (*redisServer, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	port := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
	ln.Close()
	args := []string{"--port", port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
		"--dir", t.TempDir(), "--loglevel", "warning"}
	var adminTLS *tls.Config
	if setup.password != "" {
		args = append(args, "--requirepass", setup.password)
	}
	if setup.tls != nil {
		args = append(args, "--port", "0", "--tls-port", port, "--tls-auth-clients", "no",
			"--tls-cert-file", setup.tls.certFile, "--tls-key-file", setup.tls.keyFile, "--tls-ca-cert-file", setup.tls.certFile)
		adminTLS = setup.tls.client
	}
	var out strings.Builder
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	s := &redisServer{addr: "127.0.0.1:" + port, cmd: cmd, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(s.done) }()
	s.admin = redis.NewClient(&redis.Options{Addr: s.addr, Password: setup.password, TLSConfig: adminTLS, Protocol: 2, DisableIdentity: true})
	deadline := time.Now().Add(10 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		err := s.admin.Ping(ctx).Err()
		cancel()
		if err == nil {
			break
		}
		select {
		case <-s.done:
			s.admin.Close()
			return nil, errors.New("redis-server exited: " + out.String())
		default:
		}
		if time.Now().After(deadline) {
			s.stop()
			return nil, errors.New("redis-server not answering PING: " + err.Error())
		}
		time.Sleep(10 * time.Millisecond) // polling for readiness, bounded by the deadline
	}
	t.Cleanup(s.stop)
	return s, nil
}

func (s *redisServer) stop() {
	select {
	case <-s.done:
	default:
		_ = s.cmd.Process.Kill()
		<-s.done
	}
	s.admin.Close()
}

func newRedis(t *testing.T, opts RedisOptions) *Redis {
	t.Helper()
	s, err := NewRedis(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestRedisClaim(t *testing.T) {
	t.Parallel()
	srv := startRedis(t)
	reg := prometheus.NewRegistry()
	a := newRedis(t, RedisOptions{Address: srv.addr, Timeout: time.Second, Registerer: reg})
	b := newRedis(t, RedisOptions{Address: srv.addr, Timeout: time.Second, Registerer: reg}) // another replica
	exp := time.Now().Add(time.Minute)

	mustClaim(t, a, "jkt jti-1", exp, true)
	mustClaim(t, a, "jkt jti-1", exp, false)
	mustClaim(t, b, "jkt jti-1", exp, false) // replayed to another replica
	mustClaim(t, b, "jkt jti-2", exp, true)

	// The key is the prefix and a fixed-size hash, with the remaining window
	// as its TTL: what the attacker chose is neither stored nor sized.
	long := strings.Repeat("A", MaxKeyBytes)
	mustClaim(t, a, long, exp, true)
	keys, err := srv.admin.Keys(t.Context(), "*").Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 3 {
		t.Fatalf("keys %q, want 3", keys)
	}
	for _, k := range keys {
		if !strings.HasPrefix(k, DefaultKeyPrefix) || len(k) != len(DefaultKeyPrefix)+43 {
			t.Errorf("key %q: want %q and 43 base64url characters", k, DefaultKeyPrefix)
		}
		ttl, err := srv.admin.PTTL(t.Context(), k).Result()
		if err != nil || ttl <= 50*time.Second || ttl > time.Minute {
			t.Errorf("key %q: PTTL %v, %v; want about a minute", k, ttl, err)
		}
	}

	if n, err := testutil.GatherAndCount(reg, "jwt_authz_dpop_replay_store_duration_seconds"); err != nil || n != 2 {
		t.Fatalf("duration series = %d, %v; want 2 (new, seen)", n, err)
	}
	if n, err := testutil.GatherAndCount(reg, "jwt_authz_dpop_replay_store_errors_total"); err != nil || n != 0 {
		t.Fatalf("error series = %d, %v; want none", n, err)
	}
}

func TestRedisKeyIsNewAfterExpiry(t *testing.T) {
	t.Parallel()
	srv := startRedis(t)
	s := newRedis(t, RedisOptions{Address: srv.addr, Timeout: time.Second})
	exp := time.Now().Add(200 * time.Millisecond)
	mustClaim(t, s, "short", exp, true)
	mustClaim(t, s, "short", exp, false)
	deadline := time.Now().Add(5 * time.Second)
	for {
		ok, err := s.Claim(t.Context(), "short", time.Now().Add(time.Minute))
		if err != nil {
			t.Fatal(err)
		}
		if ok {
			break
		}
		// Before exp, "seen" is right; after it, Redis has the key expire.
		if time.Now().After(deadline) {
			t.Fatal("key still seen 5 s after its expiry")
		}
		time.Sleep(20 * time.Millisecond) // polling for Redis's expiry, bounded by the deadline
	}
	if time.Now().Before(exp) {
		t.Fatal("key claimed again before its expiry")
	}
}

func TestRedisConcurrentClaimsOneWinner(t *testing.T) {
	t.Parallel()
	srv := startRedis(t)
	// Two replicas' stores, many goroutines each, the same keys.
	stores := []Store{
		newRedis(t, RedisOptions{Address: srv.addr, Timeout: 2 * time.Second}),
		newRedis(t, RedisOptions{Address: srv.addr, Timeout: 2 * time.Second}),
	}
	claimConcurrently(t, stores, 16, 20)
}

func TestRedisDownFailsClosedWithinTimeout(t *testing.T) {
	t.Parallel()
	srv := startRedis(t)
	reg := prometheus.NewRegistry()
	const timeout = 100 * time.Millisecond
	s := newRedis(t, RedisOptions{Address: srv.addr, Timeout: timeout, Registerer: reg})
	mustClaim(t, s, "before", time.Now().Add(time.Minute), true) // a pooled connection exists
	srv.stop()

	for i := range 3 { // the pooled connection, then fresh dials
		start := time.Now()
		ok, err := s.Claim(t.Context(), "after-"+strconv.Itoa(i), time.Now().Add(time.Minute))
		elapsed := time.Since(start)
		if ok || !errors.Is(err, ErrUnavailable) {
			t.Fatalf("claim %d with Redis down: %v, %v; want false, ErrUnavailable", i, ok, err)
		}
		if elapsed > timeout+time.Second {
			t.Fatalf("claim %d took %v, want about the %v timeout at most", i, elapsed, timeout)
		}
	}
	wantErrorMetric(t, reg, `jwt_authz_dpop_replay_store_errors_total{error="unavailable",store="redis"} 3`)
	if err := s.Ping(t.Context()); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Ping with Redis down: %v, want ErrUnavailable", err)
	}
}

func TestRedisSlowFailsClosedAfterTimeout(t *testing.T) {
	t.Parallel()
	srv := startRedis(t)
	reg := prometheus.NewRegistry()
	const timeout = 50 * time.Millisecond
	s := newRedis(t, RedisOptions{Address: srv.addr, Timeout: timeout, Registerer: reg})
	mustClaim(t, s, "warm", time.Now().Add(time.Minute), true)

	// CLIENT PAUSE holds every write command (SET) of every other client
	// for 10 s: the server is up but does not answer in time.
	if err := srv.admin.Do(t.Context(), "CLIENT", "PAUSE", "10000", "WRITE").Err(); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	ok, err := s.Claim(t.Context(), "paused", time.Now().Add(time.Minute))
	elapsed := time.Since(start)
	if ok || !errors.Is(err, ErrUnavailable) {
		t.Fatalf("claim while paused: %v, %v; want false, ErrUnavailable", ok, err)
	}
	if elapsed < timeout || elapsed > timeout+2*time.Second { // the pause lasts 10 s
		t.Fatalf("claim while paused took %v, want the %v timeout", elapsed, timeout)
	}
	wantErrorMetric(t, reg, `jwt_authz_dpop_replay_store_errors_total{error="timeout",store="redis"} 1`)

	// Once the server answers again, so does the store.
	if err := srv.admin.Do(t.Context(), "CLIENT", "UNPAUSE").Err(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		ok, err := s.Claim(t.Context(), "after-pause", time.Now().Add(time.Minute))
		if err == nil {
			if !ok {
				t.Fatal("a new key answered seen after the pause")
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("store still failing 5 s after the pause ended: %v", err)
		}
		time.Sleep(20 * time.Millisecond) // polling for recovery, bounded by the deadline
	}
}

func TestRedisAuthentication(t *testing.T) {
	t.Parallel()
	srv := startRedisWith(t, redisSetup{password: "s3cret"})
	exp := time.Now().Add(time.Minute)
	bad := newRedis(t, RedisOptions{Address: srv.addr, Password: "wrong", Timeout: time.Second})
	if ok, err := bad.Claim(t.Context(), "k", exp); ok || !errors.Is(err, ErrUnavailable) {
		t.Fatalf("wrong password: %v, %v; want false, ErrUnavailable", ok, err)
	}
	good := newRedis(t, RedisOptions{Address: srv.addr, Password: "s3cret", DB: 3, KeyPrefix: "app:", Timeout: time.Second})
	mustClaim(t, good, "k", exp, true)
	mustClaim(t, good, "k", exp, false)
	db3 := redis.NewClient(&redis.Options{Addr: srv.addr, Password: "s3cret", DB: 3, Protocol: 2, DisableIdentity: true})
	defer db3.Close()
	if keys, err := db3.Keys(t.Context(), "app:*").Result(); err != nil || len(keys) != 1 {
		t.Fatalf("keys app:* in db 3: %q, %v; want one", keys, err)
	}
}

func TestRedisRefusesBadInput(t *testing.T) {
	t.Parallel()
	// No server is needed: these are refused before any I/O.
	s := newRedis(t, RedisOptions{Address: "127.0.0.1:1"})
	for _, tc := range []struct {
		name   string
		key    string
		expiry time.Time
		want   error
	}{
		{name: "empty key", key: "", expiry: time.Now().Add(time.Minute), want: ErrInvalidKey},
		{name: "key too long", key: strings.Repeat("k", MaxKeyBytes+1), expiry: time.Now().Add(time.Minute), want: ErrInvalidKey},
		{name: "expiry past", key: "k", expiry: time.Now().Add(-time.Second), want: ErrExpired},
	} {
		if ok, err := s.Claim(t.Context(), tc.key, tc.expiry); ok || !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, %v; want false, %v", tc.name, ok, err, tc.want)
		}
	}
	for _, tc := range []struct {
		name string
		opts RedisOptions
		want string
	}{
		{name: "no address", opts: RedisOptions{}, want: `replay: redis address "": want host:port`},
		{name: "no port", opts: RedisOptions{Address: "redis"}, want: `replay: redis address "redis": want host:port`},
		{name: "negative db", opts: RedisOptions{Address: "redis:6379", DB: -1}, want: "replay: redis db -1: must not be negative"},
		{name: "negative timeout", opts: RedisOptions{Address: "redis:6379", Timeout: -time.Second}, want: "replay: redis timeout -1s: must not be negative"},
		{name: "long prefix", opts: RedisOptions{Address: "redis:6379", KeyPrefix: strings.Repeat("p", 129)}, want: "replay: redis key prefix: 129 bytes, at most 128"},
	} {
		_, err := NewRedis(tc.opts)
		if err == nil || err.Error() != tc.want {
			t.Errorf("%s: NewRedis error %v, want %q", tc.name, err, tc.want)
		}
	}
}

// testTLS is a self-signed certificate for 127.0.0.1 in files, and a client
// config that trusts it.
type testTLS struct {
	certFile, keyFile string
	client            *tls.Config
}

func newTestTLS(t *testing.T) *testTLS {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "redis test"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	tt := &testTLS{certFile: filepath.Join(dir, "cert.pem"), keyFile: filepath.Join(dir, "key.pem")}
	if err := os.WriteFile(tt.certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(tt.keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(cert)
	tt.client = &tls.Config{RootCAs: roots, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12}
	return tt
}

func TestRedisTLS(t *testing.T) {
	t.Parallel()
	tt := newTestTLS(t)
	srv := startRedisWith(t, redisSetup{tls: tt})
	exp := time.Now().Add(time.Minute)

	// The server's certificate is verified for the host of Address.
	s := newRedis(t, RedisOptions{Address: srv.addr, TLS: true, TLSConfig: &tls.Config{RootCAs: tt.client.RootCAs}, Timeout: 2 * time.Second})
	mustClaim(t, s, "tls", exp, true)
	mustClaim(t, s, "tls", exp, false)

	for _, tc := range []struct {
		name string
		opts RedisOptions
	}{
		{name: "system roots do not know the certificate", opts: RedisOptions{Address: srv.addr, TLS: true, Timeout: 2 * time.Second}},
		{name: "another server name", opts: RedisOptions{Address: srv.addr, TLS: true, TLSConfig: &tls.Config{RootCAs: tt.client.RootCAs, ServerName: "redis.example"}, Timeout: 2 * time.Second}},
		{name: "plain TCP to a TLS port", opts: RedisOptions{Address: srv.addr, Timeout: 200 * time.Millisecond}},
	} {
		bad := newRedis(t, tc.opts)
		if ok, err := bad.Claim(t.Context(), "other", exp); ok || !errors.Is(err, ErrUnavailable) {
			t.Errorf("%s: %v, %v; want false, ErrUnavailable", tc.name, ok, err)
		}
	}
}

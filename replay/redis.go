package replay

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"
)

// Defaults of RedisOptions.
const (
	// DefaultRedisTimeout bounds one claim, connecting included. Envoy's
	// ext_authz filter gives the whole check 200 ms by default; the proof's
	// signature and the token's checks need the rest.
	DefaultRedisTimeout = 50 * time.Millisecond
	// DefaultKeyPrefix starts every key the store writes.
	DefaultKeyPrefix = "jwt-authz:dpop:"
	// maxKeyPrefixBytes bounds RedisOptions.KeyPrefix, so keys stay small.
	maxKeyPrefixBytes = 128
)

// RedisOptions configure NewRedis.
type RedisOptions struct {
	// Address is host:port of the Redis server. Required.
	Address string
	// Username and Password authenticate (Redis ACL, or requirepass with an
	// empty Username). Empty means no AUTH.
	Username string
	Password string
	// DB is the database number. Zero is Redis's default database.
	DB int
	// TLS connects with TLS, verifying the server's certificate against the
	// system roots for the host of Address, unless TLSConfig says otherwise.
	TLS bool
	// TLSConfig is used when TLS is set. Nil means a default config; an
	// empty ServerName means the host of Address.
	TLSConfig *tls.Config
	// KeyPrefix starts every key: DefaultKeyPrefix when empty. At most 128
	// bytes. Replicas that must see each other's proofs use the same prefix.
	KeyPrefix string
	// Timeout bounds one Claim, dialing included; after it Claim fails with
	// ErrUnavailable. Zero means DefaultRedisTimeout.
	Timeout time.Duration
	// PoolSize is the number of connections kept; zero means go-redis's
	// default (10 per CPU).
	PoolSize int
	// Now is the clock the remaining window is measured with. Nil means
	// time.Now.
	Now func() time.Time
	// Registerer receives jwt_authz_dpop_replay_store_errors_total
	// (store="redis", error="timeout"|"unavailable") and
	// jwt_authz_dpop_replay_store_duration_seconds. Nil means no metrics.
	Registerer prometheus.Registerer
}

// Redis is a Store shared by every replica that uses the same server and
// KeyPrefix: one SET key 1 PX ttl NX per claim.
type Redis struct {
	client  *redis.Client
	prefix  string
	timeout time.Duration
	now     func() time.Time
	metrics *metrics
}

var _ Store = (*Redis)(nil)

// NewRedis checks the options and builds the client. It does not connect:
// connections are made by the first claims, within their timeout.
func NewRedis(opts RedisOptions) (*Redis, error) {
	if _, _, err := net.SplitHostPort(opts.Address); err != nil || opts.Address == "" {
		return nil, fmt.Errorf("replay: redis address %q: want host:port", opts.Address)
	}
	if opts.DB < 0 {
		return nil, fmt.Errorf("replay: redis db %d: must not be negative", opts.DB)
	}
	if opts.Timeout < 0 {
		return nil, fmt.Errorf("replay: redis timeout %v: must not be negative", opts.Timeout)
	}
	if len(opts.KeyPrefix) > maxKeyPrefixBytes {
		return nil, fmt.Errorf("replay: redis key prefix: %d bytes, at most %d", len(opts.KeyPrefix), maxKeyPrefixBytes)
	}
	s := &Redis{prefix: opts.KeyPrefix, timeout: opts.Timeout, now: opts.Now}
	if s.prefix == "" {
		s.prefix = DefaultKeyPrefix
	}
	if s.timeout == 0 {
		s.timeout = DefaultRedisTimeout
	}
	if s.now == nil {
		s.now = time.Now
	}
	var err error
	if s.metrics, err = newMetrics(opts.Registerer); err != nil {
		return nil, fmt.Errorf("replay: metrics: %w", err)
	}
	var tlsConfig *tls.Config
	if opts.TLS {
		tlsConfig = opts.TLSConfig.Clone()
		if tlsConfig == nil {
			tlsConfig = &tls.Config{MinVersion: tls.VersionTLS12}
		}
		if tlsConfig.ServerName == "" {
			tlsConfig.ServerName, _, _ = net.SplitHostPort(opts.Address)
		}
	}
	s.client = redis.NewClient(&redis.Options{
		Addr:      opts.Address,
		Username:  opts.Username,
		Password:  opts.Password,
		DB:        opts.DB,
		TLSConfig: tlsConfig,
		Protocol:  2, // plain RESP2: SET NX needs nothing newer
		PoolSize:  opts.PoolSize,
		// Every wait is bounded by the claim's context (ContextTimeoutEnabled)
		// and by Timeout, so a slow or dead server costs at most Timeout.
		ContextTimeoutEnabled: true,
		DialTimeout:           s.timeout,
		ReadTimeout:           s.timeout,
		WriteTimeout:          s.timeout,
		PoolTimeout:           s.timeout,
		DialerRetries:         1,
		// No retry: a SET NX whose answer was lost may have been applied, and
		// its retry would answer "seen" for a new proof. One try, then fail
		// closed.
		MaxRetries:               -1,
		DisableIdentity:          true,
		MaintNotificationsConfig: &maintnotifications.Config{Mode: maintnotifications.ModeDisabled},
	})
	return s, nil
}

// Claim implements Store with SET key 1 PX ttl NX, where ttl is the time left
// until expiry on this replica's clock (so the Redis server's clock does not
// matter) and key is KeyPrefix plus the base64url SHA-256 of the caller's key.
// It waits at most Timeout; a timeout or failure is ErrUnavailable, counted in
// jwt_authz_dpop_replay_store_errors_total unless the caller's context was
// canceled.
func (s *Redis) Claim(parent context.Context, key string, expiry time.Time) (bool, error) {
	d, err := hashKey(key)
	if err != nil {
		return false, err
	}
	ttl := expiry.Sub(s.now())
	if ttl <= 0 {
		return false, ErrExpired
	}
	// Redis counts whole milliseconds; round up so the key never outlives
	// the window by less than the proof does.
	ttl = (ttl + time.Millisecond - 1).Truncate(time.Millisecond)

	ctx, cancel := context.WithTimeout(parent, s.timeout)
	defer cancel()
	start := time.Now()
	created, err := s.client.SetNX(ctx, s.redisKey(d), "1", ttl).Result()
	elapsed := time.Since(start).Seconds()
	if err != nil && errors.Is(parent.Err(), context.Canceled) {
		// The caller gave up (Envoy's own timeout): not the store's fault.
		return false, fmt.Errorf("%w: redis: %w", ErrUnavailable, err)
	}
	if err != nil {
		kind := errorUnavailable
		if isTimeout(err) {
			kind = errorTimeout
		}
		s.metrics.errors.WithLabelValues(storeRedis, kind).Inc()
		s.metrics.duration.WithLabelValues(resultError).Observe(elapsed)
		return false, fmt.Errorf("%w: redis %s: %w", ErrUnavailable, kind, err)
	}
	result := resultSeen
	if created {
		result = resultNew
	}
	s.metrics.duration.WithLabelValues(result).Observe(elapsed)
	return created, nil
}

func (s *Redis) redisKey(d digest) string {
	return s.prefix + base64.RawURLEncoding.EncodeToString(d[:])
}

func isTimeout(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// Ping asks the server for PONG within Timeout, for readiness checks.
func (s *Redis) Ping(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	if err := s.client.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("%w: redis ping: %w", ErrUnavailable, err)
	}
	return nil
}

// Close closes the connections.
func (s *Redis) Close() error {
	return s.client.Close()
}

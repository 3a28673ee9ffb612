package replay

import (
	"container/heap"
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// DefaultMaxEntries is MemoryOptions.MaxEntries when zero: room for about
// 600 proofs a second over the 330 s default window (iat_offset 300 s plus
// 30 s leeway), in about 25 MB.
const DefaultMaxEntries = 200_000

// MemoryOptions configure NewMemory.
type MemoryOptions struct {
	// MaxEntries bounds the live keys held. Zero or negative means
	// DefaultMaxEntries. Size it above the peak proof rate of one replica
	// times the acceptance window: when it is full of live keys, new proofs
	// are refused (ErrFull) until keys expire.
	MaxEntries int
	// Now is the clock. Nil means time.Now.
	Now func() time.Time
	// Registerer receives jwt_authz_dpop_replay_store_errors_total
	// (store="memory", error="full"). Nil means no metrics.
	Registerer prometheus.Registerer
}

// Memory is a Store local to one replica: a proof replayed to another replica
// inside its window is not seen here. See the package comment.
type Memory struct {
	max     int
	now     func() time.Time
	metrics *metrics

	mu      sync.Mutex
	entries map[digest]struct{} // live keys (and expired ones not yet evicted)
	byExp   expiryHeap          // the same keys, soonest expiry first
}

type entry struct {
	key    digest
	expiry time.Time
}

var _ Store = (*Memory)(nil)

// NewMemory returns an empty Memory store.
func NewMemory(opts MemoryOptions) (*Memory, error) {
	m := &Memory{max: opts.MaxEntries, now: opts.Now, entries: make(map[digest]struct{})}
	if m.max <= 0 {
		m.max = DefaultMaxEntries
	}
	if m.now == nil {
		m.now = time.Now
	}
	var err error
	if m.metrics, err = newMetrics(opts.Registerer); err != nil {
		return nil, fmt.Errorf("replay: metrics: %w", err)
	}
	return m, nil
}

// Claim implements Store. Expired keys are evicted first, so a key whose
// expiry has passed is new again. When the store holds MaxEntries live keys,
// Claim answers ErrFull: evicting the soonest-expiring live key instead would
// let an attacker who floods the store with fresh proofs replay a proof that
// is still inside its window, so the store fails closed for new keys and never
// forgets a live one.
func (m *Memory) Claim(ctx context.Context, key string, expiry time.Time) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, fmt.Errorf("replay: %w", err)
	}
	d, err := hashKey(key)
	if err != nil {
		return false, err
	}
	now := m.now()
	if !expiry.After(now) {
		return false, ErrExpired
	}

	m.mu.Lock()
	defer m.mu.Unlock()
	m.evictLocked(now)
	if _, seen := m.entries[d]; seen {
		return false, nil // live: evictLocked removed every expired entry
	}
	if len(m.entries) >= m.max {
		m.metrics.errors.WithLabelValues(storeMemory, errorFull).Inc()
		return false, ErrFull
	}
	m.entries[d] = struct{}{}
	heap.Push(&m.byExp, entry{key: d, expiry: expiry})
	return true, nil
}

// evictLocked removes every entry whose expiry is not after now. Each entry
// is pushed and popped once, so the work is constant per claim on average.
func (m *Memory) evictLocked(now time.Time) {
	for len(m.byExp) > 0 && !m.byExp[0].expiry.After(now) {
		e := heap.Pop(&m.byExp).(entry)
		delete(m.entries, e.key)
	}
}

// Len returns the number of keys held, expired ones not yet evicted included.
func (m *Memory) Len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.entries)
}

// expiryHeap is a container/heap of entries, soonest expiry first.
type expiryHeap []entry

func (h expiryHeap) Len() int           { return len(h) }
func (h expiryHeap) Less(i, j int) bool { return h[i].expiry.Before(h[j].expiry) }
func (h expiryHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *expiryHeap) Push(x any)        { *h = append(*h, x.(entry)) }

func (h *expiryHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	*h = old[:len(old)-1]
	return e
}

package authz

import (
	"encoding/binary"
	"slices"
	"sync"
	"time"
)

// TokenCache holds verified tokens, keyed by the SHA-256 of the token, until
// their exp. Only tokens that passed every check enter it, so a flood of bad
// tokens cannot evict good ones.
//
// Eviction is two-segment (after 2Q / S3-FIFO): a new entry goes to a small
// probation FIFO; an entry hit while there is promoted to the main segment
// when it reaches the end, others are dropped. The main segment is a CLOCK:
// an entry hit since it was last passed gets another round. So a few hot
// machine-to-machine tokens stay while a stream of one-off tokens churns
// through probation only.
//
// Memory: an entry is the verified token itself (its links are part of
// it), indexed by the first 8 bytes of its key; the full key is compared
// on every lookup, so two tokens that share a prefix only cost the second
// one its place in the cache. TestCachedTokenFootprint holds the total.
//
// Concurrency: lookups take a read lock and set an atomic flag; inserts
// and evictions take the write lock.
type TokenCache struct {
	mu      sync.RWMutex
	max     int
	probMax int
	entries map[uint64]*cacheEntry
	prob    ring
	main    ring
	metrics *CacheMetrics
}

// cacheEntry is a verified token in the cache: its links (cacheKey, hit,
// inMain, prev, next) are fields of verified.
type cacheEntry = verified

func shortKey(key [32]byte) uint64 { return binary.LittleEndian.Uint64(key[:8]) }

// ring is an intrusive doubly-linked FIFO.
type ring struct {
	head, tail *cacheEntry // head: oldest
	n          int
}

func (r *ring) push(e *cacheEntry) {
	e.prev, e.next = r.tail, nil
	if r.tail != nil {
		r.tail.next = e
	} else {
		r.head = e
	}
	r.tail = e
	r.n++
}

func (r *ring) remove(e *cacheEntry) {
	if e.prev != nil {
		e.prev.next = e.next
	} else {
		r.head = e.next
	}
	if e.next != nil {
		e.next.prev = e.prev
	} else {
		r.tail = e.prev
	}
	e.prev, e.next = nil, nil
	r.n--
}

// NewTokenCache returns a cache of at most max entries.
func NewTokenCache(max int, m *CacheMetrics) *TokenCache {
	prob := max / 10
	if prob < 1 {
		prob = 1
	}
	return &TokenCache{max: max, probMax: prob, entries: make(map[uint64]*cacheEntry), metrics: m}
}

func (c *TokenCache) get(key [32]byte, now time.Time) *verified {
	c.mu.RLock()
	e := c.entries[shortKey(key)]
	c.mu.RUnlock()
	if e == nil || e.cacheKey != key || now.UnixNano() >= e.exp {
		if c.metrics != nil {
			c.metrics.misses.Inc()
		}
		return nil
	}
	if !e.hit.Load() {
		e.hit.Store(true)
	}
	if c.metrics != nil {
		c.metrics.hits.Inc()
	}
	return e
}

func (c *TokenCache) put(key [32]byte, v *verified) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.entries[shortKey(key)]; ok {
		return // this token, or one sharing the prefix (that one stays uncached)
	}
	for len(c.entries) >= c.max {
		c.evict()
	}
	v.cacheKey = key
	c.entries[shortKey(key)] = v
	c.prob.push(v)
	c.setGauge()
}

// evict drops one entry. Called with mu held.
func (c *TokenCache) evict() {
	for {
		if c.prob.n > 0 && (c.prob.n >= c.probMax || c.main.n == 0) {
			e := c.prob.head
			c.prob.remove(e)
			if e.hit.Load() {
				e.hit.Store(false)
				e.inMain = true
				c.main.push(e)
				continue
			}
			delete(c.entries, shortKey(e.cacheKey))
			return
		}
		e := c.main.head
		c.main.remove(e)
		if e.hit.Load() {
			e.hit.Store(false)
			c.main.push(e)
			continue
		}
		delete(c.entries, shortKey(e.cacheKey))
		return
	}
}

func (c *TokenCache) unlink(e *cacheEntry) {
	if e.inMain {
		c.main.remove(e)
	} else {
		c.prob.remove(e)
	}
	delete(c.entries, shortKey(e.cacheKey))
}

// drop removes the entry of key, if any.
func (c *TokenCache) drop(key [32]byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.entries[shortKey(key)]; ok && e.cacheKey == key {
		c.unlink(e)
		c.setGauge()
	}
}

// DropKeys removes every token of provider signed by one of kids, to free
// the memory of tokens whose key left the provider's set. Correctness does
// not depend on it: every hit checks that the key that verified the token
// is still the one the current key set would use.
func (c *TokenCache) DropKeys(provider string, kids []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, e := range c.entries {
		if e.p.Name == provider && slices.Contains(kids, e.kid) {
			c.unlink(e)
		}
	}
	c.setGauge()
}

// Len returns the number of entries.
func (c *TokenCache) Len() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.entries)
}

func (c *TokenCache) setGauge() {
	if c.metrics != nil {
		c.metrics.entries.Set(float64(len(c.entries)))
	}
}

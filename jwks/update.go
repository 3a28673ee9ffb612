package jwks

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strings"
	"time"
)

// outcome is what one fetch brought back.
type outcome struct {
	// set is a new document's usable keys; nil on error or when nothing
	// changed.
	set *generation
	// doc is the raw document behind set, for the cache file.
	doc []byte
	// unchanged: a 304, or a file that did not change.
	unchanged bool
	// fresh is how long the answer may be used (Cache-Control), 0 if unsaid.
	fresh time.Duration
	err   error
	// validators of the answer, kept once its set is accepted.
	validators validators
	file       fileStamp
}

// vet refuses a set that drops every known kid at once (a broken or
// hijacked endpoint, not a rotation: IdPs publish the next key before they
// use it). The same replacement served for a whole RefreshInterval is
// believed at last, so an emergency rotation is not refused forever. A set
// from the cache file, and a file source, which an operator edits on
// purpose, are never vetted.
func (p *KeySet) vet(old, next *generation, now time.Time) error {
	if old == nil || old.fromCache || p.src.local() || !replacesAll(old, next) {
		p.suspect = suspect{}
		return nil
	}
	id := setID(next)
	if p.suspect.kids != id {
		p.suspect = suspect{kids: id, since: now}
	}
	if now.Sub(p.suspect.since) >= p.opts.RefreshInterval {
		p.suspect = suspect{}
		return nil
	}
	return fmt.Errorf("key set drops every known key (%s); kept the last good set", strings.Join(old.kids(), ", "))
}

// finish applies a fetch's outcome: new keys, schedule, status, metrics,
// logs, cache file and the removal callback.
func (p *KeySet) finish(o outcome) {
	now := p.clock.Now()
	name := p.opts.Name
	loud := false

	p.mu.Lock()
	old := p.keys.Load()
	if o.err == nil && o.set != nil {
		if err := p.vet(old, o.set, now); err != nil {
			o.err, loud = err, true
		}
	}
	if errors.Is(o.err, errNoUsableKeys) && old != nil {
		loud = true
	}
	if o.err != nil {
		o.err = fmt.Errorf("jwks: provider %q: %w", name, o.err)
		p.failures++
		p.lastErr = o.err.Error()
		retry := p.opts.MinRefreshInterval
		if old != nil && !p.src.local() {
			// Serving stale keys: spare the IdP. Without keys every
			// request fails, so retry as often as allowed, to be ready as
			// soon as the IdP returns; a local file costs nothing to retry.
			retry = p.backoff(p.failures)
		}
		p.nextRefresh = now.Add(retry)
		failures := p.failures
		p.mu.Unlock()

		p.opts.Metrics.fetched(name, resultError, 0)
		attrs := []any{"source", p.src.kind(), "location", p.shown, "error", o.err,
			"consecutive_failures", failures, "retry_in", retry, "serving_stale_keys", old != nil}
		if loud {
			p.log.Error("jwks key set refused", attrs...)
		} else {
			p.log.Warn("jwks fetch failed", attrs...)
		}
		return
	}

	p.failures, p.lastErr, p.fetchedAt = 0, "", now
	if p.src.local() {
		p.nextRefresh = now.Add(p.opts.MinRefreshInterval)
		if o.file != (fileStamp{}) {
			p.file = o.file
		}
	} else {
		p.nextRefresh = now.Add(p.clamp(o.fresh))
	}
	if o.set == nil {
		p.mu.Unlock()
		if !p.src.local() {
			p.opts.Metrics.fetched(name, resultNotModified, unixSeconds(now))
		}
		p.log.Debug("jwks key set not modified")
		return
	}
	if o.validators.uri != "" {
		p.validators = o.validators
	}
	p.keys.Store(o.set)
	p.doc = o.doc
	removed := keysRemoved(old, o.set)
	if old == nil {
		close(p.ready)
	}
	p.mu.Unlock()

	p.opts.Metrics.fetched(name, resultSuccess, unixSeconds(now))
	p.opts.Metrics.setKeys(name, len(o.set.keys))
	p.opts.Metrics.setReady(name, true)
	level := slog.LevelDebug // an IdP without validators sends the same set every time
	if old == nil || setID(old) != setID(o.set) {
		level = slog.LevelInfo
	}
	p.log.Log(context.Background(), level, "jwks key set updated", "source", p.src.kind(), "location", p.shown,
		"keys", len(o.set.keys), "kids", o.set.kids(), "removed_kids", removed)
	if p.opts.CacheFile != "" && o.doc != nil {
		if err := p.writeCache(o.doc, now); err != nil {
			p.log.Warn("jwks cache file not written", "cache_file", p.opts.CacheFile, "error", err)
		}
	}
	if len(removed) > 0 && p.opts.OnKeysRemoved != nil {
		p.opts.OnKeysRemoved(removed)
	}
}

// clamp bounds a freshness lifetime to [MinRefreshInterval,
// RefreshInterval]; 0 (unsaid) means RefreshInterval.
func (p *KeySet) clamp(d time.Duration) time.Duration {
	if d <= 0 {
		return p.opts.RefreshInterval
	}
	return min(max(d, p.opts.MinRefreshInterval), p.opts.RefreshInterval)
}

// backoff is the delay before retry n (n >= 1): MinRefreshInterval doubled
// per failure, less up to a quarter of jitter, within [MinRefreshInterval,
// RefreshInterval].
func (p *KeySet) backoff(n int) time.Duration {
	lo, hi := p.opts.MinRefreshInterval, p.opts.RefreshInterval
	d := hi
	if n-1 < 32 {
		d = min(lo<<(n-1), hi)
	}
	if d/4 > 0 {
		d -= rand.N(d / 4)
	}
	return min(max(d, lo), hi)
}

func unixSeconds(t time.Time) float64 { return float64(t.UnixNano()) / 1e9 }

func wrapErr(what string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%s: %w", what, err)
}

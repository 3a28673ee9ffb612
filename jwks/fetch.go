package jwks

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
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

// validators are the conditional-request state of a JWKS URL.
type validators struct {
	uri, etag, lastModified string
}

// fileStamp identifies a version of a key file.
type fileStamp struct {
	modTime time.Time
	size    int64
	hash    [sha256.Size]byte
}

// fetchRemote runs discovery when due, then a conditional GET of the JWKS.
func (p *KeySet) fetchRemote(ctx context.Context) outcome {
	uri, err := p.jwksLocation(ctx)
	if err != nil {
		return outcome{err: err}
	}
	shown := RedactURI(uri)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, uri, nil)
	if err != nil {
		return outcome{err: fmt.Errorf("fetch %s: %w", shown, redactErr(err))}
	}
	req.Header.Set("Accept", "application/jwk-set+json, application/json")
	p.mu.Lock()
	if v := p.validators; v.uri == uri && p.keys.Load() != nil && !p.keys.Load().fromCache {
		if v.etag != "" {
			req.Header.Set("If-None-Match", v.etag)
		}
		if v.lastModified != "" {
			req.Header.Set("If-Modified-Since", v.lastModified)
		}
	}
	p.mu.Unlock()

	resp, err := p.client.Do(req)
	if err != nil {
		return outcome{err: fmt.Errorf("fetch: %w", redactErr(err))}
	}
	defer func() {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxDocumentBytes))
		_ = resp.Body.Close()
	}()
	fresh := p.freshness(resp.Header)
	switch resp.StatusCode {
	case http.StatusOK:
	case http.StatusNotModified:
		if req.Header.Get("If-None-Match") == "" && req.Header.Get("If-Modified-Since") == "" {
			return outcome{err: fmt.Errorf("fetch %s: 304 to an unconditional request", shown)}
		}
		return outcome{unchanged: true, fresh: fresh}
	case http.StatusNotFound:
		if p.kind == SourceDiscovery {
			// The IdP may have moved its keys: ask discovery again.
			p.mu.Lock()
			p.rediscover = true
			p.mu.Unlock()
		}
		fallthrough
	default:
		return outcome{err: fmt.Errorf("fetch %s: unexpected status %d", shown, resp.StatusCode)}
	}
	body, err := readAll(resp.Body)
	if err != nil {
		return outcome{err: fmt.Errorf("fetch %s: %w", shown, err)}
	}
	set, err := parseKeySet(body, p.opts.Algorithms)
	if err != nil {
		return outcome{err: fmt.Errorf("fetch %s: %w", shown, err)}
	}
	return outcome{set: set, doc: body, fresh: fresh, validators: validators{
		uri:          uri,
		etag:         resp.Header.Get("ETag"),
		lastModified: resp.Header.Get("Last-Modified"),
	}}
}

// jwksLocation is the JWKS URL, running OpenID discovery first when it is
// due: never done, older than RefreshInterval, or asked for by a 404.
func (p *KeySet) jwksLocation(ctx context.Context) (string, error) {
	p.mu.Lock()
	uri := p.jwksURI
	due := p.kind == SourceDiscovery && (uri == "" || p.rediscover ||
		p.clock.Now().Sub(p.discoveredAt) >= p.opts.RefreshInterval)
	p.mu.Unlock()
	if !due {
		return uri, nil
	}
	uri, err := p.discover(ctx)
	if err != nil {
		return "", err
	}
	p.mu.Lock()
	p.jwksURI, p.discoveredAt, p.rediscover = uri, p.clock.Now(), false
	p.mu.Unlock()
	return uri, nil
}

// discover reads the issuer's OpenID configuration (OpenID Connect
// Discovery 1.0 §4): its issuer must be ours exactly (§4.3).
func (p *KeySet) discover(ctx context.Context) (string, error) {
	target := discoveryURL(p.opts.Issuer)
	where := RedactURI(target)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		return "", fmt.Errorf("discovery: %w", redactErr(err))
	}
	req.Header.Set("Accept", "application/json")
	resp, err := p.client.Do(req)
	if err != nil {
		return "", fmt.Errorf("discovery: %w", redactErr(err))
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("discovery %s: unexpected status %d", where, resp.StatusCode)
	}
	body, err := readAll(resp.Body)
	if err != nil {
		return "", fmt.Errorf("discovery %s: %w", where, err)
	}
	var doc struct {
		Issuer  string `json:"issuer"`
		JWKSURI string `json:"jwks_uri"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		return "", fmt.Errorf("discovery %s: %w", where, err)
	}
	if doc.Issuer != p.opts.Issuer {
		return "", fmt.Errorf("discovery %s: issuer mismatch: document says %q, configured issuer is %q", where, RedactURI(doc.Issuer), RedactURI(p.opts.Issuer))
	}
	if err := checkHTTPURL(doc.JWKSURI); err != nil {
		return "", fmt.Errorf("discovery %s: jwks_uri: %w", where, err)
	}
	// The document may point anywhere: the same transport rule as for a
	// configured uri.
	if err := checkTransport(doc.JWKSURI, p.opts.AllowInsecureHTTP); err != nil {
		return "", fmt.Errorf("discovery %s: jwks_uri: %w", where, err)
	}
	return doc.JWKSURI, nil
}

// readFile reads the key file when its size, mtime or content changed.
func (p *KeySet) readFile() outcome {
	fi, err := os.Stat(p.opts.File)
	if err != nil {
		return outcome{err: fmt.Errorf("read key file: %w", err)}
	}
	p.mu.Lock()
	last, have := p.file, p.keys.Load() != nil
	p.mu.Unlock()
	if have && fi.ModTime().Equal(last.modTime) && fi.Size() == last.size {
		return outcome{unchanged: true}
	}
	f, err := os.Open(p.opts.File)
	if err != nil {
		return outcome{err: fmt.Errorf("read key file: %w", err)}
	}
	defer f.Close()
	doc, err := readAll(f)
	if err != nil {
		return outcome{err: fmt.Errorf("read key file %s: %w", p.opts.File, err)}
	}
	stamp := fileStamp{modTime: fi.ModTime(), size: fi.Size(), hash: sha256.Sum256(doc)}
	if have && stamp.hash == last.hash {
		return outcome{unchanged: true, file: stamp}
	}
	set, err := parseKeySet(doc, p.opts.Algorithms)
	if err != nil {
		return outcome{err: fmt.Errorf("read key file %s: %w", p.opts.File, err)}
	}
	return outcome{set: set, doc: doc, file: stamp}
}

// vet refuses a set that drops every known kid at once (a broken or
// hijacked endpoint, not a rotation: IdPs publish the next key before they
// use it). The same replacement served for a whole RefreshInterval is
// believed at last, so an emergency rotation is not refused forever. A set
// from the cache file, and a file source, which an operator edits on
// purpose, are never vetted.
func (p *KeySet) vet(old, next *generation, now time.Time) error {
	if old == nil || old.fromCache || p.kind == SourceFile || !replacesAll(old, next) {
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
		if old != nil && p.kind != SourceFile {
			// Serving stale keys: spare the IdP. Without keys every
			// request fails, so retry as often as allowed, to be ready as
			// soon as the IdP returns; a local file costs nothing to retry.
			retry = p.backoff(p.failures)
		}
		p.nextRefresh = now.Add(retry)
		failures := p.failures
		p.mu.Unlock()

		p.opts.Metrics.fetched(name, resultError, 0)
		attrs := []any{"source", p.kind, "location", p.shown, "error", o.err,
			"consecutive_failures", failures, "retry_in", retry, "serving_stale_keys", old != nil}
		if loud {
			p.log.Error("jwks key set refused", attrs...)
		} else {
			p.log.Warn("jwks fetch failed", attrs...)
		}
		return
	}

	p.failures, p.lastErr, p.fetchedAt = 0, "", now
	if p.kind == SourceFile {
		p.nextRefresh = now.Add(p.opts.MinRefreshInterval)
		if o.file != (fileStamp{}) {
			p.file = o.file
		}
	} else {
		p.nextRefresh = now.Add(p.clamp(o.fresh))
	}
	if o.set == nil {
		p.mu.Unlock()
		if p.kind != SourceFile {
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
	p.log.Log(context.Background(), level, "jwks key set updated", "source", p.kind, "location", p.shown,
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

func unixSeconds(t time.Time) float64 { return float64(t.UnixNano()) / 1e9 }

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

// freshness reads how long a JWKS response stays fresh (RFC 9111 §4.2.1):
// max-age less Age, else Expires less Date. no-cache, no-store, or neither
// header mean 0, that is RefreshInterval.
func (p *KeySet) freshness(h http.Header) time.Duration {
	maxAge := -1
	for _, v := range h.Values("Cache-Control") {
		for _, d := range strings.Split(v, ",") {
			d = strings.ToLower(strings.TrimSpace(d))
			switch {
			case d == "no-cache" || d == "no-store":
				return 0
			case strings.HasPrefix(d, "max-age="):
				if n, err := strconv.Atoi(strings.Trim(d[len("max-age="):], `"`)); err == nil && n >= 0 {
					maxAge = n
				}
			}
		}
	}
	if maxAge >= 0 {
		age, _ := strconv.Atoi(h.Get("Age"))
		// A max-age of 0, or one used up, is clamped to the minimum.
		return max(time.Duration(maxAge-max(age, 0))*time.Second, time.Nanosecond)
	}
	exp, err1 := http.ParseTime(h.Get("Expires"))
	date, err2 := http.ParseTime(h.Get("Date"))
	if err1 != nil || err2 != nil {
		return 0
	}
	return max(exp.Sub(date), time.Nanosecond)
}

// cacheFormat names the cache file's format.
const cacheFormat = "jwt-authz-jwks-cache/v1"

type cacheDoc struct {
	Format    string          `json:"format"`
	Provider  string          `json:"provider"`
	Source    string          `json:"source"`
	FetchedAt time.Time       `json:"fetched_at"`
	JWKS      json.RawMessage `json:"jwks"`
}

func (p *KeySet) cacheSource() string { return p.kind + ":" + p.location }

// writeCache replaces the cache file atomically: a temporary file in the same
// directory, synced, then renamed over it.
func (p *KeySet) writeCache(doc []byte, at time.Time) error {
	b, err := json.Marshal(cacheDoc{
		Format: cacheFormat, Provider: p.opts.Name, Source: p.cacheSource(), FetchedAt: at.UTC(), JWKS: doc,
	})
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(p.opts.CacheFile), ".jwks-cache-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // fails harmlessly after the rename
	if _, err := io.Copy(tmp, bytes.NewReader(b)); err != nil {
		_ = tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		_ = tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), p.opts.CacheFile)
}

// loadCache installs the cache file's keys, when it has usable ones for this
// provider and source. Anything else is logged and ignored: the cache only
// ever helps.
func (p *KeySet) loadCache() {
	if p.opts.CacheFile == "" {
		return
	}
	set, doc, at, err := p.readCache()
	if errors.Is(err, os.ErrNotExist) {
		p.log.Info("jwks cache file absent", "cache_file", p.opts.CacheFile)
		return
	}
	if err != nil {
		p.log.Warn("jwks cache file ignored", "cache_file", p.opts.CacheFile, "error", err)
		return
	}
	set.fromCache = true
	p.mu.Lock()
	p.keys.Store(set)
	p.doc = doc
	p.fetchedAt = at
	close(p.ready)
	p.mu.Unlock()
	p.opts.Metrics.setKeys(p.opts.Name, len(set.keys))
	p.opts.Metrics.setReady(p.opts.Name, true)
	p.log.Info("jwks keys loaded from cache file", "cache_file", p.opts.CacheFile,
		"fetched_at", at, "keys", len(set.keys))
}

func (p *KeySet) readCache() (*generation, []byte, time.Time, error) {
	f, err := os.Open(p.opts.CacheFile)
	if err != nil {
		return nil, nil, time.Time{}, err
	}
	defer f.Close()
	b, err := readAll(f)
	if err != nil {
		return nil, nil, time.Time{}, err
	}
	var c cacheDoc
	if err := json.Unmarshal(b, &c); err != nil {
		return nil, nil, time.Time{}, fmt.Errorf("parse: %w", err)
	}
	switch {
	case c.Format != cacheFormat:
		return nil, nil, time.Time{}, fmt.Errorf("format %q, want %q", c.Format, cacheFormat)
	case c.Provider != p.opts.Name:
		return nil, nil, time.Time{}, fmt.Errorf("written for provider %q", c.Provider)
	case c.Source != p.cacheSource():
		return nil, nil, time.Time{}, fmt.Errorf("written for another source, now %s %q", p.kind, p.shown)
	}
	set, err := parseKeySet(c.JWKS, p.opts.Algorithms)
	if err != nil {
		return nil, nil, time.Time{}, err
	}
	return set, c.JWKS, c.FetchedAt, nil
}

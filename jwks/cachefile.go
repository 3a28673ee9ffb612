package jwks

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"
)

// cacheFormat names the cache file's format.
const cacheFormat = "jwt-authz-jwks-cache/v1"

type cacheDoc struct {
	Format    string          `json:"format"`
	Provider  string          `json:"provider"`
	Source    string          `json:"source"`
	FetchedAt time.Time       `json:"fetched_at"`
	JWKS      json.RawMessage `json:"jwks"`
}

func (p *KeySet) cacheSource() string { return p.src.kind() + ":" + p.src.location() }

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
	if p.opts.CacheFile == "" || p.Ready() {
		return // no cache, or inherited keys of the same source
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
		return nil, nil, time.Time{}, fmt.Errorf("written for another source, now %s %q", p.src.kind(), p.shown)
	}
	set, err := parseKeySet(c.JWKS, p.opts.Algorithms)
	if err != nil {
		return nil, nil, time.Time{}, err
	}
	return set, c.JWKS, c.FetchedAt, nil
}

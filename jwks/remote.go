package jwks

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// maxDocumentBytes bounds a JWKS or discovery document: a hostile or broken
// endpoint must not exhaust memory.
const maxDocumentBytes = 1 << 20

// validators are the conditional-request state of a JWKS URL.
type validators struct {
	uri, etag, lastModified string
}

// getJWKS sends a conditional GET for the JWKS at uri. notFound reports a
// 404, after which a discovery source looks its JWKS URL up again.
func (p *KeySet) getJWKS(ctx context.Context, uri string) (o outcome, notFound bool) {
	shown := RedactURI(uri)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, uri, nil)
	if err != nil {
		return outcome{err: fmt.Errorf("fetch %s: %w", shown, redactErr(err))}, false
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
		return outcome{err: fmt.Errorf("fetch: %w", redactErr(err))}, false
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
			return outcome{err: fmt.Errorf("fetch %s: 304 to an unconditional request", shown)}, false
		}
		return outcome{unchanged: true, fresh: fresh}, false
	default:
		return outcome{err: fmt.Errorf("fetch %s: unexpected status %d", shown, resp.StatusCode)}, resp.StatusCode == http.StatusNotFound
	}
	body, err := readAll(resp.Body)
	if err != nil {
		return outcome{err: fmt.Errorf("fetch %s: %w", shown, err)}, false
	}
	set, err := parseKeySet(body, p.opts.Algorithms)
	if err != nil {
		return outcome{err: fmt.Errorf("fetch %s: %w", shown, err)}, false
	}
	return outcome{set: set, doc: body, fresh: fresh, validators: validators{
		uri:          uri,
		etag:         resp.Header.Get("ETag"),
		lastModified: resp.Header.Get("Last-Modified"),
	}}, false
}

// jwksLocation is the JWKS URL, running OpenID discovery first when it is
// due: never done, older than RefreshInterval, or asked for by a 404.
func (p *KeySet) jwksLocation(ctx context.Context) (string, error) {
	p.mu.Lock()
	uri := p.jwksURI
	due := uri == "" || p.rediscover ||
		p.clock.Now().Sub(p.discoveredAt) >= p.opts.RefreshInterval
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
	if _, err := httpURL(doc.JWKSURI); err != nil {
		return "", fmt.Errorf("discovery %s: jwks_uri: %w", where, err)
	}
	// The document may point anywhere: the same transport rule as for a
	// configured uri.
	if err := checkTransport(doc.JWKSURI, p.opts.AllowInsecureHTTP); err != nil {
		return "", fmt.Errorf("discovery %s: jwks_uri: %w", where, err)
	}
	return doc.JWKSURI, nil
}

// discoveryURL is where the issuer's OpenID configuration lives.
func discoveryURL(issuer string) string {
	if !strings.HasSuffix(issuer, "/") {
		issuer += "/"
	}
	return issuer + ".well-known/openid-configuration"
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

// readAll reads at most maxDocumentBytes.
func readAll(r io.Reader) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, maxDocumentBytes+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxDocumentBytes {
		return nil, fmt.Errorf("document exceeds %d bytes", maxDocumentBytes)
	}
	return b, nil
}

func defaultClient(allowInsecure bool) *http.Client {
	return &http.Client{
		Transport: &http.Transport{
			Proxy:                 http.ProxyFromEnvironment,
			DialContext:           (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			TLSClientConfig:       &tls.Config{MinVersion: tls.VersionTLS12},
			TLSHandshakeTimeout:   5 * time.Second,
			ResponseHeaderTimeout: 10 * time.Second,
			MaxIdleConnsPerHost:   1,
			IdleConnTimeout:       90 * time.Second,
			ForceAttemptHTTP2:     true,
		},
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) >= 3 {
				return errors.New("stopped after 3 redirects")
			}
			if via[0].URL.Scheme == "https" && req.URL.Scheme != "https" {
				return errors.New("refusing a redirect from https to http")
			}
			if err := checkTransport(req.URL.String(), allowInsecure); err != nil {
				return fmt.Errorf("refusing a redirect: %w", err)
			}
			return nil
		},
	}
}

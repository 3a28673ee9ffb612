package authz

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/pem"
	"net/url"
	"strings"
)

// Sender-constrained tokens, mTLS part (RFC 8705 §3): the SHA-256
// thumbprint of the client certificate of the request must be the token's
// cnf["x5t#S256"].

// CertSource says where the client certificate of a request is read.
type CertSource int

// Certificate sources (the config's mtls.certificate_source).
const (
	// CertFromEnvoy reads Request.Certificate (Envoy's
	// attributes.source.certificate, include_peer_certificate: true). The
	// x-forwarded-client-cert header is ignored. The zero value.
	CertFromEnvoy CertSource = iota
	// CertFromXFCC reads the last element of x-forwarded-client-cert (the
	// proxy nearest jwt-authz, e.g. an Istio gateway, appends it).
	CertFromXFCC
)

// MTLSOptions configure a provider's certificate-bound token checks.
type MTLSOptions struct {
	// Mode; the zero value is SenderDisabled.
	Mode SenderMode
	// Source of the client certificate; the zero value is CertFromEnvoy.
	Source CertSource
}

// certThumbprint returns base64url(SHA-256(DER)) of the request's client
// certificate, read from where src says; "" when there is none (or it
// cannot be read: an unreadable certificate proves nothing).
func certThumbprint(r *Request, src CertSource) string {
	if src == CertFromEnvoy {
		return pemThumbprint(r.Certificate)
	}
	xfcc, ok := r.Headers["x-forwarded-client-cert"]
	if !ok {
		return ""
	}
	elems := splitQuoted(xfcc, ',')
	last := elems[len(elems)-1]
	var hash, cert string
	for _, kv := range splitQuoted(last, ';') {
		k, v, _ := strings.Cut(strings.TrimSpace(kv), "=")
		v = strings.Trim(v, `"`)
		switch {
		case strings.EqualFold(k, "Hash"):
			hash = v
		case strings.EqualFold(k, "Cert"):
			cert = v
		}
	}
	if cert != "" {
		t := pemThumbprint(cert)
		if hash != "" && t != "" && !strings.EqualFold(hexOf(t), hash) {
			return "" // the two say different things: believe neither
		}
		return t
	}
	b, err := hex.DecodeString(hash)
	if err != nil || len(b) != sha256.Size {
		return ""
	}
	return b64.EncodeToString(b)
}

func hexOf(thumb string) string {
	b, _ := b64.DecodeString(thumb)
	return hex.EncodeToString(b)
}

// pemThumbprint decodes a URL-encoded PEM certificate (Envoy's form) and
// returns its DER's SHA-256, base64url; "" when it is not one certificate.
func pemThumbprint(enc string) string {
	if enc == "" {
		return ""
	}
	s, err := url.PathUnescape(enc)
	if err != nil {
		return ""
	}
	block, rest := pem.Decode([]byte(s))
	if block == nil || block.Type != "CERTIFICATE" || len(block.Headers) > 0 {
		return ""
	}
	// Envoy's attribute holds the leaf only; a chain after it (XFCC's
	// Chain is separate) is not ours to pick from.
	if next, _ := pem.Decode(rest); next != nil {
		return ""
	}
	sum := sha256.Sum256(block.Bytes)
	return b64.EncodeToString(sum[:])
}

// splitQuoted splits s at sep outside double quotes (XFCC values such as
// Subject="CN=a,O=b" may hold the separators). It always returns at least
// one element.
func splitQuoted(s string, sep byte) []string {
	var out []string
	quoted, start := false, 0
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '\\':
			if quoted {
				i++
			}
		case '"':
			quoted = !quoted
		case sep:
			if !quoted {
				out = append(out, s[start:i])
				start = i + 1
			}
		}
	}
	return append(out, s[start:])
}

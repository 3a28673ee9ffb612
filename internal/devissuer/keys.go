package devissuer

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1" //nolint:gosec // x5t is defined as a SHA-1 thumbprint (RFC 7517 §4.8); Auth0 publishes it.
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"time"

	"github.com/lestrrat-go/jwx/v2/cert"
	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
)

// signingKey is one RSA key with its kid and self-signed certificate. It is
// immutable once built.
type signingKey struct {
	kid     string
	private jwk.Key // private JWK with kid and alg, used to sign
	public  jwk.Key // public JWK as published: kty kid use alg n e x5c x5t
	raw     *rsa.PrivateKey
	certDER []byte
}

// keyRole names a key's place in the ring, in the key file.
type keyRole string

const (
	roleCurrent keyRole = "current"
	roleNext    keyRole = "next"
	roleRetired keyRole = "retired"
)

// keyRing is the signing key, the next key and the retired keys still
// published. It is not safe for concurrent use; Issuer guards it.
type keyRing struct {
	current *signingKey
	next    *signingKey
	retired []*signingKey
}

// published lists the keys of the JWKS in order: current, next, retired.
func (r *keyRing) published() []*signingKey {
	keys := make([]*signingKey, 0, 2+len(r.retired))
	keys = append(keys, r.current, r.next)
	return append(keys, r.retired...)
}

func newSigningKey(raw *rsa.PrivateKey, certDER []byte, subject string) (*signingKey, error) {
	if certDER == nil {
		var err error
		if certDER, err = selfSignedCert(raw, subject); err != nil {
			return nil, err
		}
	}
	priv, err := jwk.FromRaw(raw)
	if err != nil {
		return nil, fmt.Errorf("devissuer: key from raw: %w", err)
	}
	// kid is the RFC 7638 thumbprint: stable for a key across restarts.
	if err := jwk.AssignKeyID(priv); err != nil {
		return nil, fmt.Errorf("devissuer: assign kid: %w", err)
	}
	if err := priv.Set(jwk.AlgorithmKey, jwa.RS256); err != nil {
		return nil, fmt.Errorf("devissuer: set alg: %w", err)
	}
	pub, err := priv.PublicKey()
	if err != nil {
		return nil, fmt.Errorf("devissuer: public key: %w", err)
	}
	var chain cert.Chain
	if err := chain.AddString(base64.StdEncoding.EncodeToString(certDER)); err != nil {
		return nil, fmt.Errorf("devissuer: x5c: %w", err)
	}
	thumb := sha1.Sum(certDER) //nolint:gosec // see import
	for k, v := range map[string]any{
		jwk.KeyUsageKey:           jwk.ForSignature,
		jwk.X509CertChainKey:      &chain,
		jwk.X509CertThumbprintKey: base64.RawURLEncoding.EncodeToString(thumb[:]),
		jwk.AlgorithmKey:          jwa.RS256,
	} {
		if err := pub.Set(k, v); err != nil {
			return nil, fmt.Errorf("devissuer: set %s: %w", k, err)
		}
	}
	return &signingKey{kid: priv.KeyID(), private: priv, public: pub, raw: raw, certDER: certDER}, nil
}

// selfSignedCert makes the certificate published in x5c. Verifiers here use
// n and e; the certificate only mirrors what Auth0 publishes.
func selfSignedCert(raw *rsa.PrivateKey, subject string) ([]byte, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return nil, fmt.Errorf("devissuer: certificate serial: %w", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: subject},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.AddDate(10, 0, 0),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &raw.PublicKey, raw)
	if err != nil {
		return nil, fmt.Errorf("devissuer: self-signed certificate: %w", err)
	}
	return der, nil
}

// keyFile is the JSON document of -key-file.
type keyFile struct {
	Keys []keyFileEntry `json:"keys"`
}

type keyFileEntry struct {
	Role keyRole `json:"role"`
	Kid  string  `json:"kid"`
	// PrivateKey is a PKCS #8 PEM block.
	PrivateKey string `json:"private_key"`
	// Certificate is the PEM certificate published in x5c, kept so that x5t
	// stays stable across restarts.
	Certificate string `json:"certificate"`
}

// loadKeyFile reads a key ring; ok is false when the file does not exist.
func loadKeyFile(path, subject string) (ring *keyRing, ok bool, err error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("devissuer: read key file: %w", err)
	}
	var f keyFile
	if err := json.Unmarshal(data, &f); err != nil {
		return nil, false, fmt.Errorf("devissuer: key file %q: %w", path, err)
	}
	ring = &keyRing{}
	for i, e := range f.Keys {
		k, err := decodeKeyEntry(e, subject)
		if err != nil {
			return nil, false, fmt.Errorf("devissuer: key file %q: keys[%d]: %w", path, i, err)
		}
		switch e.Role {
		case roleCurrent:
			if ring.current != nil {
				return nil, false, fmt.Errorf("devissuer: key file %q: more than one current key", path)
			}
			ring.current = k
		case roleNext:
			if ring.next != nil {
				return nil, false, fmt.Errorf("devissuer: key file %q: more than one next key", path)
			}
			ring.next = k
		case roleRetired:
			ring.retired = append(ring.retired, k)
		default:
			return nil, false, fmt.Errorf("devissuer: key file %q: keys[%d].role: unknown role %q", path, i, e.Role)
		}
	}
	if ring.current == nil || ring.next == nil {
		return nil, false, fmt.Errorf("devissuer: key file %q: needs one current and one next key", path)
	}
	return ring, true, nil
}

func decodeKeyEntry(e keyFileEntry, subject string) (*signingKey, error) {
	block, _ := pem.Decode([]byte(e.PrivateKey))
	if block == nil {
		return nil, errors.New("private_key: no PEM block")
	}
	parsed, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("private_key: %w", err)
	}
	raw, ok := parsed.(*rsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("private_key: %T is not an RSA key", parsed)
	}
	var certDER []byte
	if cb, _ := pem.Decode([]byte(e.Certificate)); cb != nil {
		certDER = cb.Bytes
	}
	k, err := newSigningKey(raw, certDER, subject)
	if err != nil {
		return nil, err
	}
	if e.Kid != "" && e.Kid != k.kid {
		return nil, fmt.Errorf("kid %q does not match the key's thumbprint %q", e.Kid, k.kid)
	}
	return k, nil
}

// saveKeyFile writes the ring atomically (temporary file, then rename), mode
// 0600 since it holds private keys.
func saveKeyFile(path string, ring *keyRing) error {
	var f keyFile
	add := func(role keyRole, k *signingKey) error {
		der, err := x509.MarshalPKCS8PrivateKey(k.raw)
		if err != nil {
			return fmt.Errorf("devissuer: marshal key %s: %w", k.kid, err)
		}
		f.Keys = append(f.Keys, keyFileEntry{
			Role:        role,
			Kid:         k.kid,
			PrivateKey:  string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})),
			Certificate: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: k.certDER})),
		})
		return nil
	}
	if err := add(roleCurrent, ring.current); err != nil {
		return err
	}
	if err := add(roleNext, ring.next); err != nil {
		return err
	}
	for _, k := range ring.retired {
		if err := add(roleRetired, k); err != nil {
			return err
		}
	}
	data, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return fmt.Errorf("devissuer: encode key file: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".dev-issuer-keys-*")
	if err != nil {
		return fmt.Errorf("devissuer: write key file: %w", err)
	}
	defer os.Remove(tmp.Name()) // no-op after a successful rename
	if _, err := tmp.Write(append(data, '\n')); err != nil {
		tmp.Close()
		return fmt.Errorf("devissuer: write key file: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("devissuer: write key file: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("devissuer: write key file: %w", err)
	}
	return nil
}

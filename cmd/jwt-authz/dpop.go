package main

// The client side of sender-constrained tokens, for the CLI: a DPoP key read
// from a PEM file, proofs signed with it (RFC 9449 §4.2) for `check` and
// `dpop-proof`, a key made by `keygen`, and a client certificate in the form
// Envoy sends it to ext_authz.

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwk"
)

// dpopKey is a client's DPoP private key and the JWS alg it signs with.
type dpopKey struct {
	alg    string
	signer crypto.Signer
}

// loadDPoPKey reads a PEM private key: EC P-256 (ES256), RSA of 2048 bits or
// more (PS256, or RS256 when alg says so) or Ed25519 (EdDSA), in PKCS#8
// ("PRIVATE KEY"), SEC1 ("EC PRIVATE KEY") or PKCS#1 ("RSA PRIVATE KEY").
// alg "" picks the key's default.
func loadDPoPKey(file, alg string) (dpopKey, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return dpopKey{}, err
	}
	return parseDPoPKey(b, alg)
}

func parseDPoPKey(pemBytes []byte, alg string) (dpopKey, error) {
	var key any
	for rest := pemBytes; key == nil; {
		var block *pem.Block
		if block, rest = pem.Decode(rest); block == nil {
			return dpopKey{}, errors.New("no PEM private key (PRIVATE KEY, EC PRIVATE KEY or RSA PRIVATE KEY)")
		}
		var err error
		switch block.Type {
		case "PRIVATE KEY":
			key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
		case "EC PRIVATE KEY":
			key, err = x509.ParseECPrivateKey(block.Bytes)
		case "RSA PRIVATE KEY":
			key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
		case "ENCRYPTED PRIVATE KEY":
			return dpopKey{}, errors.New("the key is encrypted: decrypt it first (openssl pkey -in KEY -out PLAIN)")
		default:
			continue // EC PARAMETERS before the key, a certificate beside it
		}
		if err != nil {
			return dpopKey{}, fmt.Errorf("%s: %w", block.Type, err)
		}
	}
	switch k := key.(type) {
	case *ecdsa.PrivateKey:
		if k.Curve != elliptic.P256() {
			return dpopKey{}, fmt.Errorf("EC key on %s: DPoP here takes P-256 (ES256)", k.Curve.Params().Name)
		}
		return withAlg(k, alg, "ES256")
	case *rsa.PrivateKey:
		if k.N.BitLen() < 2048 {
			return dpopKey{}, fmt.Errorf("RSA key of %d bits: want 2048 or more", k.N.BitLen())
		}
		return withAlg(k, alg, "PS256", "RS256")
	case ed25519.PrivateKey:
		return withAlg(k, alg, "EdDSA", "Ed25519")
	}
	return dpopKey{}, fmt.Errorf("unsupported key type %T: want EC P-256, RSA or Ed25519", key)
}

// withAlg pairs the key with alg, which must be one of algs; "" is algs[0].
func withAlg(s crypto.Signer, alg string, algs ...string) (dpopKey, error) {
	if alg == "" {
		return dpopKey{alg: algs[0], signer: s}, nil
	}
	for _, a := range algs {
		if a == alg {
			return dpopKey{alg: alg, signer: s}, nil
		}
	}
	return dpopKey{}, fmt.Errorf("alg %s does not suit this key (want one of %s)", alg, strings.Join(algs, ", "))
}

func b64url(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// publicJWK is the RFC 7517 public JWK of the key: no private member.
func (k dpopKey) publicJWK() map[string]string {
	switch pub := k.signer.Public().(type) {
	case *ecdsa.PublicKey:
		// Bytes is the uncompressed point: 0x04, then X and Y of 32 bytes
		// each on P-256 (the only curve parseDPoPKey accepts).
		b, err := pub.Bytes()
		if err != nil || len(b) != 65 {
			return nil
		}
		return map[string]string{"kty": "EC", "crv": "P-256", "x": b64url(b[1:33]), "y": b64url(b[33:])}
	case *rsa.PublicKey:
		return map[string]string{"kty": "RSA", "n": b64url(pub.N.Bytes()), "e": b64url(big.NewInt(int64(pub.E)).Bytes())}
	case ed25519.PublicKey:
		return map[string]string{"kty": "OKP", "crv": "Ed25519", "x": b64url(pub)}
	}
	return nil
}

// thumbprint is the RFC 7638 SHA-256 thumbprint of the public key, base64url:
// what a DPoP-bound token carries in cnf.jkt.
func (k dpopKey) thumbprint() (string, error) {
	pub, err := jwk.FromRaw(k.signer.Public())
	if err != nil {
		return "", err
	}
	sum, err := pub.Thumbprint(crypto.SHA256)
	if err != nil {
		return "", err
	}
	return b64url(sum), nil
}

// proofRequest is what one proof is for.
type proofRequest struct {
	method string    // htm
	url    string    // htu, before the query and fragment are cut off
	token  string    // the access token, for ath; "" for a token request
	nonce  string    // a server-provided nonce, "" for none
	now    time.Time // iat
}

// htu is the URL without its query and fragment (RFC 9449 §4.2).
func htu(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", err
	}
	if u.Scheme == "" || u.Host == "" {
		return "", fmt.Errorf("%q is not an absolute URL (scheme://host/path)", raw)
	}
	// Cut the text itself rather than print the parsed URL again: the path
	// stays exactly as the request sends it.
	if i := strings.IndexAny(raw, "?#"); i >= 0 {
		raw = raw[:i]
	}
	return raw, nil
}

// sign makes a fresh DPoP proof: a compact JWS with typ dpop+jwt, the key's
// alg and public jwk in the header; jti (128 random bits), htm, htu, iat and,
// with a token, ath = base64url(SHA-256(token)) in the claims.
func (k dpopKey) sign(r proofRequest) (string, error) {
	u, err := htu(r.url)
	if err != nil {
		return "", fmt.Errorf("htu: %w", err)
	}
	jti := make([]byte, 16)
	rand.Read(jti)
	claims := map[string]any{"jti": b64url(jti), "htm": r.method, "htu": u, "iat": r.now.Unix()}
	if r.token != "" {
		sum := sha256.Sum256([]byte(r.token))
		claims["ath"] = b64url(sum[:])
	}
	if r.nonce != "" {
		claims["nonce"] = r.nonce
	}
	h, err := json.Marshal(map[string]any{"typ": "dpop+jwt", "alg": k.alg, "jwk": k.publicJWK()})
	if err != nil {
		return "", err
	}
	c, err := json.Marshal(claims)
	if err != nil {
		return "", err
	}
	input := b64url(h) + "." + b64url(c)
	sig, err := k.signature([]byte(input))
	if err != nil {
		return "", fmt.Errorf("sign: %w", err)
	}
	return input + "." + b64url(sig), nil
}

// signature is the JWS signature of input for the key's alg (RFC 7518 §3,
// RFC 8037): ES256 as the fixed 64-byte R || S, not ASN.1.
func (k dpopKey) signature(input []byte) ([]byte, error) {
	sum := sha256.Sum256(input)
	switch s := k.signer.(type) {
	case *ecdsa.PrivateKey:
		r, ss, err := ecdsa.Sign(rand.Reader, s, sum[:])
		if err != nil {
			return nil, err
		}
		out := make([]byte, 64)
		r.FillBytes(out[:32])
		ss.FillBytes(out[32:])
		return out, nil
	case *rsa.PrivateKey:
		if k.alg == "RS256" {
			return rsa.SignPKCS1v15(rand.Reader, s, crypto.SHA256, sum[:])
		}
		return rsa.SignPSS(rand.Reader, s, crypto.SHA256, sum[:], &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash})
	case ed25519.PrivateKey:
		return ed25519.Sign(s, input), nil
	}
	return nil, fmt.Errorf("unsupported key %T", k.signer)
}

// envoyCertificate reads a PEM certificate file and returns its first
// certificate the way Envoy puts it in attributes.source.certificate with
// include_peer_certificate: the PEM, URL-encoded.
func envoyCertificate(file string) (string, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return "", err
	}
	for rest := b; ; {
		var block *pem.Block
		if block, rest = pem.Decode(rest); block == nil {
			return "", errors.New("no PEM CERTIFICATE")
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		if _, err := x509.ParseCertificate(block.Bytes); err != nil {
			return "", err
		}
		return envoyURLEncode(string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: block.Bytes}))), nil
	}
}

// envoyURLEncode percent-encodes PEM text as Envoy does for the peer
// certificate: new lines, spaces and the base64 characters + / =. The result
// decodes with either url.QueryUnescape or url.PathUnescape.
var envoyURLEncode = strings.NewReplacer("\n", "%0A", " ", "%20", "+", "%2B", "/", "%2F", "=", "%3D").Replace

// dpopProof is `jwt-authz dpop-proof`: it prints a fresh proof for one
// request, for a token request to an authorization server or for any HTTP
// client (curl) calling an API.
func dpopProof(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := newFlags("dpop-proof", stdout, stderr)
	keyFile := fs.String("key", "", "DPoP private key `FILE` (PEM: EC P-256, RSA ≥ 2048 or Ed25519; PKCS#8, SEC1 or PKCS#1)")
	alg := fs.String("alg", "", "signature `alg` (default from the key: ES256, PS256 or EdDSA; RS256 for an RSA key, Ed25519 for an Ed25519 key)")
	method := fs.String("method", "POST", "HTTP method of the request (htm)")
	rawURL := fs.String("url", "", "URL of the request (htu; the query and fragment are left out)")
	token := fs.String("token", "", "access `token` the proof goes with (sets ath); - reads it from stdin; none for a token request")
	tokenFile := fs.String("token-file", "", "read the access token from `FILE`")
	nonce := fs.String("nonce", "", "server-provided `nonce` (a DPoP-Nonce header's value)")
	thumb := fs.Bool("thumbprint", false, "print the key's RFC 7638 thumbprint (a bound token's cnf.jkt) instead of a proof")
	if code, ok := fs.parse(args); !ok {
		return code
	}
	fail := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "jwt-authz dpop-proof: "+format+"\n", a...)
		return 2
	}
	if *keyFile == "" {
		return fail("-key is required")
	}
	k, err := loadDPoPKey(*keyFile, *alg)
	if err != nil {
		return fail("-key: %v", err)
	}
	if *thumb {
		tp, err := k.thumbprint()
		if err != nil {
			return fail("-key: %v", err)
		}
		fmt.Fprintln(stdout, tp)
		return 0
	}
	if *rawURL == "" {
		return fail("-url is required")
	}
	tok, err := readToken(*token, *tokenFile, stdin)
	if err != nil {
		return fail("%v", err)
	}
	proof, err := k.sign(proofRequest{method: *method, url: *rawURL, token: tok, nonce: *nonce, now: time.Now()})
	if err != nil {
		return fail("-url: %v", err)
	}
	fmt.Fprintln(stdout, proof)
	return 0
}

// keygen is `jwt-authz keygen`: a new private key, PKCS#8 PEM, mode 0600.
func keygen(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("keygen", stdout, stderr)
	typ := fs.String("type", "ec", "key `type`: ec (P-256), rsa (3072 bits) or ed25519")
	out := fs.String("out", "", "write the key to `FILE` (created, never overwritten); - for stdout")
	if code, ok := fs.parse(args); !ok {
		return code
	}
	fail := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "jwt-authz keygen: "+format+"\n", a...)
		return 2
	}
	if *out == "" {
		return fail("-out is required")
	}
	var key any
	var err error
	switch *typ {
	case "ec":
		key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case "rsa":
		key, err = rsa.GenerateKey(rand.Reader, 3072)
	case "ed25519":
		_, key, err = ed25519.GenerateKey(rand.Reader)
	default:
		return fail("-type %q: want ec, rsa or ed25519", *typ)
	}
	if err != nil {
		return fail("%v", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return fail("%v", err)
	}
	data := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
	if *out == "-" {
		stdout.Write(data)
		return 0
	}
	f, err := os.OpenFile(*out, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fail("-out: %v", err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fail("-out: %v", err)
	}
	if err := f.Close(); err != nil {
		return fail("-out: %v", err)
	}
	return 0
}

func init() {
	helps["dpop-proof"] = help{
		description: `jwt-authz dpop-proof prints a fresh DPoP proof (RFC 9449): a JWS signed with the key of -key,
typ dpop+jwt, its public jwk in the header, a random jti, htm (-method), htu (-url without its query
and fragment), iat now and, with a token, ath. Send it in a DPoP header: to a token endpoint (no
token) to get a DPoP-bound token, or with 'Authorization: DPoP <token>' to an API. A proof is for one
request: make a new one for each. -thumbprint prints the key's thumbprint, the cnf.jkt its tokens carry.`,
		synopsis: "dpop-proof -key FILE [-alg ALG] [-method POST] -url URL [-token T | -token - | -token-file FILE] [-nonce N]\n" +
			"  jwt-authz dpop-proof -key FILE -thumbprint",
		examples: `  jwt-authz dpop-proof -key dpop.key -thumbprint         # after: jwt-authz keygen -out dpop.key
  curl -H "DPoP: $(jwt-authz dpop-proof -key dpop.key -url http://127.0.0.1:8081/oauth/token)" \
      -d grant_type=client_credentials -d client_id=demo-m2m -d client_secret=demo-m2m-secret \
      -d audience=urn:apigee:target:api http://127.0.0.1:8081/oauth/token
  curl -H "Authorization: DPoP $TOKEN" \
      -H "DPoP: $(jwt-authz dpop-proof -key dpop.key -method GET -url http://127.0.0.1:10000/echo -token "$TOKEN")" \
      http://127.0.0.1:10000/echo
`,
		exits: `  0  the proof (or thumbprint) was printed
  2  bad flags, an unreadable or unsuitable key, a URL that is not absolute
`,
	}
	helps["keygen"] = help{
		description: `jwt-authz keygen writes a new private key (PKCS#8 PEM, file mode 0600) for DPoP proofs
(-dpop-key of check, -key of dpop-proof). openssl makes the same keys:
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out dpop.key (or -algorithm ed25519,
or -algorithm RSA -pkeyopt rsa_keygen_bits:3072).`,
		synopsis: "keygen [-type ec|rsa|ed25519] -out FILE",
		examples: `  jwt-authz keygen -out dpop.key
  jwt-authz keygen -type ed25519 -out dpop-ed25519.key
`,
		exits: `  0  the key was written
  2  bad flags, or the file exists or cannot be written
`,
	}
}

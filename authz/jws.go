package authz

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/json"
	"hash"
	"math/big"
	"strconv"
	"strings"
	"unicode/utf8"
)

// The JWS work of the hot path: split the compact form, decode the header,
// verify the signature with the standard library. Two JOSE libraries are
// the reference: the differential tests (authz/diff_test.go) and
// FuzzVerifyAgainstJWX hold this code to the verdicts of jwx and go-jose,
// or to a stricter one where a token has more than one spelling.

// jwsHeader is the part of a JOSE header that verification reads. jku, x5u,
// jwk and x5c are deliberately not read: keys come from the provider's key
// set only (RFC 8725 §3.10).
type jwsHeader struct {
	Alg  string
	Kid  *string // nil when absent
	Typ  string
	Crit bool // present, whatever its value
	// JWK is the raw jwk member, read only by the DPoP proof check (a
	// proof carries its own key; a token never names one we believe).
	JWK json.RawMessage
}

// compact is a token split into its parts.
type compact struct {
	header     jwsHeader
	payload    []byte // decoded payload JSON
	rawPayload string // base64url payload, as in the token
	signing    string // header "." payload: the signing input
	sig        []byte
}

// b64 decodes base64url without padding and refuses non-canonical
// encodings (set trailing bits): a token has one spelling only.
var b64 = base64.RawURLEncoding.Strict()

// parseCompact splits and decodes a JWS compact serialization. On failure
// it returns the reason (malformed_token, or disallowed_algorithm for an
// unsigned token) and a description of the problem.
//
// One token, one meaning (RFC 8725 §2.3 warns of parsers that disagree):
// every part is canonical base64url, the header and the payload are each
// exactly one JSON object with no member named twice at any depth, and
// header member names match exactly (encoding/json alone would take "ALG"
// for "alg" and the last of two "alg"s).
func parseCompact(tok string) (*compact, Reason, string) {
	h, rest, ok1 := strings.Cut(tok, ".")
	p, s, ok2 := strings.Cut(rest, ".")
	if !ok1 || !ok2 || strings.IndexByte(s, '.') >= 0 {
		return nil, ReasonMalformedToken, "not a JWS compact serialization"
	}
	if h == "" || p == "" {
		return nil, ReasonMalformedToken, "empty token part"
	}
	hb, err := decodePart(h)
	if err != nil {
		return nil, ReasonMalformedToken, "header is not base64url"
	}
	c := &compact{rawPayload: p, signing: tok[:len(h)+1+len(p)]}
	if why := decodeHeader(hb, &c.header); why != "" {
		return nil, ReasonMalformedToken, why
	}
	// An unsigned token is refused as such whatever its signature part
	// holds, an empty one included (RFC 8725 §3.1).
	if strings.EqualFold(c.header.Alg, "none") {
		return nil, ReasonDisallowedAlgorithm, "unsigned tokens are not accepted"
	}
	if s == "" {
		return nil, ReasonMalformedToken, "empty token part"
	}
	if c.header.Crit {
		return nil, ReasonMalformedToken, "crit header not supported"
	}
	if c.payload, err = decodePart(p); err != nil {
		return nil, ReasonMalformedToken, "payload is not base64url"
	}
	if c.sig, err = decodePart(s); err != nil {
		return nil, ReasonMalformedToken, "signature is not base64url"
	}
	return c, "", ""
}

// decodePart decodes one part of a token. encoding/base64 skips CR and LF
// even in strict mode, so the alphabet is checked first.
func decodePart(s string) ([]byte, error) {
	for i := 0; i < len(s); i++ {
		if !isB64URL(s[i]) {
			return nil, errNotBase64URL
		}
	}
	return b64.DecodeString(s)
}

func isB64URL(c byte) bool {
	return 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_'
}

// decodeHeader reads the members verification needs, by their exact names.
// It returns a description of the problem, "" when the header is good.
func decodeHeader(b []byte, h *jwsHeader) string {
	// No whitespace around the object either: no JOSE library writes it,
	// and jwx verifies such a header against other bytes than these.
	if len(b) < 2 || b[0] != '{' || b[len(b)-1] != '}' || oneObject(b) != nil {
		return "header is not a JSON object"
	}
	var m map[string]json.RawMessage
	if json.Unmarshal(b, &m) != nil {
		return "header is not a JSON object"
	}
	raw, ok := m["alg"]
	if !ok {
		return "header has no alg"
	}
	if !headerString(raw, &h.Alg) {
		return "header alg is not a string"
	}
	if raw, ok := m["kid"]; ok {
		h.Kid = new(string)
		if !headerString(raw, h.Kid) {
			return "header kid is not a string"
		}
	}
	if raw, ok := m["typ"]; ok && !headerString(raw, &h.Typ) {
		return "header typ is not a string"
	}
	_, h.Crit = m["crit"]
	h.JWK = m["jwk"]
	return ""
}

// headerString decodes a header member that must be a string; null is
// not one (libraries differ on whether "kid": null names a kid).
func headerString(raw json.RawMessage, dst *string) bool {
	return len(raw) > 0 && raw[0] == '"' && json.Unmarshal(raw, dst) == nil
}

// oneObject checks that b is exactly one JSON object, with nothing but
// whitespace around it, that no object in it, at any depth, names a member
// twice (names compared after unescaping, so "\u0061lg" is "alg"), and
// that every number fits a float64. encoding/json alone keeps the last of
// duplicate members, and a json.Decoder stops after the first value:
// either lets a token say one thing to us and another to the next parser
// that reads it.
//
// json.Valid checks the syntax (and that nothing follows the value); the
// scan below then only follows strings and nesting, comparing member names
// in place. It allocates only for a name with escapes or a number with an
// exponent or hundreds of digits.
func oneObject(b []byte) error {
	// Invalid UTF-8 is refused: encoding/json would turn two different
	// invalid names into the same U+FFFD one.
	if !utf8.Valid(b) || !json.Valid(b) {
		return errNotObject
	}
	i := skipSpace(b, 0)
	if b[i] != '{' {
		return errNotObject
	}
	var nameBuf [32][]byte
	names := nameBuf[:0] // member names of the open objects, innermost last
	var frameBuf [16]int
	frames := frameBuf[:0] // per open object or array: start in names, or -1 for an array
	// seen holds, per open object, a set of its names once it has more than
	// linearNames of them: comparing each name with every earlier one would
	// make a 16 KiB header of one-letter members cost milliseconds before
	// any signature is checked.
	var seen []map[string]struct{}
	expectName := false
	for ; i < len(b); i++ {
		switch c := b[i]; c {
		case '{':
			frames = append(frames, len(names))
			if seen != nil {
				seen = append(seen, nil)
			}
			expectName = true
		case '[':
			frames = append(frames, -1)
			if seen != nil {
				seen = append(seen, nil)
			}
		case '}', ']':
			if start := frames[len(frames)-1]; start >= 0 {
				names = names[:start]
			}
			frames = frames[:len(frames)-1]
			if seen != nil {
				seen = seen[:len(frames)]
			}
		case ',':
			expectName = frames[len(frames)-1] >= 0
		case '"':
			end := stringEnd(b, i)
			if expectName {
				name := b[i+1 : end]
				if bytes.IndexByte(name, '\\') >= 0 {
					var s string
					if err := json.Unmarshal(b[i:end+1], &s); err != nil {
						return errNotObject
					}
					name = []byte(s)
				}
				if dup := memberSeen(&seen, frames, names, name); dup {
					return errDuplicate
				}
				names = append(names, name)
				expectName = false
			}
			i = end
		case '-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
			end := i
			big := false
			for end < len(b) && strings.IndexByte("+-0123456789.eE", b[end]) >= 0 {
				big = big || b[end] == 'e' || b[end] == 'E'
				end++
			}
			if big || end-i > 300 {
				if _, err := strconv.ParseFloat(string(b[i:end]), 64); err != nil {
					return errNumber
				}
			}
			i = end - 1
		}
	}
	return nil
}

// linearNames is how many names of one object are compared one by one
// before oneObject switches that object to a set.
const linearNames = 32

// memberSeen reports whether name is already a member of the innermost
// open object, and records it in that object's set once it has one.
func memberSeen(seen *[]map[string]struct{}, frames []int, names [][]byte, name []byte) bool {
	depth := len(frames) - 1
	own := names[frames[depth]:]
	if len(own) < linearNames {
		for _, n := range own {
			if bytes.Equal(n, name) {
				return true
			}
		}
		return false
	}
	if *seen == nil {
		*seen = make([]map[string]struct{}, len(frames))
	}
	set := (*seen)[depth]
	if set == nil {
		set = make(map[string]struct{}, 2*len(own))
		for _, n := range own {
			set[string(n)] = struct{}{}
		}
		(*seen)[depth] = set
	}
	if _, ok := set[string(name)]; ok {
		return true
	}
	set[string(name)] = struct{}{}
	return false
}

// stringEnd returns the index of the quote that closes the string opening
// at b[i], in valid JSON.
func stringEnd(b []byte, i int) int {
	for j := i + 1; ; j++ {
		switch b[j] {
		case '\\':
			j++
		case '"':
			return j
		}
	}
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

type constError string

func (e constError) Error() string { return string(e) }

const (
	errNotObject    = constError("not a JSON object")
	errDuplicate    = constError("duplicate member name")
	errNumber       = constError("number out of range")
	errNotBase64URL = constError("not base64url")
)

// algSpec describes a JWS algorithm we verify.
type algSpec struct {
	kind     string // "RSA", "PSS", "EC", "OKP"
	hash     crypto.Hash
	newHash  func() hash.Hash
	curveLen int // bytes per coordinate for ECDSA
	curve    string
}

var algs = map[string]algSpec{
	"RS256": {kind: "RSA", hash: crypto.SHA256, newHash: sha256.New},
	"RS384": {kind: "RSA", hash: crypto.SHA384, newHash: sha512.New384},
	"RS512": {kind: "RSA", hash: crypto.SHA512, newHash: sha512.New},
	"PS256": {kind: "PSS", hash: crypto.SHA256, newHash: sha256.New},
	"PS384": {kind: "PSS", hash: crypto.SHA384, newHash: sha512.New384},
	"PS512": {kind: "PSS", hash: crypto.SHA512, newHash: sha512.New},
	"ES256": {kind: "EC", hash: crypto.SHA256, newHash: sha256.New, curveLen: 32, curve: "P-256"},
	"ES384": {kind: "EC", hash: crypto.SHA384, newHash: sha512.New384, curveLen: 48, curve: "P-384"},
	"ES512": {kind: "EC", hash: crypto.SHA512, newHash: sha512.New, curveLen: 66, curve: "P-521"},
	"EdDSA": {kind: "OKP"},
}

// SupportedAlgorithm reports whether alg is an asymmetric JWS algorithm
// jwt-authz verifies. HS* are not: a shared secret has no place in a
// verifier's config, and refusing them closes the RSA-key-as-HMAC-secret
// attack by construction.
func SupportedAlgorithm(alg string) bool {
	_, ok := algs[alg]
	return ok
}

// keyFits reports whether k may verify a token signed with alg: the JWK's
// alg, when set, equals it, and the key's type and curve fit it.
func keyFits(k *Key, alg string) bool {
	if k.Algorithm != "" && k.Algorithm != alg {
		return false
	}
	spec, ok := algs[alg]
	if !ok {
		return false
	}
	switch pub := k.Public.(type) {
	case *rsa.PublicKey:
		return spec.kind == "RSA" || spec.kind == "PSS"
	case *ecdsa.PublicKey:
		return spec.kind == "EC" && pub.Curve.Params().Name == spec.curve
	case ed25519.PublicKey:
		return spec.kind == "OKP"
	}
	return false
}

// verifySignature checks sig over signing with key k under alg. The caller
// has checked keyFits.
func verifySignature(alg string, k *Key, signing string, sig []byte) bool {
	spec := algs[alg]
	if spec.kind == "OKP" {
		pub, ok := k.Public.(ed25519.PublicKey)
		return ok && len(pub) == ed25519.PublicKeySize && ed25519.Verify(pub, []byte(signing), sig)
	}
	h := spec.newHash()
	h.Write([]byte(signing))
	digest := h.Sum(nil)
	switch spec.kind {
	case "RSA":
		pub, ok := k.Public.(*rsa.PublicKey)
		return ok && rsa.VerifyPKCS1v15(pub, spec.hash, digest, sig) == nil
	case "PSS":
		pub, ok := k.Public.(*rsa.PublicKey)
		// RFC 7518 §3.5: the salt is as long as the hash.
		return ok && rsa.VerifyPSS(pub, spec.hash, digest, sig, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash}) == nil
	case "EC":
		pub, ok := k.Public.(*ecdsa.PublicKey)
		// RFC 7518 §3.4: R and S as fixed-width big-endian, not ASN.1.
		if !ok || len(sig) != 2*spec.curveLen {
			return false
		}
		r := new(big.Int).SetBytes(sig[:spec.curveLen])
		s := new(big.Int).SetBytes(sig[spec.curveLen:])
		return ecdsa.Verify(pub, digest, r, s)
	}
	return false
}

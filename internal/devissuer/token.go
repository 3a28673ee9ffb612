package devissuer

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jws"
)

const (
	grantClientCredentials = "client_credentials"
	maxTokenRequestBytes   = 64 << 10
)

// tokenRequest holds the parameters of Auth0's client-credentials grant.
type tokenRequest struct {
	GrantType    string `json:"grant_type"`
	ClientID     string `json:"client_id"`
	ClientSecret string `json:"client_secret"`
	Audience     string `json:"audience"`
	Scope        string `json:"scope"`
}

// tokenResponse is Auth0's answer (RFC 6749 §5.1).
type tokenResponse struct {
	AccessToken string `json:"access_token"`
	TokenType   string `json:"token_type"`
	ExpiresIn   int64  `json:"expires_in"`
	Scope       string `json:"scope,omitempty"`
}

// accessClaims are the claims of an Auth0 M2M access token; the fields
// tagged omitempty depend on the profile (azp for Auth0's default profile,
// client_id and jti for RFC 9068).
type accessClaims struct {
	Iss         string        `json:"iss"`
	Sub         string        `json:"sub"`
	Aud         string        `json:"aud"`
	Iat         int64         `json:"iat"`
	Exp         int64         `json:"exp"`
	Jti         string        `json:"jti,omitempty"`
	ClientID    string        `json:"client_id,omitempty"`
	Azp         string        `json:"azp,omitempty"`
	Scope       string        `json:"scope,omitempty"`
	Gty         string        `json:"gty"`
	Permissions *[]string     `json:"permissions,omitempty"` // pointer: RBAC on with no scopes is "permissions":[]
	Cnf         *confirmation `json:"cnf,omitempty"`
}

// confirmation is the cnf claim (RFC 7800) of a sender-constrained token:
// the DPoP key's thumbprint (RFC 9449 §6.1) or the client certificate's
// (RFC 8705 §3.1).
type confirmation struct {
	JKT     string `json:"jkt,omitempty"`
	X5tS256 string `json:"x5t#S256,omitempty"`
}

// handleToken is POST /oauth/token. The order of the checks follows Auth0:
// grant type, then the required parameters, then the credentials, then the
// client grant for the audience; then the DPoP proof, if any, so that only
// authenticated requests use up room in the replay cache.
func (iss *Issuer) handleToken(w http.ResponseWriter, r *http.Request) {
	iss.serveToken(w, r, nil)
}

// serveToken answers a token request; cert is the client certificate of the
// mutual-TLS listener (nil on the plain listener), which the token is bound
// to instead of a DPoP key.
func (iss *Issuer) serveToken(w http.ResponseWriter, r *http.Request, cert *x509.Certificate) {
	// RFC 6749 §5.1: token responses, errors included, must not be cached.
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Pragma", "no-cache")

	req, problem := readTokenRequest(w, r)
	if problem != "" {
		writeError(w, http.StatusBadRequest, "invalid_request", problem)
		return
	}
	switch {
	case req.GrantType == "":
		writeError(w, http.StatusBadRequest, "invalid_request", "Missing required parameter: grant_type")
		return
	case req.GrantType != grantClientCredentials:
		writeError(w, http.StatusBadRequest, "unsupported_grant_type", fmt.Sprintf("Unsupported grant type: %s", req.GrantType))
		return
	}
	for _, p := range []struct{ name, value string }{
		{"client_id", req.ClientID},
		{"client_secret", req.ClientSecret},
		{"audience", req.Audience},
	} {
		if p.value == "" {
			writeError(w, http.StatusBadRequest, "invalid_request", "Missing required parameter: "+p.name)
			return
		}
	}
	client, ok := iss.authenticate(req.ClientID, req.ClientSecret)
	if !ok {
		iss.log.Info("token refused", "reason", "bad_credentials", "client_id", req.ClientID)
		writeError(w, http.StatusUnauthorized, "access_denied", "Unauthorized")
		return
	}
	i := slices.IndexFunc(client.Grants, func(g Grant) bool { return g.Audience == req.Audience })
	if i < 0 {
		iss.log.Info("token refused", "reason", "audience_not_granted", "client_id", client.ClientID, "audience", req.Audience)
		writeError(w, http.StatusForbidden, "access_denied",
			`Client is not authorized to access "`+req.Audience+`". You need to create a "client-grant" associated to this API. `+
				`See: https://auth0.com/docs/api/v2#!/Client_Grants/post_client_grants`)
		return
	}
	scopes, missing := narrowScopes(client.Grants[i].Scopes, req.Scope)
	if len(missing) > 0 {
		iss.log.Info("token refused", "reason", "scope_not_granted", "client_id", client.ClientID, "audience", req.Audience)
		writeError(w, http.StatusForbidden, "access_denied", "Client has not been granted scopes: "+strings.Join(missing, ", "))
		return
	}
	cnf, ok := iss.binding(w, r, cert)
	if !ok {
		return
	}
	token, kid, err := iss.issue(client, req.Audience, scopes, cnf)
	if err != nil {
		iss.log.Error("issue token", "client_id", client.ClientID, "error", err)
		writeError(w, http.StatusInternalServerError, "server_error", "could not sign the token")
		return
	}
	tokenType, bound := "Bearer", "none"
	switch {
	case cnf != nil && cnf.JKT != "":
		tokenType, bound = "DPoP", "dpop" // RFC 9449 §5.1
	case cnf != nil:
		bound = "mtls" // RFC 8705 keeps token_type Bearer
	}
	iss.log.Info("token issued", "client_id", client.ClientID, "audience", req.Audience, "kid", kid, "scope", strings.Join(scopes, " "), "cnf", bound)
	writeJSON(w, http.StatusOK, tokenResponse{
		AccessToken: token,
		TokenType:   tokenType,
		ExpiresIn:   int64(iss.ttl.Seconds()),
		Scope:       strings.Join(scopes, " "),
	})
}

// readTokenRequest reads a JSON or form body; client credentials may also come
// in an HTTP Basic Authorization header (client_secret_basic). problem is the
// error_description of an unreadable body, empty when the body was read.
func readTokenRequest(w http.ResponseWriter, r *http.Request) (req tokenRequest, problem string) {
	r.Body = http.MaxBytesReader(w, r.Body, maxTokenRequestBytes)
	mediaType, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if mediaType == "application/json" {
		dec := json.NewDecoder(r.Body)
		if err := dec.Decode(&req); err != nil {
			var typeErr *json.UnmarshalTypeError
			if errors.As(err, &typeErr) {
				return req, "Invalid parameter: " + typeErr.Field + " must be a string"
			}
			return req, "Invalid JSON body"
		}
	} else {
		if err := r.ParseForm(); err != nil {
			return req, "Invalid form body"
		}
		// PostForm only: parameters in the URL query are not accepted, as
		// they would end up in logs.
		req = tokenRequest{
			GrantType:    r.PostForm.Get("grant_type"),
			ClientID:     r.PostForm.Get("client_id"),
			ClientSecret: r.PostForm.Get("client_secret"),
			Audience:     r.PostForm.Get("audience"),
			Scope:        r.PostForm.Get("scope"),
		}
	}
	if id, secret, ok := r.BasicAuth(); ok && req.ClientID == "" && req.ClientSecret == "" {
		// RFC 6749 §2.3.1: both are form-urlencoded before the Basic
		// encoding; clients such as oauth4webapi encode even "-".
		req.ClientID, req.ClientSecret = formDecode(id), formDecode(secret)
	}
	return req, ""
}

// formDecode undoes application/x-www-form-urlencoded; a value that is not
// validly encoded is taken as it is, as from a client that did not encode.
func formDecode(s string) string {
	if d, err := url.QueryUnescape(s); err == nil {
		return d
	}
	return s
}

// authenticate compares secrets in constant time, and spends the same work on
// an unknown client id so that timing does not tell which ids exist.
func (iss *Issuer) authenticate(id, secret string) (Client, bool) {
	client, known := iss.clients[id]
	want := client.ClientSecret
	if !known {
		want = "\x00unknown-client"
	}
	// Hashing first makes the comparison independent of the secrets' lengths.
	a, b := sha256.Sum256([]byte(secret)), sha256.Sum256([]byte(want))
	match := subtle.ConstantTimeCompare(a[:], b[:]) == 1
	return client, known && match
}

// narrowScopes returns the granted scopes the request asks for (all of them
// when it names none), and the requested scopes that are not granted.
func narrowScopes(granted []string, requested string) (scopes, missing []string) {
	want := strings.Fields(requested)
	if len(want) == 0 {
		return slices.Clone(granted), nil
	}
	for _, s := range want {
		if !slices.Contains(granted, s) && !slices.Contains(missing, s) {
			missing = append(missing, s)
		}
	}
	for _, s := range granted {
		if slices.Contains(want, s) {
			scopes = append(scopes, s)
		}
	}
	return scopes, missing
}

// binding returns the cnf claim of the token to issue: the client
// certificate's thumbprint on the mTLS listener, the DPoP proof key's when
// the request carries a valid proof, nil for a bearer token. When it returns
// false it has written the error answer.
func (iss *Issuer) binding(w http.ResponseWriter, r *http.Request, cert *x509.Certificate) (*confirmation, bool) {
	if cert != nil {
		if len(r.Header.Values(dpopHeader)) > 0 {
			writeError(w, http.StatusBadRequest, "invalid_dpop_proof",
				"this endpoint binds tokens to the client certificate; send DPoP proofs to "+iss.issuer+"oauth/token")
			return nil, false
		}
		sum := sha256.Sum256(cert.Raw)
		return &confirmation{X5tS256: base64.RawURLEncoding.EncodeToString(sum[:])}, true
	}
	jkt, err := iss.checkDPoP(r)
	var bad errProof
	switch {
	case errors.As(err, &bad):
		iss.log.Info("token refused", "reason", "invalid_dpop_proof", "detail", bad.Error())
		writeError(w, http.StatusBadRequest, "invalid_dpop_proof", bad.Error())
		return nil, false
	case err != nil:
		iss.log.Error("check dpop proof", "error", err)
		writeError(w, http.StatusServiceUnavailable, "temporarily_unavailable", "too many DPoP proofs to remember; retry later")
		return nil, false
	case jkt != "":
		return &confirmation{JKT: jkt}, true
	}
	return nil, true
}

func (iss *Issuer) issue(client Client, audience string, scopes []string, cnf *confirmation) (token, kid string, err error) {
	key := iss.signingKey()
	now := iss.now()
	c := accessClaims{
		Iss:   iss.issuer,
		Sub:   client.ClientID + "@clients",
		Aud:   audience,
		Iat:   now.Unix(),
		Exp:   now.Add(iss.ttl).Unix(),
		Scope: strings.Join(scopes, " "),
		Gty:   "client-credentials",
		Cnf:   cnf,
	}
	typ := "JWT"
	if iss.profile == ProfileRFC9068 {
		typ = "at+jwt" // RFC 9068 §2.1
		c.ClientID = client.ClientID
		jti := make([]byte, 16)
		if _, err := rand.Read(jti); err != nil {
			return "", "", fmt.Errorf("devissuer: jti: %w", err)
		}
		c.Jti = base64.RawURLEncoding.EncodeToString(jti)
	} else {
		c.Azp = client.ClientID
	}
	if client.Permissions {
		perms := slices.Clone(scopes)
		if perms == nil {
			perms = []string{}
		}
		c.Permissions = &perms
	}
	payload, err := json.Marshal(c)
	if err != nil {
		return "", "", fmt.Errorf("devissuer: encode claims: %w", err)
	}
	hdr := jws.NewHeaders()
	for k, v := range map[string]any{jws.TypeKey: typ, jws.KeyIDKey: key.kid} {
		if err := hdr.Set(k, v); err != nil {
			return "", "", fmt.Errorf("devissuer: header %s: %w", k, err)
		}
	}
	signed, err := jws.Sign(payload, jws.WithKey(jwa.RS256, key.private, jws.WithProtectedHeaders(hdr)))
	if err != nil {
		return "", "", fmt.Errorf("devissuer: sign: %w", err)
	}
	return string(signed), key.kid, nil
}

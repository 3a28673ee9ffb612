package authz

// Reason is why a Check ended as it did. The set is closed: it is the
// `reason` label of jwt_authz_checks_total and the `reason` of deny bodies,
// so it never holds a value from a token or a request.
type Reason string

// The closed set of reasons (docs/reference.md, "Reasons").
const (
	ReasonOK                  Reason = "ok"
	ReasonAnonymous           Reason = "anonymous"
	ReasonDryRun              Reason = "dry_run"
	ReasonMissingToken        Reason = "missing_token"
	ReasonMalformedToken      Reason = "malformed_token"
	ReasonUnknownIssuer       Reason = "unknown_issuer"
	ReasonDisallowedAlgorithm Reason = "disallowed_algorithm"
	ReasonUnknownKey          Reason = "unknown_key"
	ReasonInvalidSignature    Reason = "invalid_signature"
	ReasonExpired             Reason = "expired"
	ReasonNotYetValid         Reason = "not_yet_valid"
	ReasonInvalidAudience     Reason = "invalid_audience"
	ReasonTokenTooOld         Reason = "token_too_old"
	ReasonInvalidType         Reason = "invalid_type"
	ReasonMissingClaim        Reason = "missing_claim"
	ReasonInsufficientScope   Reason = "insufficient_scope"
	ReasonClaimMismatch       Reason = "claim_mismatch"
	ReasonNoMatchingRule      Reason = "no_matching_rule"
	ReasonKeysUnavailable     Reason = "keys_unavailable"
	ReasonInternalError       Reason = "internal_error"
	// ReasonBadRequest is a request that cannot be read one way only: a
	// path or host that does not normalise, ";" path parameters under the
	// default policy, disagreeing or repeated forwarded headers. It is not a
	// token problem, so it answers 400 without a challenge.
	ReasonBadRequest Reason = "bad_request"
	// ReasonInvalidProof is a DPoP proof that is malformed, badly signed,
	// for another method, URL or token, too old or from the future, or
	// replayed.
	ReasonInvalidProof Reason = "invalid_proof"
	// ReasonSenderMismatch is a proof key or client certificate that is not
	// the one the token is bound to.
	ReasonSenderMismatch Reason = "sender_mismatch"
	// ReasonMissingProof is a bound token without its proof or certificate,
	// or a DPoP-bound token sent with the Bearer scheme.
	ReasonMissingProof Reason = "missing_proof"
	// ReasonUnboundToken is an unbound token where binding is required.
	ReasonUnboundToken Reason = "unbound_token"
)

// Reasons lists every Reason, in the contract's order.
var Reasons = []Reason{
	ReasonOK, ReasonAnonymous, ReasonDryRun, ReasonMissingToken, ReasonMalformedToken,
	ReasonUnknownIssuer, ReasonDisallowedAlgorithm, ReasonUnknownKey, ReasonInvalidSignature,
	ReasonExpired, ReasonNotYetValid, ReasonInvalidAudience, ReasonTokenTooOld, ReasonInvalidType,
	ReasonMissingClaim, ReasonInsufficientScope, ReasonClaimMismatch, ReasonNoMatchingRule,
	ReasonKeysUnavailable, ReasonInternalError, ReasonBadRequest,
	ReasonInvalidProof, ReasonSenderMismatch, ReasonMissingProof, ReasonUnboundToken,
}

// outcome is one row of the table that maps a reason to its HTTP answer.
// Keeping it in one table (as Authorino does) keeps status, challenge and
// body from drifting apart.
type outcome struct {
	status int    // HTTP status of the denial
	code   string // RFC 6750 error code in the challenge and the body's "error"
}

// outcomes maps each denying reason to its answer (docs/reference.md, "Reasons").
var outcomes = map[Reason]outcome{
	ReasonMissingToken:        {401, "unauthorized"},
	ReasonMalformedToken:      {401, "invalid_token"},
	ReasonUnknownIssuer:       {401, "invalid_token"},
	ReasonDisallowedAlgorithm: {401, "invalid_token"},
	ReasonUnknownKey:          {401, "invalid_token"},
	ReasonInvalidSignature:    {401, "invalid_token"},
	ReasonExpired:             {401, "invalid_token"},
	ReasonNotYetValid:         {401, "invalid_token"},
	ReasonInvalidAudience:     {401, "invalid_token"},
	ReasonTokenTooOld:         {401, "invalid_token"},
	ReasonInvalidType:         {401, "invalid_token"},
	ReasonMissingClaim:        {401, "invalid_token"},
	ReasonInsufficientScope:   {403, "insufficient_scope"},
	ReasonClaimMismatch:       {403, "insufficient_scope"},
	ReasonNoMatchingRule:      {403, "insufficient_scope"},
	ReasonKeysUnavailable:     {503, "temporarily_unavailable"},
	ReasonInternalError:       {500, "server_error"},
	ReasonBadRequest:          {400, "invalid_request"},
	ReasonInvalidProof:        {401, "invalid_dpop_proof"},
	ReasonSenderMismatch:      {401, "invalid_token"},
	ReasonMissingProof:        {401, "invalid_token"},
	ReasonUnboundToken:        {401, "invalid_token"},
}

// Status returns the HTTP status a denial for r answers with (200 for the
// allowing reasons).
func (r Reason) Status() int {
	if o, ok := outcomes[r]; ok {
		return o.status
	}
	return 200
}

// ErrorCode returns the body's "error" for a denial with r: the RFC 6750
// code, "unauthorized" for a missing token, "temporarily_unavailable" when
// keys are unavailable.
func (r Reason) ErrorCode() string { return outcomes[r].code }

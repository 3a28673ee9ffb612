package authz

import "sync/atomic"

// Answer is a slot where a protocol adapter keeps its encoded rendering of
// an allowed decision, so a token seen again under the same rule is not
// rendered and encoded again. It lives with the verified token in the
// token cache and goes when the token leaves it (expiry, eviction, a key
// removed, a reload: a new Authorizer has a new cache).
//
// An allowed decision carries a usable Answer only when its rendering
// depends on nothing but the verified token, the rule and the place the
// token was found: reason ok (not dry_run, not anonymous), token from the
// cache, and no cookie rewritten for forward_token: false. Only the token's
// verification is reused: the sender checks (a DPoP proof, a client
// certificate) run on every request, and a decision carries the slot only
// when they passed on that request; what they add to the answer (the cnf
// metadata) follows from the token and the place it was found. The slot is
// handed out from the second use of a token on, so tokens seen once (the
// bulk of a stream of one-off tokens) never carry an encoded answer.
//
// The zero Answer holds nothing and stores nothing. Load and Store are
// safe for concurrent use; what is stored (an adapter's own type, so that
// sending it allocates nothing) must not be modified after.
type Answer struct {
	v    *verified
	rule *rule
	src  int
}

// maxAnswersPerToken bounds the rules a token keeps answers for: machine
// tokens call a handful of routes; a token used on more keeps the first.
const maxAnswersPerToken = 4

// answerEntry is one stored answer; a token's entries form a list
// (most tokens have one), replaced whole on Store.
type answerEntry struct {
	rule *rule
	src  int
	v    any
	next *answerEntry
}

// Load returns what was stored, or nil.
func (s Answer) Load() any {
	if s.v == nil {
		return nil
	}
	for e := s.v.answers.Load(); e != nil; e = e.next {
		if e.rule == s.rule && e.src == s.src {
			return e.v
		}
	}
	return nil
}

// Store keeps v for the slot. A slot already filled keeps its first value
// (they are equal: the rendering is deterministic).
func (s Answer) Store(v any) {
	if s.v == nil || v == nil {
		return
	}
	for {
		old := s.v.answers.Load()
		n := 0
		for e := old; e != nil; e = e.next {
			if e.rule == s.rule && e.src == s.src {
				return
			}
			n++
		}
		if n >= maxAnswersPerToken {
			return
		}
		if s.v.answers.CompareAndSwap(old, &answerEntry{rule: s.rule, src: s.src, v: v, next: old}) {
			return
		}
	}
}

// answersOf is the storage of a verified token's answers.
type answersOf = atomic.Pointer[answerEntry]

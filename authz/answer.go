package authz

import (
	"sort"
	"sync/atomic"
)

// Answer is a slot where a protocol adapter keeps its encoded rendering of
// an allowed decision, so a token seen again under the same rule is not
// rendered and encoded again. It lives with the verified token in the
// token cache and goes when the token leaves it (expiry, eviction, a key
// removed, a reload: a new Authorizer has a new cache).
//
// An allowed decision carries a usable Answer only when its rendering
// depends on nothing but the verified token, the rule and the place the
// token was found: reason ok (not dry_run, not anonymous), token from the
// cache, and no cookie rewritten for forward_token: false. The slot is
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

// HeadersRead returns the lower-case names of every request header a
// decision of this Authorizer can read: token sources, cookie, :authority,
// CORS preflight, the sender-constraint headers (dpop,
// x-forwarded-client-cert) and forwarding (x-forwarded-proto,
// x-forwarded-host). An adapter that reads requests selectively (the
// Envoy codec) keeps these and may drop every other header; any header a
// new check reads must be added here. Sorted; shared, do not modify.
func (a *Authorizer) HeadersRead() []string { return a.headersRead }

// headersRead computes HeadersRead at New.
func headersRead(sources []TokenSource) []string {
	set := map[string]bool{
		":authority": true, "authorization": true, "origin": true, "access-control-request-method": true,
		"dpop": true, "x-forwarded-client-cert": true, "x-forwarded-proto": true, "x-forwarded-host": true,
	}
	for _, s := range sources {
		switch {
		case s.Header != "":
			set[s.Header] = true
		case s.Cookie != "":
			set["cookie"] = true
		}
	}
	out := make([]string, 0, len(set))
	for h := range set {
		out = append(out, h)
	}
	sort.Strings(out)
	return out
}

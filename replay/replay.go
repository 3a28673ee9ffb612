// Package replay owns the memory of DPoP proof identifiers (RFC 9449 §11.1):
// a Store answers, once per proof, whether its key (the proof key's thumbprint
// and its jti) was seen before inside the proof's acceptance window.
//
// Two stores: Memory, a bounded cache inside one replica, and Redis, shared by
// every replica through one SET NX with an expiry per proof. Both hash keys
// with SHA-256, so what an attacker chooses (the jti) costs a fixed amount of
// memory, and both fail closed: an error means "could not record", and the
// caller refuses the proof.
//
// How a verifier calls it: once per proof, after every other check of the
// proof and its token passed (so that only proofs of valid tokens take room),
// with key = the proof key's thumbprint, a space, and the jti (a jti is unique
// per key, and nobody can use up another key's identifiers), and expiry just
// after the last instant the proof would be accepted: its iat plus iat_offset
// plus iat_leeway, plus a second (expiry is exclusive). false means replayed;
// an error means refuse the proof.
//
// Concurrency: both stores are safe for concurrent use. Memory guards one map
// and one min-heap with a mutex held for a map lookup and a heap operation,
// and starts no goroutine. Redis uses go-redis's connection pool.
package replay

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"time"
)

// Store remembers proof identifiers until they expire.
type Store interface {
	// Claim records key until expiry and reports whether it was new (true) or already seen (false).
	// An error means the store could not answer in time; callers fail closed.
	Claim(ctx context.Context, key string, expiry time.Time) (bool, error)
}

// MaxKeyBytes bounds the key a caller may claim. A DPoP jti is a short random
// string (RFC 9449 §4.2 suggests 96 bits of entropy); a longer key is refused
// rather than hashed, so that nobody makes the store hash megabytes.
const MaxKeyBytes = 1024

// Errors of Claim. Errors from a store's backend wrap ErrUnavailable.
var (
	// ErrInvalidKey: the key is empty or longer than MaxKeyBytes.
	ErrInvalidKey = errors.New("replay: key is empty or too long")
	// ErrExpired: the expiry is not after now, so there is no window to
	// remember the key in. A caller that checked the proof's iat first never
	// sees it.
	ErrExpired = errors.New("replay: expiry is not in the future")
	// ErrFull: the memory store holds MaxEntries live keys. Evicting one of
	// them would let its proof be replayed, so the new key is refused instead.
	ErrFull = errors.New("replay: store is full of live keys")
	// ErrUnavailable: the shared store did not answer in time or failed.
	ErrUnavailable = errors.New("replay: store unavailable")
)

// digest is the fixed-size form of a key.
type digest [sha256.Size]byte

func hashKey(key string) (digest, error) {
	if key == "" || len(key) > MaxKeyBytes {
		return digest{}, fmt.Errorf("%w (%d bytes, at most %d)", ErrInvalidKey, len(key), MaxKeyBytes)
	}
	return sha256.Sum256([]byte(key)), nil
}

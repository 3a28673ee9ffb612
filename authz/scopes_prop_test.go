package authz

import (
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestScopeSetMatchesList holds the packed scope set (scopes, hasScope)
// to the plain reading of the claims it replaced: the fields of string
// claims and the elements of array claims of scope, scp and permissions,
// over generated claims with separators, NULs, empties and duplicates.
func TestScopeSetMatchesList(t *testing.T) {
	t.Parallel()
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	r := rand.New(rand.NewPCG(seed, 3))
	atoms := []string{"read", "write", "read:target", "a b", "a", "b", "", "x\x00y", "x", "y", " ", "\t", "admin:write", "a,b"}
	word := func() string { return atoms[r.IntN(len(atoms))] }
	claimOf := func() any {
		switch r.IntN(4) {
		case 0:
			return nil
		case 1:
			var parts []string
			for range r.IntN(4) {
				parts = append(parts, word())
			}
			return strings.Join(parts, []string{" ", "  ", "\t", ","}[r.IntN(4)])
		case 2:
			var arr []any
			for range r.IntN(4) {
				if r.IntN(6) == 0 {
					arr = append(arr, 3.0)
				} else {
					arr = append(arr, word())
				}
			}
			return arr
		}
		return 7.0
	}
	for range 5000 {
		c := claims{}
		for _, k := range []string{"scope", "scp", "permissions"} {
			if v := claimOf(); v != nil {
				c[k] = v
			}
		}
		var list []string // the plain reading
		for _, k := range []string{"scope", "scp", "permissions"} {
			switch v := c[k].(type) {
			case string:
				list = append(list, strings.Fields(v)...)
			case []any:
				for _, e := range v {
					if s, ok := e.(string); ok && s != "" {
						list = append(list, s)
					}
				}
			}
		}
		v := &verified{}
		v.scopes, v.scopeInText = c.scopes()
		v.scope, _ = claimText(c["scope"])
		for _, w := range append(slices.Clone(atoms), "read:target write", "x\x00") {
			// A scope holding NUL in an array may be refused (stricter,
			// never wider); everything else must read the same.
			want := slices.Contains(list, w)
			if got := v.hasScope(w); got != want && !(strings.Contains(w, "\x00") && !got) {
				t.Fatalf("claims %q: hasScope(%q) = %v, want %v", c, w, got, want)
			}
		}
	}
}

package authz

import (
	"encoding/json"
	"errors"
	"testing"
)

// TestOneObject holds the in-place scan of oneObject to a table: every
// way a second spelling can hide (duplicates at any depth, escaped names,
// data after the object, numbers out of range, invalid UTF-8) and the
// shapes that must pass.
func TestOneObject(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want error
	}{
		{`{}`, nil},
		{` {"a":1} `, nil},
		{`{"a":1,"b":{"a":2},"c":[{"a":3},{"a":4}],"d":"a"}`, nil},
		{`{"a":"\"a\"","\"a\"":1}`, nil},
		{`{"a":1,"A":2}`, nil},
		{`{"a":[1,"a",{"b":1}],"b":{"c":{"d":{}}},"e":[[[]]]}`, nil},
		{`{"x":-0.5e-3,"y":1E+2,"z":123456789012345678901234567890}`, nil},
		{`{"a":1,"a":2}`, errDuplicate},
		{`{"a":{"b":1,"b":2}}`, errDuplicate},
		{`{"a":[{"b":1},{"b":1,"c":2,"b":3}]}`, errDuplicate},
		{`{"alg":"RS256","\u0061lg":"none"}`, errDuplicate},
		{`{"a\ufffd":1,"a\ud800":2}`, errDuplicate},
		{`{"a\ud800":1,"a` + "\xef\xbf\xbd" + `":2}`, errDuplicate},
		{`{"a":{"x":1},"b":{"x":1},"a":0}`, errDuplicate},
		{`{"a":1}}`, errNotObject},
		{`{"a":1}junk`, errNotObject},
		{`{"a":1} {}`, errNotObject},
		{`[{"a":1}]`, errNotObject},
		{`"{}"`, errNotObject},
		{``, errNotObject},
		{`{"a":1,}`, errNotObject},
		{"{\"a\xff\":1}", errNotObject},
		{`{"x":1e400}`, errNumber},
		{`{"x":[-1e309]}`, errNumber},
	} {
		if got := oneObject([]byte(tc.in)); !errors.Is(got, tc.want) {
			t.Errorf("oneObject(%q) = %v, want %v", tc.in, got, tc.want)
		}
		// Whatever oneObject passes, encoding/json decodes to an object.
		if oneObject([]byte(tc.in)) == nil {
			var m map[string]any
			if err := json.Unmarshal([]byte(tc.in), &m); err != nil || m == nil {
				t.Errorf("%q passed but does not decode: %v", tc.in, err)
			}
		}
	}
	// The payload is converted once: []byte of a literal this long is a
	// heap allocation of the test's, not of oneObject. The best of three
	// batches: the race detector's runtime allocates now and then, and an
	// allocation of oneObject's would show in every batch.
	plain := []byte(`{"iss":"https://x/","aud":["a","b"],"exp":1772370000,"org":{"id":"o","tier":"t"}}`)
	n := testing.AllocsPerRun(100, func() { _ = oneObject(plain) })
	for range 2 {
		n = min(n, testing.AllocsPerRun(100, func() { _ = oneObject(plain) }))
	}
	if n > 0 {
		t.Errorf("oneObject allocates %v times on a plain payload", n)
	}
}

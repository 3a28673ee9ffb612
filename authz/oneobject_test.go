package authz

import (
	"fmt"
	"strings"
	"testing"
)

// TestOneObjectManyMembers: past linearNames members an object's names go
// into a set (a 16 KiB header of one-letter members cost ~15 ms compared
// pairwise, before any signature check); duplicates are still found there
// and in the objects around it.
func TestOneObjectManyMembers(t *testing.T) {
	var b strings.Builder
	b.WriteString("{")
	for i := 0; i < 4000; i++ {
		if i > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, `"%x":0`, i)
	}
	b.WriteString("}")
	doc := []byte(b.String())
	if err := oneObject(doc); err != nil {
		t.Fatal(err)
	}
	dup := []byte(strings.Replace(b.String(), `}`, `,"ff":1}`, 1))
	if oneObject(dup) != errDuplicate {
		t.Fatal("duplicate past the linear part not found")
	}
	nested := []byte(`{"a":{` + b.String()[1:len(b.String())-1] + `},"a":1}`)
	if oneObject(nested) != errDuplicate {
		t.Fatal("outer duplicate after a large inner object not found")
	}
}

// BenchmarkOneObjectManyMembers is the attacker's header: ~2,700 members
// in 16 KiB.
func BenchmarkOneObjectManyMembers(b *testing.B) {
	var s strings.Builder
	s.WriteString("{")
	for i := 0; s.Len() < 16<<10; i++ {
		if i > 0 {
			s.WriteString(",")
		}
		fmt.Fprintf(&s, `"%x":0`, i)
	}
	s.WriteString("}")
	doc := []byte(s.String())
	b.ReportAllocs()
	for b.Loop() {
		if err := oneObject(doc); err != nil {
			b.Fatal(err)
		}
	}
}

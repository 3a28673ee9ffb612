package config_test

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/jwtauthz/jwt-authz/config"
	configv1 "github.com/jwtauthz/jwt-authz/proto/jwtauthz/config/v1"
)

// dupDoc writes a random config document, one key a line, with at most one
// key repeated in one mapping at any depth, and knows the message that the
// repetition must produce.
type dupDoc struct {
	rnd     *rand.Rand
	lines   []string
	want    string // the expected message; "" when no key was repeated
	wantDup bool   // repeat one key somewhere
}

func (d *dupDoc) line(indent int, s string) int {
	d.lines = append(d.lines, strings.Repeat(" ", indent)+s)
	return len(d.lines)
}

// message writes fields of md at indent; path is the field path so far.
func (d *dupDoc) message(path string, indent, depth int, md protoreflect.MessageDescriptor) {
	if md.FullName() == "google.protobuf.Value" {
		d.freeform(path, indent, depth)
		return
	}
	fields := md.Fields()
	type written struct {
		name string
		fd   protoreflect.FieldDescriptor
		line int
	}
	var done []written
	for _, i := range d.rnd.Perm(fields.Len()) {
		fd := fields.Get(i)
		if d.rnd.IntN(3) == 0 {
			continue
		}
		name := string(fd.Name())
		p := path + "." + name
		if path == "" {
			p = name
		}
		done = append(done, written{name, fd, len(d.lines) + 1})
		d.field(p, indent, depth, fd)
	}
	// The top level is finished last: a repetition not placed deeper
	// lands there.
	d.maybeRepeat(path, indent, len(done), path == "", func(i int) (string, int) {
		w := done[i]
		name := w.name
		if d.rnd.IntN(2) == 0 {
			name = w.fd.JSONName() // the same field under its other name
		}
		return name, w.line
	})
}

// maybeRepeat repeats, now and then (always when forced), one of the n
// keys already written at indent, while a repetition is due.
func (d *dupDoc) maybeRepeat(path string, indent, n int, force bool, pick func(int) (key string, line int)) {
	if !d.wantDup || d.want != "" || n == 0 || !force && d.rnd.IntN(4) != 0 {
		return
	}
	key, first := pick(d.rnd.IntN(n))
	second := d.line(indent, key+": \"again\"")
	p := key
	if path != "" {
		p = path + "." + key
	}
	d.want = fmt.Sprintf("%s: duplicate key (lines %d and %d)", p, first, second)
}

func (d *dupDoc) field(path string, indent, depth int, fd protoreflect.FieldDescriptor) {
	name := string(fd.Name())
	if fd.Kind() != protoreflect.MessageKind {
		v := `"x"`
		if fd.Kind() == protoreflect.BoolKind {
			v = "true"
		}
		if fd.IsList() {
			v = "[" + v + "]"
		}
		d.line(indent, name+": "+v)
		return
	}
	if fd.Message().FullName() == "google.protobuf.Duration" {
		d.line(indent, name+": \"1s\"")
		return
	}
	d.line(indent, name+":")
	if depth > 4 {
		d.line(indent+2, "{}")
		return
	}
	if !fd.IsList() {
		d.message(path, indent+2, depth+1, fd.Message())
		return
	}
	for i := range 1 + d.rnd.IntN(3) {
		d.line(indent, "-")
		d.message(fmt.Sprintf("%s[%d]", path, i), indent+2, depth+1, fd.Message())
	}
}

// freeform writes a claim value: an object with keys of its own.
func (d *dupDoc) freeform(path string, indent, depth int) {
	var keys []string
	var lines []int
	for i := range 1 + d.rnd.IntN(3) {
		k := fmt.Sprintf("k%d", i)
		keys = append(keys, k)
		lines = append(lines, d.line(indent, k+": 1"))
	}
	d.maybeRepeat(path, indent, len(keys), false, func(i int) (string, int) {
		return keys[i], lines[i]
	})
}

// TestDuplicateKeysGenerated holds, over generated documents, that a key
// written twice in any mapping at any depth — under the same name or the
// field's other name — is refused with its path and both lines, and that
// a document with no repeated key never draws the message.
func TestDuplicateKeysGenerated(t *testing.T) {
	t.Parallel()
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	rnd := rand.New(rand.NewPCG(seed, 0))
	md := (&configv1.Config{}).ProtoReflect().Descriptor()
	for i := range 300 {
		d := &dupDoc{rnd: rnd, wantDup: rnd.IntN(4) != 0}
		d.message("", 0, 0, md)
		doc := strings.Join(d.lines, "\n") + "\n"
		_, err := config.Parse([]byte(doc))
		var got []string
		if err != nil {
			for _, m := range messages(err) {
				if strings.Contains(m, "duplicate key") {
					got = append(got, m)
				}
			}
		}
		var want []string
		if d.want != "" {
			want = []string{d.want}
		}
		if !slices.Equal(got, want) {
			t.Fatalf("document %d:\n%s\nduplicate messages %q, want %q", i, doc, got, want)
		}
	}
}

package config

import (
	"fmt"

	yaml3 "go.yaml.in/yaml/v3"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// checkDuplicateKeys reports every key that appears twice in one mapping of
// the document, naming the field path and both lines. The JSON conversion
// keeps only the last value of a repeated key, so without this a second
// `rules:` would silently replace the first.
//
// A key is compared by the field it names, so `claim_headers` and
// `claimHeaders` (protojson accepts both) are duplicates too. Aliases are
// not followed: the mapping an anchor names is checked where it is written.
// A document the YAML v3 parser cannot read is left to the caller's
// parser, which reports it.
func checkDuplicateKeys(errs *fieldErrors, b []byte, md protoreflect.MessageDescriptor) {
	var doc yaml3.Node
	if err := yaml3.Unmarshal(b, &doc); err != nil {
		return
	}
	for _, n := range doc.Content {
		walkDuplicates(errs, "", n, md)
	}
}

// walkDuplicates walks n, whose schema is md (nil inside free-form values
// and unknown fields, where keys are compared as written).
func walkDuplicates(errs *fieldErrors, path string, n *yaml3.Node, md protoreflect.MessageDescriptor) {
	switch n.Kind {
	case yaml3.SequenceNode:
		for i, e := range n.Content {
			walkDuplicates(errs, fmt.Sprintf("%s[%d]", path, i), e, md)
		}
	case yaml3.MappingNode:
		if md != nil && md.FullName() == "google.protobuf.Value" {
			md = nil
		}
		seen := map[string]int{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if k.Kind != yaml3.ScalarNode || k.Tag == "!!merge" {
				continue
			}
			name, child := k.Value, (protoreflect.MessageDescriptor)(nil)
			if md != nil {
				fd := md.Fields().ByName(protoreflect.Name(k.Value))
				if fd == nil {
					fd = md.Fields().ByJSONName(k.Value)
				}
				if fd != nil {
					name = string(fd.Name())
					child = fd.Message()
				}
			}
			p := join(path, k.Value)
			if first, dup := seen[name]; dup {
				errs.add(p, "duplicate key (lines %d and %d)", first, k.Line)
			} else {
				seen[name] = k.Line
			}
			walkDuplicates(errs, p, v, child)
		}
	}
}

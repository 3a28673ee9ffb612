package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestRunRefuses: what would make a release unreproducible or mislabelled is refused before
// anything is built or written.
func TestRunRefuses(t *testing.T) {
	t.Setenv("SOURCE_DATE_EPOCH", "")
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"no epoch", []string{"-version", "0.1.0"}, "source-date-epoch"},
		{"bad epoch", []string{"-version", "0.1.0", "-source-date-epoch", "yesterday"}, "Unix seconds"},
		{"negative epoch", []string{"-version", "0.1.0", "-source-date-epoch", "-5"}, "Unix seconds"},
		{"no version", []string{"-source-date-epoch", "1"}, "not MAJOR.MINOR.PATCH"},
		{"dirty", []string{"-version", "0.1.0-dirty", "-source-date-epoch", "1"}, "dirty"},
		{"git describe", []string{"-version", "v0.1.0-2-gabcdef", "-source-date-epoch", "1"}, "not MAJOR.MINOR.PATCH"},
		{"bad platform", []string{"-version", "0.1.0", "-source-date-epoch", "1", "-platforms", "linux"}, "want os/arch"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "dist")
			var stdout, stderr bytes.Buffer
			code := run(t.Context(), append([]string{"-out", out}, tc.args...), &stdout, &stderr)
			if code != 2 || !strings.Contains(stderr.String(), tc.want) {
				t.Errorf("exit %d, stderr %q; want 2 and %q", code, stderr.String(), tc.want)
			}
			if _, err := os.Stat(out); !os.IsNotExist(err) {
				t.Errorf("%s written for a refused release (%v)", out, err)
			}
		})
	}
}

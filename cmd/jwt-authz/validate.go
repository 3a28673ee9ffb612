package main

import (
	"errors"
	"fmt"
	"io"

	"github.com/jwtauthz/jwt-authz/config"
)

// validate prints every problem of a config file, each with its field
// path, and exits 1; or exits 0 when the file is valid.
func validate(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("validate", stdout, stderr)
	path := fs.String("config", "", "config file (YAML)")
	if code, ok := fs.parse(args); !ok {
		return code
	}
	if *path == "" {
		fmt.Fprintln(stderr, "jwt-authz validate: -config is required")
		return 2
	}
	if _, err := config.Load(*path); err != nil {
		for _, e := range unjoin(err) {
			fmt.Fprintln(stderr, e)
		}
		return 1
	}
	fmt.Fprintf(stdout, "%s: ok\n", *path)
	return 0
}

// unjoin splits an errors.Join result into its parts.
func unjoin(err error) []error {
	var j interface{ Unwrap() []error }
	if errors.As(err, &j) {
		return j.Unwrap()
	}
	return []error{err}
}

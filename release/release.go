// Package release owns how jwt-authz is shipped: static binaries stamped with the version, tar.gz
// archives with deterministic headers, the SHA256SUMS file, the CycloneDX SBOM and an OCI image
// written as a tarball without a Docker daemon.
//
// It is a module of its own so that the server's go.mod does not carry go-containerregistry or the
// SBOM tool. Every artefact is a function of the source tree, the Go toolchain, the version, the
// revision and one timestamp (SOURCE_DATE_EPOCH): two builds of one commit, in any two directories,
// are byte for byte the same. Nothing here keeps state; functions are safe to call concurrently as
// long as they write to different paths.
package release

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strings"
)

// Platform is a GOOS/GOARCH pair that jwt-authz is released for.
type Platform struct {
	OS   string
	Arch string
}

func (p Platform) String() string { return p.OS + "/" + p.Arch }

// Platforms are the release targets, in the order they are built.
var Platforms = []Platform{{"linux", "amd64"}, {"linux", "arm64"}, {"darwin", "arm64"}}

// ParsePlatform reads "os/arch".
func ParsePlatform(s string) (Platform, error) {
	osName, arch, ok := strings.Cut(s, "/")
	if !ok || osName == "" || arch == "" {
		return Platform{}, fmt.Errorf("release: platform %q: want os/arch", s)
	}
	return Platform{OS: osName, Arch: arch}, nil
}

// versionPattern is semantic versioning without a leading v (the VERSION file holds "0.1.0").
var versionPattern = regexp.MustCompile(`^\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$`)

// CheckVersion refuses what must never be released: an empty or non-semver version, or one that says
// the tree was dirty.
func CheckVersion(v string) error {
	if !versionPattern.MatchString(v) {
		return fmt.Errorf("release: version %q is not MAJOR.MINOR.PATCH[-PRE]", v)
	}
	if strings.Contains(v, "dirty") {
		return fmt.Errorf("release: version %q says the tree was dirty", v)
	}
	return nil
}

// LDFlags are the linker flags of every jwt-authz build: no symbol table or DWARF (smaller, and no
// build paths), and the version and revision that `jwt-authz version` and jwt_authz_build_info show.
// The Makefile's build target passes the same flags.
func LDFlags(version, revision string) string {
	return fmt.Sprintf("-s -w -X main.version=%s -X main.revision=%s", version, revision)
}

// BuildOptions say what Build builds.
type BuildOptions struct {
	// Root is the directory of the jwt-authz module (the repository root). Required.
	Root string
	// Version is stamped into main.version. Required.
	Version string
	// Revision is stamped into main.revision; empty when unknown.
	Revision string
	// Platform is the target; the zero value is linux/amd64.
	Platform Platform
	// Out is the path of the binary to write. Required.
	Out string
	// Go is the go command; empty means "go" from PATH.
	Go string
}

// Build compiles cmd/jwt-authz as a static, reproducible binary: cgo off, -trimpath (no directory of
// the build host in the binary), no VCS stamping (a copy of the tree without .git builds the same
// bytes), and the microarchitecture levels pinned so that a GOAMD64 or GOARM64 in the caller's
// environment cannot change the output.
func Build(ctx context.Context, o BuildOptions) error {
	if o.Root == "" || o.Out == "" || o.Version == "" {
		return errors.New("release: build: Root, Out and Version are required")
	}
	p := o.Platform
	if p == (Platform{}) {
		p = Platform{"linux", "amd64"}
	}
	goCmd := o.Go
	if goCmd == "" {
		goCmd = "go"
	}
	cmd := exec.CommandContext(ctx, goCmd, "build", "-trimpath", "-buildvcs=false",
		"-ldflags", LDFlags(o.Version, o.Revision), "-o", o.Out, "./cmd/jwt-authz")
	cmd.Dir = o.Root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS="+p.OS, "GOARCH="+p.Arch,
		"GOAMD64=v1", "GOARM64=v8.0", "GOFLAGS=-mod=readonly", "GOEXPERIMENT=")
	cmd.Stdout = os.Stderr
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("release: build %s: %w", p, err)
	}
	return nil
}

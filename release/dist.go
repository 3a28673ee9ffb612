package release

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"time"
)

// DistOptions say what Dist writes.
type DistOptions struct {
	// Root is the jwt-authz repository (holding go.mod, LICENSE, README.md). Required.
	Root string
	// Out is the directory the artefacts go to; it is emptied first. Required.
	Out string
	// Version, Revision: see BuildOptions. Version must pass CheckVersion.
	Version, Revision string
	// Source is the repository URL for the image's source label.
	Source string
	// Epoch is every archive entry's and the image's time (SOURCE_DATE_EPOCH).
	Epoch time.Time
	// Platforms to build; nil means Platforms.
	Platforms []Platform
	// ImageRepo names the image in its tarball: ImageRepo:Version. Empty means "jwt-authz".
	ImageRepo string
	// SBOM, when set, runs the SBOM tool for each binary (see SBOM). Tests leave it off.
	SBOM bool
	// Go is the go command; empty means "go".
	Go string
}

// ImageFile is the name of the image tarball in the release directory.
func ImageFile(version string) string { return "jwt-authz-" + version + "-image.tar" }

// Dist builds the whole release into o.Out: per platform a binary inside
// jwt-authz-VERSION-OS-ARCH.tar.gz (with LICENSE and README.md) and, with SBOM, its CycloneDX SBOM
// jwt-authz-VERSION-OS-ARCH.cdx.json; the linux/amd64 image tarball; and SHA256SUMS over all of them.
func Dist(ctx context.Context, o DistOptions) error {
	if err := CheckVersion(o.Version); err != nil {
		return err
	}
	if o.Root == "" || o.Out == "" {
		return errors.New("release: dist: Root and Out are required")
	}
	if err := os.RemoveAll(o.Out); err != nil {
		return fmt.Errorf("release: dist: %w", err)
	}
	if err := os.MkdirAll(o.Out, 0o755); err != nil {
		return fmt.Errorf("release: dist: %w", err)
	}
	work, err := os.MkdirTemp("", "jwt-authz-release-")
	if err != nil {
		return fmt.Errorf("release: dist: %w", err)
	}
	defer os.RemoveAll(work)

	platforms := o.Platforms
	if platforms == nil {
		platforms = Platforms
	}
	var written []string
	for _, p := range platforms {
		base := fmt.Sprintf("jwt-authz-%s-%s-%s", o.Version, p.OS, p.Arch)
		bin := filepath.Join(work, base, "jwt-authz")
		if err := Build(ctx, BuildOptions{Root: o.Root, Version: o.Version, Revision: o.Revision,
			Platform: p, Out: bin, Go: o.Go}); err != nil {
			return err
		}
		archive := base + ".tar.gz"
		if err := WriteArchive(filepath.Join(o.Out, archive), []ArchiveFile{
			{Name: base + "/jwt-authz", Source: bin, Mode: 0o755},
			{Name: base + "/LICENSE", Source: filepath.Join(o.Root, "LICENSE"), Mode: 0o644},
			{Name: base + "/README.md", Source: filepath.Join(o.Root, "README.md"), Mode: 0o644},
		}, o.Epoch); err != nil {
			return err
		}
		written = append(written, archive)
		if o.SBOM {
			sbom := base + ".cdx.json"
			if err := SBOM(ctx, o.Go, bin, o.Version, filepath.Join(o.Out, sbom)); err != nil {
				return err
			}
			written = append(written, sbom)
		}
		if p == (Platform{"linux", "amd64"}) {
			img, err := Image(ImageOptions{Binary: bin, Platform: p, Version: o.Version, Revision: o.Revision,
				Source: o.Source, Created: o.Epoch})
			if err != nil {
				return err
			}
			repo := o.ImageRepo
			if repo == "" {
				repo = "jwt-authz"
			}
			if err := WriteImage(filepath.Join(o.Out, ImageFile(o.Version)), repo+":"+o.Version, img); err != nil {
				return err
			}
			written = append(written, ImageFile(o.Version))
		}
	}
	return WriteChecksums(o.Out, written)
}

// SBOM writes a CycloneDX JSON SBOM of binary to out with cyclonedx-gomod, pinned by the tool
// directive of this module's go.mod, so it must run with this module as the working directory (as
// `make release` does). The SBOM is read from the binary's embedded build information, so it lists
// exactly the modules linked in. No serial number and no timestamp, so that it is reproducible;
// GOPROXY=off keeps the licence detection to the module cache the build just filled.
func SBOM(ctx context.Context, goCmd, binary, version, out string) error {
	if goCmd == "" {
		goCmd = "go"
	}
	cmd := exec.CommandContext(ctx, goCmd, "tool", "cyclonedx-gomod", "bin", "-json", "-licenses",
		"-noserial", "-notimestamp", "-version", "v"+version, "-output", out, binary)
	cmd.Env = append(os.Environ(), "GOPROXY=off")
	if output, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("release: sbom: %w\n%s", err, output)
	}
	return nil
}

// Command release builds jwt-authz's release artefacts (see package release): `make release` and
// `make image` run it from the release/ module directory.
//
//	release -root .. -out ../dist -version 0.1.0 [-revision SHA] [-source-date-epoch N] [-image-only]
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/jwtauthz/jwt-authz/release"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("release", flag.ContinueOnError)
	fs.SetOutput(stderr)
	root := fs.String("root", "..", "the jwt-authz repository")
	out := fs.String("out", "../dist", "where the artefacts go (emptied first, except with -image-only)")
	version := fs.String("version", "", "the version to stamp (the VERSION file)")
	revision := fs.String("revision", "", "the git commit to stamp; empty when unknown")
	source := fs.String("source", "https://github.com/jwtauthz/jwt-authz", "the image's source label")
	epoch := fs.String("source-date-epoch", os.Getenv("SOURCE_DATE_EPOCH"), "Unix time of every file and of the image (the last commit's)")
	platforms := fs.String("platforms", "", "comma-separated os/arch list; empty means linux/amd64,linux/arm64,darwin/arm64")
	imageRepo := fs.String("image-repo", "jwt-authz", "the image's name in its tarball")
	imageOnly := fs.Bool("image-only", false, "build only the linux/amd64 image tarball")
	sbom := fs.Bool("sbom", true, "write a CycloneDX SBOM per platform")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *epoch == "" {
		fmt.Fprintln(stderr, "release: -source-date-epoch (or SOURCE_DATE_EPOCH) is required: reproducible builds need a fixed time")
		return 2
	}
	sec, err := strconv.ParseInt(*epoch, 10, 64)
	if err != nil || sec < 0 {
		fmt.Fprintf(stderr, "release: source date epoch %q: want Unix seconds\n", *epoch)
		return 2
	}
	created := time.Unix(sec, 0).UTC()
	if err := release.CheckVersion(*version); err != nil {
		fmt.Fprintln(stderr, err)
		return 2
	}
	if *imageOnly {
		err = image(ctx, *root, *out, *version, *revision, *source, *imageRepo, created)
	} else {
		var ps []release.Platform
		for s := range strings.SplitSeq(*platforms, ",") {
			if s == "" {
				continue
			}
			p, perr := release.ParsePlatform(s)
			if perr != nil {
				fmt.Fprintln(stderr, perr)
				return 2
			}
			ps = append(ps, p)
		}
		err = release.Dist(ctx, release.DistOptions{Root: *root, Out: *out, Version: *version, Revision: *revision,
			Source: *source, Epoch: created, Platforms: ps, ImageRepo: *imageRepo, SBOM: *sbom})
	}
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	fmt.Fprintf(stdout, "release: wrote %s\n", *out)
	return 0
}

func image(ctx context.Context, root, out, version, revision, source, repo string, created time.Time) error {
	work, err := os.MkdirTemp("", "jwt-authz-image-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	bin := filepath.Join(work, "jwt-authz")
	if err := release.Build(ctx, release.BuildOptions{Root: root, Version: version, Revision: revision, Out: bin}); err != nil {
		return err
	}
	img, err := release.Image(release.ImageOptions{Binary: bin, Version: version, Revision: revision,
		Source: source, Created: created})
	if err != nil {
		return err
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	return release.WriteImage(filepath.Join(out, release.ImageFile(version)), repo+":"+version, img)
}

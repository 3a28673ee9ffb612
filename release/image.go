package release

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// The image's fixed shape. Its user is distroless's "nonroot" (65532), numeric because the image
// has no /etc/passwd; the default command is the config path the Helm chart and the kustomize base
// mount.
const (
	ImageBinary = "jwt-authz"
	ImageUser   = "65532:65532"
)

var (
	// ImageEntrypoint makes `docker run IMAGE ARGS` run `jwt-authz ARGS`.
	ImageEntrypoint = []string{"/" + ImageBinary}
	// ImageCmd is what runs without ARGS: the server.
	ImageCmd = []string{"serve", "-config", "/etc/jwt-authz/config.yaml"}
)

// ImageOptions say what Image puts into the image.
type ImageOptions struct {
	// Binary is a static linux jwt-authz (see Build). Required.
	Binary string
	// Platform is the binary's platform; the zero value is linux/amd64.
	Platform Platform
	// Version, Revision and Source fill the org.opencontainers.image labels; Version is required,
	// an empty Revision leaves its label out.
	Version, Revision, Source string
	// Created is the image's creation time, also every file's mtime: SOURCE_DATE_EPOCH, never now.
	Created time.Time
}

// Image assembles the runtime image on an empty base: one layer holding /jwt-authz (owner root,
// mode 0755, so the non-root user cannot replace it) and nothing else. HTTPS roots are compiled into
// the binary (golang.org/x/crypto/x509roots/fallback), so no CA bundle or shell is needed. Manifest,
// config and layer use the OCI media types.
func Image(o ImageOptions) (v1.Image, error) {
	if o.Binary == "" || o.Version == "" {
		return nil, errors.New("release: image: Binary and Version are required")
	}
	p := o.Platform
	if p == (Platform{}) {
		p = Platform{"linux", "amd64"}
	}
	if p.OS != "linux" {
		return nil, fmt.Errorf("release: image: platform %s: images are linux only", p)
	}
	created := o.Created.UTC().Truncate(time.Second)
	var layerTar bytes.Buffer
	if err := writeTar(&layerTar, []ArchiveFile{{Name: ImageBinary, Source: o.Binary, Mode: 0o755}}, created); err != nil {
		return nil, fmt.Errorf("release: image: %w", err)
	}
	layerBytes := layerTar.Bytes()
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(layerBytes)), nil
	}, tarball.WithMediaType(types.OCILayer), tarball.WithCompressedCaching)
	if err != nil {
		return nil, fmt.Errorf("release: image: layer: %w", err)
	}

	labels := map[string]string{
		"org.opencontainers.image.title":       "jwt-authz",
		"org.opencontainers.image.description": "Envoy ext_authz gRPC server that verifies OAuth2 bearer JWTs",
		"org.opencontainers.image.version":     o.Version,
		"org.opencontainers.image.licenses":    "Apache-2.0",
		"org.opencontainers.image.created":     created.Format(time.RFC3339),
	}
	if o.Source != "" {
		labels["org.opencontainers.image.source"] = o.Source
	}
	if o.Revision != "" {
		labels["org.opencontainers.image.revision"] = o.Revision
	}
	base := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	base = mutate.ConfigMediaType(base, types.OCIConfigJSON)
	base, err = mutate.ConfigFile(base, &v1.ConfigFile{
		Architecture: p.Arch,
		OS:           p.OS,
		Created:      v1.Time{Time: created},
		RootFS:       v1.RootFS{Type: "layers"},
		Config: v1.Config{
			User:       ImageUser,
			Entrypoint: ImageEntrypoint,
			Cmd:        ImageCmd,
			WorkingDir: "/",
			Labels:     labels,
			// 9001 ext_authz gRPC, 9090 /metrics /healthz /readyz.
			ExposedPorts: map[string]struct{}{"9001/tcp": {}, "9090/tcp": {}},
		},
	})
	if err != nil {
		return nil, fmt.Errorf("release: image: config: %w", err)
	}
	img, err := mutate.Append(base, mutate.Addendum{
		Layer:     layer,
		MediaType: types.OCILayer,
		History: v1.History{
			Created:   v1.Time{Time: created},
			CreatedBy: "jwt-authz release: COPY jwt-authz /jwt-authz",
			Comment:   "static jwt-authz " + o.Version,
		},
	})
	if err != nil {
		return nil, fmt.Errorf("release: image: %w", err)
	}
	return img, nil
}

// WriteImage writes img as a tarball that `docker load` (and `podman load`) read, tagged ref
// (for example "jwt-authz:0.1.0").
func WriteImage(out, ref string, img v1.Image) error {
	tag, err := name.NewTag(ref)
	if err != nil {
		return fmt.Errorf("release: image: tag %q: %w", ref, err)
	}
	if err := tarball.WriteToFile(out, tag, img); err != nil {
		return fmt.Errorf("release: image: write %s: %w", out, err)
	}
	return nil
}

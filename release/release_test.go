package release

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

const (
	testVersion  = "0.1.0-test"
	testRevision = "0123456789abcdef0123456789abcdef01234567"
)

var testEpoch = time.Date(2026, 11, 30, 12, 34, 56, 0, time.UTC)

// repoRoot is the jwt-authz module this module sits in.
func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "cmd", "jwt-authz")); err != nil {
		t.Fatalf("no jwt-authz module above release/: %v", err)
	}
	return root
}

var (
	binaryOnce sync.Once
	binaryPath string
	binaryErr  error
)

// linuxBinary builds jwt-authz for linux/amd64 once for all tests, with the real Build.
func linuxBinary(t *testing.T) string {
	t.Helper()
	if runtime.GOOS != "linux" || runtime.GOARCH != "amd64" {
		t.Skipf("the tests run the linux/amd64 binary; this is %s/%s", runtime.GOOS, runtime.GOARCH)
	}
	binaryOnce.Do(func() {
		dir, err := os.MkdirTemp("", "jwt-authz-release-test-")
		if err != nil {
			binaryErr = err
			return
		}
		binaryPath = filepath.Join(dir, "jwt-authz")
		binaryErr = Build(t.Context(), BuildOptions{Root: repoRoot(t), Version: testVersion,
			Revision: testRevision, Out: binaryPath})
	})
	if binaryErr != nil {
		t.Fatal(binaryErr)
	}
	return binaryPath
}

func TestMain(m *testing.M) {
	code := m.Run()
	if binaryPath != "" {
		os.RemoveAll(filepath.Dir(binaryPath))
	}
	os.Exit(code)
}

// tarEntry is what a test asserts of one tar header.
type tarEntry struct {
	Name     string
	Type     byte
	Mode     int64
	UID, GID int
	Uname    string
	Gname    string
	ModTime  time.Time
	Size     int64
}

func readTar(t *testing.T, r io.Reader) ([]tarEntry, map[string][]byte) {
	t.Helper()
	tr := tar.NewReader(r)
	var entries []tarEntry
	contents := map[string][]byte{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return entries, contents
		}
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		entries = append(entries, tarEntry{Name: h.Name, Type: h.Typeflag, Mode: h.Mode, UID: h.Uid, GID: h.Gid,
			Uname: h.Uname, Gname: h.Gname, ModTime: h.ModTime.UTC(), Size: h.Size})
		contents[h.Name] = b
	}
}

func runVersion(t *testing.T, bin string) string {
	t.Helper()
	out, err := exec.CommandContext(t.Context(), bin, "version").CombinedOutput()
	if err != nil {
		t.Fatalf("%s version: %v\n%s", bin, err, out)
	}
	return string(out)
}

func wantVersionLine() string {
	return fmt.Sprintf("jwt-authz %s %s %s\n", testVersion, runtime.Version(), testRevision)
}

func TestImage(t *testing.T) {
	t.Parallel()
	bin := linuxBinary(t)
	img, err := Image(ImageOptions{Binary: bin, Version: testVersion, Revision: testRevision,
		Source: "https://github.com/jwtauthz/jwt-authz", Created: testEpoch})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), ImageFile(testVersion))
	if err := WriteImage(path, "jwt-authz:"+testVersion, img); err != nil {
		t.Fatal(err)
	}

	// What `docker load` reads: manifest.json names the tag, config and layers.
	m, err := tarball.LoadManifest(func() (io.ReadCloser, error) { return os.Open(path) })
	if err != nil {
		t.Fatal(err)
	}
	if len(m) != 1 || !slices.Equal(m[0].RepoTags, []string{"jwt-authz:" + testVersion}) {
		t.Errorf("manifest.json = %+v, want one image tagged jwt-authz:%s", m, testVersion)
	}

	loaded, err := tarball.ImageFromPath(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	cf, err := loaded.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if cf.OS != "linux" || cf.Architecture != "amd64" {
		t.Errorf("platform %s/%s, want linux/amd64", cf.OS, cf.Architecture)
	}
	if !cf.Created.Time.Equal(testEpoch) {
		t.Errorf("created %v, want %v (SOURCE_DATE_EPOCH, never the build time)", cf.Created.Time, testEpoch)
	}
	if cf.Config.User != "65532:65532" {
		t.Errorf("user %q, want 65532:65532", cf.Config.User)
	}
	if diff := cmp.Diff([]string{"/jwt-authz"}, cf.Config.Entrypoint); diff != "" {
		t.Errorf("entrypoint (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"serve", "-config", "/etc/jwt-authz/config.yaml"}, cf.Config.Cmd); diff != "" {
		t.Errorf("cmd (-want +got):\n%s", diff)
	}
	if len(cf.Config.Env) != 0 || cf.Config.Shell != nil || cf.Config.Healthcheck != nil {
		t.Errorf("env %q, shell %q, healthcheck %v: want none", cf.Config.Env, cf.Config.Shell, cf.Config.Healthcheck)
	}
	wantLabels := map[string]string{
		"org.opencontainers.image.title":       "jwt-authz",
		"org.opencontainers.image.description": "Envoy ext_authz gRPC server that verifies OAuth2 bearer JWTs",
		"org.opencontainers.image.source":      "https://github.com/jwtauthz/jwt-authz",
		"org.opencontainers.image.version":     testVersion,
		"org.opencontainers.image.revision":    testRevision,
		"org.opencontainers.image.licenses":    "Apache-2.0",
		"org.opencontainers.image.created":     "2026-11-30T12:34:56Z",
	}
	if diff := cmp.Diff(wantLabels, cf.Config.Labels); diff != "" {
		t.Errorf("labels (-want +got):\n%s", diff)
	}
	for _, h := range cf.History {
		if !h.Created.Time.Equal(testEpoch) {
			t.Errorf("history %q created %v, want %v", h.CreatedBy, h.Created.Time, testEpoch)
		}
	}

	// The docker-archive format keeps no media types (a reader assumes Docker's); the image as
	// built, which `crane push` or an OCI layout writer would use, is OCI throughout.
	mt, err := img.MediaType()
	if err != nil || mt != types.OCIManifestSchema1 {
		t.Errorf("manifest media type %q (%v), want %q", mt, err, types.OCIManifestSchema1)
	}
	if mf, err := img.Manifest(); err != nil || mf.Config.MediaType != types.OCIConfigJSON ||
		len(mf.Layers) != 1 || mf.Layers[0].MediaType != types.OCILayer {
		t.Errorf("manifest %+v (%v): want an OCI config and one OCI layer", mf, err)
	}
	layers, err := loaded.Layers()
	if err != nil {
		t.Fatal(err)
	}
	if len(layers) != 1 {
		t.Fatalf("%d layers, want 1", len(layers))
	}
	rc, err := layers[0].Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	entries, contents := readTar(t, rc)
	st, err := os.Stat(bin)
	if err != nil {
		t.Fatal(err)
	}
	// Nothing but the program: no shell, no passwd, no CA bundle (the roots are in the binary).
	wantEntries := []tarEntry{{Name: "jwt-authz", Type: tar.TypeReg, Mode: 0o755, ModTime: testEpoch, Size: st.Size()}}
	if diff := cmp.Diff(wantEntries, entries); diff != "" {
		t.Errorf("layer files (-want +got):\n%s", diff)
	}

	// The binary taken out of the image reports the version it was stamped with.
	extracted := filepath.Join(t.TempDir(), "jwt-authz")
	if err := os.WriteFile(extracted, contents["jwt-authz"], 0o755); err != nil {
		t.Fatal(err)
	}
	if got, want := runVersion(t, extracted), wantVersionLine(); got != want {
		t.Errorf("jwt-authz version from the image = %q, want %q", got, want)
	}
}

// TestImageReproducible: the image's digest and tarball bytes depend on the binary's bytes and
// the options only, not on where the binary lies or its file time and mode.
func TestImageReproducible(t *testing.T) {
	t.Parallel()
	// Any bytes do: what is promised is that only the bytes count. A small file keeps the test fast
	// under the race detector.
	data := make([]byte, 256<<10)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range data {
		data[i] = byte(rng.UintN(256))
	}
	bin := filepath.Join(t.TempDir(), "jwt-authz")
	if err := os.WriteFile(bin, data, 0o755); err != nil {
		t.Fatal(err)
	}
	copyPath := filepath.Join(t.TempDir(), "elsewhere", "jwt-authz")
	if err := os.MkdirAll(filepath.Dir(copyPath), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(copyPath, data, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(copyPath, time.Unix(1, 0), time.Unix(1, 0)); err != nil {
		t.Fatal(err)
	}
	var files [][]byte
	var digests []string
	for i, b := range []string{bin, copyPath} {
		img, err := Image(ImageOptions{Binary: b, Version: testVersion, Revision: testRevision, Created: testEpoch})
		if err != nil {
			t.Fatal(err)
		}
		d, err := img.Digest()
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(t.TempDir(), fmt.Sprintf("image-%d.tar", i))
		if err := WriteImage(p, "jwt-authz:"+testVersion, img); err != nil {
			t.Fatal(err)
		}
		f, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		digests = append(digests, d.String())
		files = append(files, f)
	}
	if digests[0] != digests[1] || !bytes.Equal(files[0], files[1]) {
		t.Errorf("two images of one binary differ: digests %q", digests)
	}
}

func TestImageRefusesOtherOS(t *testing.T) {
	t.Parallel()
	_, err := Image(ImageOptions{Binary: "x", Version: "1.0.0", Platform: Platform{"darwin", "arm64"}})
	if err == nil || !strings.Contains(err.Error(), "linux only") {
		t.Errorf("darwin image: err %v, want linux only", err)
	}
}

// TestArchiveDeterministic is the reproducibility promise as a property: for generated file sets,
// the archive's bytes do not depend on the order the files are given in, on the source files'
// modes, times or directories, and every header is owner 0:0 at the fixed time.
func TestArchiveDeterministic(t *testing.T) {
	t.Parallel()
	seed := uint64(20261202) // fixed, so a failure replays; change it to explore other inputs
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 0x5eed))
	for iter := range 40 {
		n := 1 + rng.IntN(6)
		type spec struct {
			name string
			data []byte
			mode int64
		}
		var specs []spec
		seen := map[string]bool{}
		for len(specs) < n {
			name := fmt.Sprintf("pkg-%d/", iter)
			for range rng.IntN(3) {
				name += fmt.Sprintf("d%d/", rng.IntN(3))
			}
			name += fmt.Sprintf("f%d", rng.IntN(1000))
			if seen[name] {
				continue
			}
			seen[name] = true
			data := make([]byte, rng.IntN(3000))
			for i := range data {
				data[i] = byte(rng.UintN(256))
			}
			specs = append(specs, spec{name, data, []int64{0o644, 0o755}[rng.IntN(2)]})
		}
		var archives [][]byte
		for copyN := range 2 {
			dir := t.TempDir()
			var files []ArchiveFile
			for i, s := range specs {
				src := filepath.Join(dir, fmt.Sprint(i))
				if err := os.WriteFile(src, s.data, []os.FileMode{0o600, 0o777}[copyN]); err != nil {
					t.Fatal(err)
				}
				mt := time.Unix(int64(rng.IntN(1<<30)), 0)
				if err := os.Chtimes(src, mt, mt); err != nil {
					t.Fatal(err)
				}
				files = append(files, ArchiveFile{Name: s.name, Source: src, Mode: s.mode})
			}
			rng.Shuffle(len(files), func(i, j int) { files[i], files[j] = files[j], files[i] })
			out := filepath.Join(dir, "out.tar.gz")
			if err := WriteArchive(out, files, testEpoch); err != nil {
				t.Fatal(err)
			}
			b, err := os.ReadFile(out)
			if err != nil {
				t.Fatal(err)
			}
			archives = append(archives, b)
		}
		if !bytes.Equal(archives[0], archives[1]) {
			t.Fatalf("iteration %d: two archives of the same files differ", iter)
		}
		zr, err := gzip.NewReader(bytes.NewReader(archives[0]))
		if err != nil {
			t.Fatal(err)
		}
		if zr.Name != "" || !zr.ModTime.IsZero() {
			t.Errorf("gzip header name %q time %v, want none", zr.Name, zr.ModTime)
		}
		entries, contents := readTar(t, zr)
		names := make([]string, len(entries))
		for i, e := range entries {
			names[i] = e.Name
			if e.UID != 0 || e.GID != 0 || e.Uname != "" || e.Gname != "" || !e.ModTime.Equal(testEpoch) {
				t.Errorf("entry %+v: want owner 0:0, no names, time %v", e, testEpoch)
			}
		}
		if !slices.IsSorted(names) {
			t.Errorf("entries not sorted: %q", names)
		}
		for _, s := range specs {
			if !bytes.Equal(contents[s.name], s.data) {
				t.Errorf("%s: content differs", s.name)
			}
			i := slices.Index(names, s.name)
			if i < 0 || entries[i].Mode != s.mode {
				t.Errorf("%s: missing or mode differs: %+v", s.name, entries)
			}
			for _, d := range parents(s.name) {
				if !slices.Contains(names, d+"/") {
					t.Errorf("%s: parent %s/ not listed", s.name, d)
				}
			}
		}
	}
}

func TestArchiveRefusesBadNames(t *testing.T) {
	t.Parallel()
	src := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(src, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		files []string
	}{
		{"parent", []string{"../etc/passwd"}},
		{"absolute", []string{"/etc/passwd"}},
		{"unclean", []string{"a//b"}},
		{"dot", []string{"a/./b"}},
		{"empty", []string{""}},
		{"twice", []string{"a", "a"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var files []ArchiveFile
			for _, n := range tc.files {
				files = append(files, ArchiveFile{Name: n, Source: src, Mode: 0o644})
			}
			if err := WriteArchive(filepath.Join(t.TempDir(), "a.tar.gz"), files, testEpoch); err == nil {
				t.Errorf("names %q accepted", tc.files)
			}
		})
	}
}

func TestCheckVersion(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		version string
		ok      bool
	}{
		{"0.1.0", true},
		{"1.2.3-rc.1", true},
		{"1.2.3+build.5", true},
		{"", false},
		{"dev", false},
		{"v0.1.0", false},
		{"0.1", false},
		{"0.1.0-dirty", false},
		{"0.1.0-3-gabcdef-dirty", false},
		{"0.1.0 ", false},
		{"0.1.0\n-X main.revision=evil", false},
	} {
		if err := CheckVersion(tc.version); (err == nil) != tc.ok {
			t.Errorf("CheckVersion(%q) = %v, want ok=%v", tc.version, err, tc.ok)
		}
	}
}

// TestDist runs the release for linux/amd64 (the SBOM is left to make release: compiling its
// tool would double this test's time) and checks every artefact and the checksums with sha256sum.
func TestDist(t *testing.T) {
	t.Parallel()
	linuxBinary(t) // skips on other hosts
	root := repoRoot(t)
	out := filepath.Join(t.TempDir(), "dist")
	// A stale file from an earlier release must not survive into this one.
	if err := os.MkdirAll(out, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(out, "stale"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := Dist(t.Context(), DistOptions{Root: root, Out: out, Version: testVersion, Revision: testRevision,
		Epoch: testEpoch, Platforms: []Platform{{"linux", "amd64"}}}); err != nil {
		t.Fatal(err)
	}
	ents, err := os.ReadDir(out)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	archive := "jwt-authz-" + testVersion + "-linux-amd64.tar.gz"
	wantNames := []string{"SHA256SUMS", ImageFile(testVersion), archive}
	if diff := cmp.Diff(wantNames, names); diff != "" {
		t.Errorf("dist files (-want +got):\n%s", diff)
	}
	sums, err := os.ReadFile(filepath.Join(out, "SHA256SUMS"))
	if err != nil {
		t.Fatal(err)
	}
	if lines := strings.Split(strings.TrimSpace(string(sums)), "\n"); len(lines) != 2 ||
		!strings.HasSuffix(lines[0], "  "+ImageFile(testVersion)) || !strings.HasSuffix(lines[1], "  "+archive) {
		t.Errorf("SHA256SUMS =\n%s\nwant the archive and the image, sorted", sums)
	}
	if sha, err := exec.LookPath("sha256sum"); err == nil {
		cmd := exec.CommandContext(t.Context(), sha, "-c", "SHA256SUMS")
		cmd.Dir = out
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("sha256sum -c: %v\n%s", err, b)
		}
	}

	f, err := os.Open(filepath.Join(out, archive))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	entries, contents := readTar(t, zr)
	prefix := "jwt-authz-" + testVersion + "-linux-amd64/"
	var got []string
	for _, e := range entries {
		got = append(got, fmt.Sprintf("%s %o", e.Name, e.Mode))
	}
	want := []string{prefix + " 755", prefix + "LICENSE 644", prefix + "README.md 644", prefix + "jwt-authz 755"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("archive entries (-want +got):\n%s", diff)
	}
	license, err := os.ReadFile(filepath.Join(root, "LICENSE"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(contents[prefix+"LICENSE"], license) || !bytes.Contains(license, []byte("Apache License")) {
		t.Error("archive LICENSE is not the repository's Apache-2.0 LICENSE")
	}
	bin := filepath.Join(t.TempDir(), "jwt-authz")
	if err := os.WriteFile(bin, contents[prefix+"jwt-authz"], 0o755); err != nil {
		t.Fatal(err)
	}
	if got, want := runVersion(t, bin), wantVersionLine(); got != want {
		t.Errorf("jwt-authz version from the archive = %q, want %q", got, want)
	}
}

func TestDistRefusesDirtyVersion(t *testing.T) {
	t.Parallel()
	out := filepath.Join(t.TempDir(), "dist")
	err := Dist(t.Context(), DistOptions{Root: "..", Out: out, Version: "0.1.0-dirty", Epoch: testEpoch})
	if err == nil || !strings.Contains(err.Error(), "dirty") {
		t.Errorf("err %v, want a refusal naming dirty", err)
	}
	if _, serr := os.Stat(out); !os.IsNotExist(serr) {
		t.Errorf("dist directory created for a refused release: %v", serr)
	}
}

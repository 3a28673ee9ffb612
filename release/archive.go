package release

import (
	"archive/tar"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// ArchiveFile is one file put into an archive or an image layer.
type ArchiveFile struct {
	// Name is the path inside the archive, slash-separated.
	Name string
	// Source is the file on disk whose bytes are copied.
	Source string
	// Mode is the permission bits written (0o755 for programs, 0o644 for text).
	Mode int64
}

// writeTar writes files as a tar stream whose headers depend on nothing but the names, the modes,
// the contents and mtime: entries sorted by name, every parent directory listed once before its
// files, owner 0:0 with no user or group names, one fixed modification time, USTAR format (no PAX
// records with access times). The host's umask, owner and file times never reach the output.
func writeTar(w io.Writer, files []ArchiveFile, mtime time.Time) error {
	files = slices.Clone(files)
	slices.SortFunc(files, func(a, b ArchiveFile) int { return strings.Compare(a.Name, b.Name) })
	tw := tar.NewWriter(w)
	mtime = mtime.UTC().Truncate(time.Second)
	dirs := map[string]bool{}
	for i, f := range files {
		if i > 0 && files[i-1].Name == f.Name {
			return fmt.Errorf("release: archive: %q listed twice", f.Name)
		}
		if f.Name == "" || path.IsAbs(f.Name) || path.Clean(f.Name) != f.Name || strings.HasPrefix(f.Name, "../") {
			return fmt.Errorf("release: archive: bad name %q", f.Name)
		}
		for _, d := range parents(f.Name) {
			if dirs[d] {
				continue
			}
			dirs[d] = true
			if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d + "/", Mode: 0o755,
				ModTime: mtime, Format: tar.FormatUSTAR}); err != nil {
				return fmt.Errorf("release: archive: %w", err)
			}
		}
		if err := copyInto(tw, f, mtime); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("release: archive: %w", err)
	}
	return nil
}

// parents lists the directories above name, outermost first: "a/b/c" gives "a", "a/b".
func parents(name string) []string {
	var out []string
	for d := path.Dir(name); d != "."; d = path.Dir(d) {
		out = append(out, d)
	}
	slices.Reverse(out)
	return out
}

func copyInto(tw *tar.Writer, f ArchiveFile, mtime time.Time) error {
	src, err := os.Open(f.Source)
	if err != nil {
		return fmt.Errorf("release: archive: %w", err)
	}
	defer src.Close()
	st, err := src.Stat()
	if err != nil {
		return fmt.Errorf("release: archive: %w", err)
	}
	if !st.Mode().IsRegular() {
		return fmt.Errorf("release: archive: %s is not a regular file", f.Source)
	}
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: f.Name, Mode: f.Mode, Size: st.Size(),
		ModTime: mtime, Format: tar.FormatUSTAR}); err != nil {
		return fmt.Errorf("release: archive %s: %w", f.Name, err)
	}
	if _, err := io.Copy(tw, src); err != nil {
		return fmt.Errorf("release: archive %s: %w", f.Name, err)
	}
	return nil
}

// WriteArchive writes files as a gzip-compressed tar to out. The gzip header carries no name and no
// time, so the archive's bytes depend only on what writeTar promises.
func WriteArchive(out string, files []ArchiveFile, mtime time.Time) (err error) {
	f, err := os.Create(out)
	if err != nil {
		return fmt.Errorf("release: archive: %w", err)
	}
	defer func() {
		if cerr := f.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("release: archive: %w", cerr)
		}
	}()
	zw, err := gzip.NewWriterLevel(f, gzip.DefaultCompression)
	if err != nil {
		return fmt.Errorf("release: archive: %w", err)
	}
	if err := writeTar(zw, files, mtime); err != nil {
		return err
	}
	if err := zw.Close(); err != nil {
		return fmt.Errorf("release: archive: %w", err)
	}
	return nil
}

// WriteChecksums writes dir/SHA256SUMS for the named files of dir, sorted, in the format
// `sha256sum -c` reads: the hex digest, two spaces, the name.
func WriteChecksums(dir string, names []string) error {
	names = slices.Sorted(slices.Values(names))
	var b strings.Builder
	for _, n := range names {
		sum, err := fileSHA256(filepath.Join(dir, n))
		if err != nil {
			return err
		}
		fmt.Fprintf(&b, "%s  %s\n", sum, n)
	}
	if err := os.WriteFile(filepath.Join(dir, "SHA256SUMS"), []byte(b.String()), 0o644); err != nil {
		return fmt.Errorf("release: checksums: %w", err)
	}
	return nil
}

func fileSHA256(p string) (string, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", fmt.Errorf("release: checksums: %w", err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("release: checksums %s: %w", p, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

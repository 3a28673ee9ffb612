package main

import (
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"syscall"
	"time"

	"github.com/jwtauthz/jwt-authz/config"
	configv1 "github.com/jwtauthz/jwt-authz/proto/jwtauthz/config/v1"
)

// DefaultReloadQuiet is how long the config file must stay the same
// before a change is loaded.
const DefaultReloadQuiet = 500 * time.Millisecond

// fileStamp identifies a version of a file: following symlinks, so a
// Kubernetes ConfigMap's ..data swap and an editor's rename both show.
type fileStamp struct {
	mod  time.Time
	size int64
	ino  uint64
}

func stat(path string) fileStamp {
	fi, err := os.Stat(path)
	if err != nil {
		return fileStamp{}
	}
	st := fileStamp{mod: fi.ModTime(), size: fi.Size()}
	if sys, ok := fi.Sys().(*syscall.Stat_t); ok {
		st.ino = sys.Ino
	}
	return st
}

// snapshot is one reading of the config file.
type snapshot struct {
	stamp fileStamp
	sum   [sha256.Size]byte
	data  []byte
	err   error
}

// same reports whether two readings saw the same version.
func (s snapshot) same(o snapshot) bool {
	return s.stamp == o.stamp && s.sum == o.sum && (s.err == nil) == (o.err == nil)
}

// config decodes and validates the reading.
func (s snapshot) config() (*configv1.Config, error) {
	if s.err != nil {
		return nil, fmt.Errorf("config: %w", s.err)
	}
	return config.Parse(s.data)
}

// readSnapshot reads path once: its stamp, content (at most one byte over
// the config limit, so Parse still refuses a larger file) and hash.
func readSnapshot(path string) snapshot {
	s := snapshot{stamp: stat(path)}
	f, err := os.Open(path)
	if err != nil {
		s.err = err
		return s
	}
	defer f.Close()
	s.data, s.err = io.ReadAll(io.LimitReader(f, config.MaxFileBytes+1))
	s.sum = sha256.Sum256(s.data)
	return s
}

// fileWatch decides when a change of the config file is loaded: only once
// the file has stopped changing. A file written in place (truncated, then
// written in chunks) passes through versions that are valid configs but
// not the intended one, such as a rule cut off before its `require`;
// loading on the first change served such a version. A change is loaded
// when two readings at least the quiet period apart saw the same stamp
// (mtime, size, inode) and the same content hash, and the content loaded
// is the one those readings hashed. The file is read and hashed on every
// poll (configs are small; Parse refuses more than 4 MiB), so a rewrite
// that keeps size and a coarse mtime is still seen.
//
// Concurrency: not safe for concurrent use; serve's loop owns it.
type fileWatch struct {
	path  string
	quiet time.Duration
	now   func() time.Time

	seen    snapshot  // the version last loaded (or refused), without data
	pending *snapshot // a changed version waiting to settle
	since   time.Time // when pending was first read
}

// watchOptions tune the watcher; the zero value is what serve uses.
type watchOptions struct {
	// Quiet is how long the file must stay the same; 0 means
	// DefaultReloadQuiet.
	Quiet time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// newFileWatch watches path, taking its current version as loaded.
func newFileWatch(path string, o watchOptions) *fileWatch {
	if o.Quiet <= 0 {
		o.Quiet = DefaultReloadQuiet
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	w := &fileWatch{path: path, quiet: o.Quiet, now: o.Now}
	w.seen = readSnapshot(path)
	w.seen.data = nil
	return w
}

// poll is called on every tick. It returns a reading to load, and true,
// once the file differs from the version last loaded and has stayed the
// same for the quiet period.
func (w *fileWatch) poll() (snapshot, bool) {
	s := readSnapshot(w.path)
	switch {
	case w.pending == nil && s.same(w.seen):
		return snapshot{}, false
	case w.pending == nil || !s.same(*w.pending):
		// A change, or still changing: the quiet period starts again.
		w.pending, w.since = &s, w.now()
		return snapshot{}, false
	case w.now().Sub(w.since) < w.quiet:
		return snapshot{}, false
	}
	w.pending = nil
	if s.same(w.seen) {
		return snapshot{}, false // changed and changed back
	}
	w.seen = s
	w.seen.data = nil
	return s, true
}

// readNow reads the file for an explicit reload (SIGHUP): the operator
// asked for it, so it is not held back; the watcher takes it as loaded.
func (w *fileWatch) readNow() snapshot {
	s := readSnapshot(w.path)
	w.seen, w.pending = s, nil
	w.seen.data = nil
	return s
}

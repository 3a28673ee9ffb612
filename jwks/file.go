package jwks

import (
	"crypto/sha256"
	"fmt"
	"os"
	"time"
)

// fileStamp identifies a version of a key file.
type fileStamp struct {
	modTime time.Time
	size    int64
	hash    [sha256.Size]byte
}

// readFile reads the key file when its size, mtime or content changed.
func (p *KeySet) readFile(path string) outcome {
	fi, err := os.Stat(path)
	if err != nil {
		return outcome{err: fmt.Errorf("read key file: %w", err)}
	}
	p.mu.Lock()
	last, have := p.file, p.keys.Load() != nil
	p.mu.Unlock()
	if have && fi.ModTime().Equal(last.modTime) && fi.Size() == last.size {
		return outcome{unchanged: true}
	}
	f, err := os.Open(path)
	if err != nil {
		return outcome{err: fmt.Errorf("read key file: %w", err)}
	}
	defer f.Close()
	doc, err := readAll(f)
	if err != nil {
		return outcome{err: fmt.Errorf("read key file %s: %w", path, err)}
	}
	stamp := fileStamp{modTime: fi.ModTime(), size: fi.Size(), hash: sha256.Sum256(doc)}
	if have && stamp.hash == last.hash {
		return outcome{unchanged: true, file: stamp}
	}
	set, err := parseKeySet(doc, p.opts.Algorithms)
	if err != nil {
		return outcome{err: fmt.Errorf("read key file %s: %w", path, err)}
	}
	return outcome{set: set, doc: doc, file: stamp}
}

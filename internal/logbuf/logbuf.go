// Package logbuf owns the tests' log sink: a buffer that a server's
// loggers write to from many goroutines while the test reads it.
//
// Concurrency: a Buffer is safe for concurrent use; its zero value is
// empty and ready.
package logbuf

import (
	"bytes"
	"strings"
	"sync"
)

// Buffer is a bytes.Buffer behind a mutex, for slog handlers.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write appends p.
func (l *Buffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// String returns everything written so far.
func (l *Buffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// Contains reports whether s has been written.
func (l *Buffer) Contains(s string) bool { return strings.Contains(l.String(), s) }

// Package httpserver runs the demo programs' HTTP servers (dev-issuer,
// mock-target): serve until the context ends, then shut down gracefully.
package httpserver

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"time"
)

// ShutdownTimeout bounds the graceful shutdown.
const ShutdownTimeout = 5 * time.Second

// Run serves srv on ln until ctx is done (SIGTERM, Ctrl-C), then shuts it
// down, letting in-flight requests finish. It returns the process exit
// code: 0 after a clean shutdown, 1 when serving or shutting down failed.
func Run(ctx context.Context, srv *http.Server, ln net.Listener, logger *slog.Logger) int {
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		logger.Error("serve", "error", err)
		return 1
	case <-ctx.Done():
	}
	logger.Info("shutting down")
	shutdownCtx, cancel := context.WithTimeout(context.Background(), ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		logger.Error("shutdown", "error", err)
		return 1
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		logger.Error("serve", "error", err)
		return 1
	}
	return 0
}

// Command mock-target runs an HTTP target after Apigee's mocktarget (see
// package internal/mocktarget), for demos and end-to-end tests.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/jwtauthz/jwt-authz/internal/httpserver"
	"github.com/jwtauthz/jwt-authz/internal/mocktarget"
)

func main() { os.Exit(run()) }

func run() int {
	fs := flag.NewFlagSet("mock-target", flag.ContinueOnError)
	addr := fs.String("addr", "127.0.0.1:8080", "listen address")
	maxBody := fs.Int64("max-body-bytes", mocktarget.DefaultMaxBodyBytes, "largest request body /echo reads")
	logFormat := fs.String("log-format", "json", "log format: json or text")
	debug := fs.Bool("debug", false, "log every request")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: mock-target [flags]\n\n"+
			"An Apigee-style mock target: /, /user, /json, /xml, /echo, /statuscode/{code}, /ip, /help, /iloveapis.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(os.Args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "mock-target: unexpected arguments: %v\n", fs.Args())
		return 2
	}
	level := slog.LevelInfo
	if *debug {
		level = slog.LevelDebug
	}
	var handler slog.Handler
	switch *logFormat {
	case "json":
		handler = slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: level})
	case "text":
		handler = slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level})
	default:
		fmt.Fprintf(os.Stderr, "mock-target: -log-format %q: want json or text\n", *logFormat)
		return 2
	}
	logger := slog.New(handler)

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		logger.Error("listen", "addr", *addr, "error", err)
		return 1
	}
	srv := &http.Server{
		Handler:           mocktarget.New(mocktarget.Options{MaxBodyBytes: *maxBody, Logger: logger}),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	logger.Info("mock-target listening", "addr", ln.Addr().String())
	return httpserver.Run(ctx, srv, ln, logger)
}

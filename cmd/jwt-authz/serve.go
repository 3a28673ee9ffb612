package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"runtime"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	"google.golang.org/grpc/keepalive"

	"github.com/jwtauthz/jwt-authz/config"
	"github.com/jwtauthz/jwt-authz/envoy"
	"github.com/jwtauthz/jwt-authz/httpauthz"
	configv1 "github.com/jwtauthz/jwt-authz/proto/jwtauthz/config/v1"
	"github.com/jwtauthz/jwt-authz/stack"
)

// server is the running process: the stack in force and its listeners.
type server struct {
	log     *slog.Logger
	st      *stack.Stack
	watched *fileWatch // owned by serve's loop
}

func newLogger(format, level string, w io.Writer) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("-log-level %q: %w", level, err)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch format {
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("-log-format %q: want json or text", format)
}

func serve(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return serveWith(ctx, args, stdout, stderr, watchOptions{})
}

// serveWith is serve with the config watcher's settings, which tests set.
func serveWith(ctx context.Context, args []string, stdout, stderr io.Writer, wo watchOptions) int {
	fs := newFlags("serve", stdout, stderr)
	path := fs.String("config", "", "config file (YAML)")
	grpcAddr := fs.String("grpc-addr", "", "gRPC listen address (overrides listen.grpc)")
	httpAddr := fs.String("http-addr", "", "HTTP listen address (overrides listen.http)")
	logFormat := fs.String("log-format", "json", "log format: json or text")
	logLevel := fs.String("log-level", "", "log level: debug, info, warn, error (overrides logging.level)")
	pprofOn := fs.Bool("pprof", false, "serve Go profiles under /debug/pprof/ on the HTTP listener (off by default)")
	if code, ok := fs.parse(args); !ok {
		return code
	}
	if *path == "" {
		fmt.Fprintln(stderr, "jwt-authz serve: -config is required")
		return 2
	}
	// The watcher's first reading comes before Load, so a change made
	// while the server starts is reloaded, not taken as already loaded.
	watch := newFileWatch(*path, wo)
	cfg, err := config.Load(*path)
	if err != nil {
		for _, e := range unjoin(err) {
			fmt.Fprintln(stderr, e)
		}
		return 1
	}
	level := *logLevel
	if level == "" {
		level = cfg.GetLogging().GetLevel()
	}
	if level == "" {
		level = "info"
	}
	logger, err := newLogger(*logFormat, level, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "jwt-authz serve: %v\n", err)
		return 2
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	promauto.With(reg).NewGaugeVec(prometheus.GaugeOpts{Namespace: "jwt_authz", Name: "build_info",
		Help: "Build information; always 1."}, []string{"version", "goversion"}).
		WithLabelValues(version, runtime.Version()).Set(1)
	st, err := stack.New(cfg, stack.Options{Logger: logger, Registry: reg})
	if err != nil {
		logger.Error("config not usable", slog.String("error", err.Error()))
		return 1
	}
	defer st.Close()
	s := &server{log: logger, st: st, watched: watch}

	ga := firstNonEmpty(*grpcAddr, cfg.GetListen().GetGrpc(), config.DefaultGRPCAddr)
	ha := firstNonEmpty(*httpAddr, cfg.GetListen().GetHttp(), config.DefaultHTTPAddr)
	gs, err := s.grpcServer(cfg)
	if err != nil {
		logger.Error("grpc server", slog.String("error", err.Error()))
		return 1
	}
	hs := envoy.Register(gs, envoy.NewServer(envoy.Options{Authorizer: st.Current(), Limits: limits(cfg)}))
	glis, err := net.Listen("tcp", ga)
	if err != nil {
		logger.Error("listen grpc", slog.String("addr", ga), slog.String("error", err.Error()))
		return 1
	}
	hlis, err := net.Listen("tcp", ha)
	if err != nil {
		glis.Close()
		logger.Error("listen http", slog.String("addr", ha), slog.String("error", err.Error()))
		return 1
	}
	handler := s.httpHandler(reg, *pprofOn)
	if hz := cfg.GetHttpAuthz(); hz.GetEnabled() {
		// The HTTP authorization mode, for Envoy's http_service, nginx
		// auth_request, Traefik forwardAuth and Caddy forward_auth. The
		// listener is chosen at start; a reload does not move it.
		handler = httpauthz.Route(hz.GetPathPrefix(), httpauthz.NewHandler(httpauthz.Options{
			Authorizer: st.Current(),
			PathPrefix: hz.GetPathPrefix(),
			Forwarded:  httpauthz.Forwarded(hz.GetForwardedHeaders()),
		}), handler)
	}
	httpSrv := &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
	}
	logger.Info("serving", slog.String("grpc", glis.Addr().String()), slog.String("http", hlis.Addr().String()),
		slog.String("version", version), slog.Int("providers", len(cfg.GetProviders())))
	errc := make(chan error, 2)
	go func() { errc <- gs.Serve(glis) }()
	go func() { errc <- httpSrv.Serve(hlis) }()

	ctx, stop := signal.NotifyContext(ctx, syscall.SIGTERM, os.Interrupt)
	defer stop()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	serving := false
	code := 0
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case err := <-errc:
			logger.Error("listener failed", slog.String("error", err.Error()))
			code = 1
			break loop
		case <-hup:
			s.reload("sighup", s.watched.readNow())
		case <-tick.C:
			if snap, ok := s.watched.poll(); ok {
				s.reload("file_changed", snap)
			}
			ready, _ := st.Readiness()
			if ready != serving {
				serving = ready
				envoy.SetServing(hs, ready)
				logger.Info("health", slog.Bool("serving", ready))
			}
		}
	}
	s.shutdown(gs, hs, httpSrv)
	return code
}

// shutdown: health NOT_SERVING first so Envoy's health checks move
// traffic away, then the lameduck, then GracefulStop with a deadline so
// in-flight Checks finish.
func (s *server) shutdown(gs *grpc.Server, hs *health.Server, httpSrv *http.Server) {
	cfg := s.st.Config()
	hs.Shutdown()
	s.log.Info("shutting down")
	if ld := cfg.GetLameduck().AsDuration(); ld > 0 {
		time.Sleep(ld) // the lameduck is the point: keep answering while balancers notice
	}
	grace := config.DefaultShutdownGrace
	if cfg.GetShutdownGrace() != nil {
		grace = cfg.GetShutdownGrace().AsDuration()
	}
	done := make(chan struct{})
	go func() { gs.GracefulStop(); close(done) }()
	t := time.NewTimer(grace)
	select {
	case <-done:
		t.Stop()
	case <-t.C:
		s.log.Warn("shutdown grace over; closing remaining streams")
		gs.Stop()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	httpSrv.Shutdown(ctx)
	s.log.Info("stopped")
}

// reload builds the config read in snap completely, then swaps it in; a
// bad one is refused, logged and counted, and the old one keeps serving.
func (s *server) reload(why string, snap snapshot) {
	cfg, err := snap.config()
	if err != nil {
		s.st.Refused(why, err)
		return
	}
	s.st.Reload(cfg, why)
}

func limits(cfg *configv1.Config) envoy.Limits {
	return envoy.Limits{
		MaxHeaders:     int(cfg.GetLimits().GetMaxHeaders()),
		MaxHeaderBytes: int(cfg.GetLimits().GetMaxHeaderBytes()),
	}
}

func (s *server) grpcServer(cfg *configv1.Config) (*grpc.Server, error) {
	maxRecv := int(cfg.GetLimits().GetMaxRequestBytes())
	if maxRecv == 0 {
		maxRecv = 1 << 20
	}
	streams := cfg.GetLimits().GetMaxConcurrentStreams()
	if streams == 0 {
		streams = 1000
	}
	opts := []grpc.ServerOption{
		grpc.MaxRecvMsgSize(maxRecv),
		grpc.MaxConcurrentStreams(streams),
		// Envoy keeps long-lived HTTP/2 connections; allow its pings but
		// not a flood of them.
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 10 * time.Second, PermitWithoutStream: true}),
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: 2 * time.Minute, Timeout: 20 * time.Second}),
		// Serve streams on long-lived workers: a fresh goroutine per Check
		// grows its stack on every request (runtime.copystack was 13% of the
		// server's CPU under load); a worker's stack is already grown.
		grpc.NumStreamWorkers(uint32(64 * runtime.GOMAXPROCS(0))),
		grpc.ChainUnaryInterceptor(envoy.Recover(s.log)),
		// Check decodes only what a decision reads and sends stored answers.
		grpc.ForceServerCodecV2(envoy.Codec()),
	}
	if t := cfg.GetListen().GetTls(); t.GetCertFile() != "" {
		tc, err := serverTLS(t.GetCertFile(), t.GetKeyFile(), t.GetClientCaFile(), s.log)
		if err != nil {
			return nil, err
		}
		opts = append(opts, grpc.Creds(credentials.NewTLS(tc)))
	}
	return grpc.NewServer(opts...), nil
}

// httpHandler serves /metrics, /healthz, /readyz and /debug/keys.
func (s *server) httpHandler(reg *prometheus.Registry, withPprof bool) http.Handler {
	mux := http.NewServeMux()
	if withPprof {
		mux.HandleFunc("GET /debug/pprof/", pprof.Index)
		mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	}
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		io.WriteString(w, "ok\n")
	})
	mux.Handle("GET /readyz", s.st.ReadyHandler())
	mux.Handle("GET /debug/keys", s.st.KeysHandler())
	return mux
}

func firstNonEmpty(vals ...string) string {
	for _, v := range vals {
		if v != "" {
			return v
		}
	}
	return ""
}

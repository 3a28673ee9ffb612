package envoy

import (
	"context"
	"log/slog"
	"runtime/debug"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health"
	healthgrpc "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/reflection"
	"google.golang.org/grpc/status"
)

// Register puts the Authorization service, grpc.health.v1 and server
// reflection on gs. The health server starts NOT_SERVING for the overall
// service ("") and for the Authorization service; the caller sets SERVING
// once every provider has keys ("not healthy until the first config is
// loaded", as envoyproxy/ratelimit does).
//
// The Authorization service is registered with the hot path's handler
// (codec.go); install Codec on gs for it to take effect.
func Register(gs *grpc.Server, s *Server) *health.Server {
	gs.RegisterService(&checkServiceDesc, s)
	hs := health.NewServer()
	SetServing(hs, false)
	healthgrpc.RegisterHealthServer(gs, hs)
	reflection.Register(gs)
	return hs
}

// AuthorizationService is the gRPC service name health is reported for.
const AuthorizationService = "envoy.service.auth.v3.Authorization"

// SetServing sets the health of the overall server and of the
// Authorization service.
func SetServing(hs *health.Server, ok bool) {
	st := healthgrpc.HealthCheckResponse_NOT_SERVING
	if ok {
		st = healthgrpc.HealthCheckResponse_SERVING
	}
	hs.SetServingStatus("", st)
	hs.SetServingStatus(AuthorizationService, st)
}

// Recover is a unary interceptor that turns a panic in any handler into
// an Internal error for that call instead of a crash. Check does better
// on its own: it answers a counted internal_error deny (authz.Current.Check).
func Recover(log *slog.Logger) grpc.UnaryServerInterceptor {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (resp any, err error) {
		defer func() {
			if p := recover(); p != nil {
				log.Error("grpc handler panicked", slog.String("method", info.FullMethod), slog.Any("panic", p),
					slog.String("stack", string(debug.Stack())))
				resp, err = nil, status.Error(codes.Internal, "internal error")
			}
		}()
		return handler(ctx, req)
	}
}

package envoy

import (
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthgrpc "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/reflection"
)

// Register puts the Authorization service, grpc.health.v1 and server
// reflection on gs. The health server starts NOT_SERVING for the overall
// service ("") and for the Authorization service; the caller sets SERVING
// once every provider has keys ("not healthy until the first config is
// loaded", as envoyproxy/ratelimit does).
func Register(gs *grpc.Server, s *Server) *health.Server {
	authv3.RegisterAuthorizationServer(gs, s)
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

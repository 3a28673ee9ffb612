// Package envoy is the adapter between Envoy's ext_authz gRPC protocol and
// package authz: CheckRequest in, authz.Request to the authorizer,
// authz.Decision out as a CheckResponse. It also owns the gRPC server
// plumbing: health, reflection, the panic-recovery interceptor, and the
// Check hot path's codec (codec.go: a CheckRequest read for what the
// decision uses, answers written and stored in their wire form).
//
// Concurrency: a Server is safe for concurrent use. It asks the authorizer
// in force through authz.Current, which owns the reload swap, panics and
// the answer to requests over the header limits.
package envoy

import (
	"context"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/jwtauthz/jwt-authz/authz"
)

// Server answers envoy.service.auth.v3.Authorization/Check.
type Server struct {
	authv3.UnimplementedAuthorizationServer
	current *authz.Current
	limits  Limits
}

var _ authv3.AuthorizationServer = (*Server)(nil)

// Limits bound what one CheckRequest may carry. Zero values mean the
// defaults: 200 headers, 64 KiB of header bytes.
type Limits struct {
	MaxHeaders     int
	MaxHeaderBytes int
}

// Options configures a Server.
type Options struct {
	// Authorizer holds the authorizer in force; required. A reload stores
	// a new one.
	Authorizer *authz.Current
	Limits     Limits
}

// NewServer returns a Server.
func NewServer(o Options) *Server {
	if o.Limits.MaxHeaders <= 0 {
		o.Limits.MaxHeaders = 200
	}
	if o.Limits.MaxHeaderBytes <= 0 {
		o.Limits.MaxHeaderBytes = 64 << 10
	}
	return &Server{current: o.Authorizer, limits: o.Limits}
}

// Check implements the ext_authz Check RPC. Every input, however broken,
// gets a CheckResponse: bad input is a deny, never a gRPC error (so Envoy
// answers with our status and challenge rather than its status_on_error).
// A server registered with Register answers through checkHandler, which
// decides the same way (codec.go).
func (s *Server) Check(ctx context.Context, req *authv3.CheckRequest) (*authv3.CheckResponse, error) {
	d := s.current.Check(ctx, func() (*authz.Request, authz.Refusal) { return s.request(req) })
	return Response(&d), nil
}

// request translates a CheckRequest. A request over the header limits is
// refused with headers_too_large.
func (s *Server) request(req *authv3.CheckRequest) (*authz.Request, authz.Refusal) {
	attrs := req.GetAttributes()
	h := attrs.GetRequest().GetHttp()
	r := &authz.Request{
		Method:  h.GetMethod(),
		Path:    h.GetPath(),
		Host:    h.GetHost(),
		Context: attrs.GetContextExtensions(),
		// For the sender-constrained checks: the DPoP htu's scheme, and
		// the client certificate (include_peer_certificate: true).
		Scheme:      h.GetScheme(),
		Certificate: attrs.GetSource().GetCertificate(),
	}
	size := 0
	if hm := h.GetHeaderMap(); hm != nil && len(hm.GetHeaders()) > 0 {
		if len(hm.GetHeaders()) > s.limits.MaxHeaders {
			return nil, authz.Refuse(authz.ReasonHeadersTooLarge, "too many request headers")
		}
		r.Headers = make(map[string]string, len(hm.GetHeaders()))
		for _, hv := range hm.GetHeaders() {
			k := strings.ToLower(hv.GetKey())
			v := hv.GetValue()
			if v == "" && len(hv.GetRawValue()) > 0 {
				v = string(hv.GetRawValue())
			}
			size += len(k) + len(v)
			if prev, dup := r.Headers[k]; dup {
				if r.Repeated == nil {
					r.Repeated = map[string]int{}
				}
				if r.Repeated[k] == 0 {
					r.Repeated[k] = 1
				}
				r.Repeated[k]++
				v = prev + "," + v
			}
			r.Headers[k] = v
		}
	} else {
		if len(h.GetHeaders()) > s.limits.MaxHeaders {
			return nil, authz.Refuse(authz.ReasonHeadersTooLarge, "too many request headers")
		}
		r.Headers = h.GetHeaders()
		fold := false
		for k, v := range r.Headers {
			// Count every header: stopping at the first upper-case key
			// would let the rest through uncounted.
			size += len(k) + len(v)
			fold = fold || strings.ToLower(k) != k
		}
		if fold { // Envoy sends lower-case keys; be safe if not
			r.Headers = lowerKeys(h.GetHeaders())
		}
	}
	if size > s.limits.MaxHeaderBytes {
		return nil, authz.Refuse(authz.ReasonHeadersTooLarge, "request headers too large")
	}
	return r, authz.Refusal{}
}

func lowerKeys(m map[string]string) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		lk := strings.ToLower(k)
		if prev, ok := out[lk]; ok {
			v = prev + "," + v
		}
		out[lk] = v
	}
	return out
}

// grpcCode maps a denial's HTTP status to the CheckResponse status code.
func grpcCode(status int) codes.Code {
	switch status {
	case 400:
		return codes.InvalidArgument
	case 401:
		return codes.Unauthenticated
	case 403:
		return codes.PermissionDenied
	case 431:
		// As gRPC itself answers a message over the receive limit.
		return codes.ResourceExhausted
	case 503:
		return codes.Unavailable
	}
	return codes.Internal
}

// Response renders a Decision as a CheckResponse (README, "Decisions").
func Response(d *authz.Decision) *authv3.CheckResponse {
	meta := metadata(d)
	if d.Allow {
		ok := &authv3.OkHttpResponse{
			HeadersToRemove:         d.RemoveHeaders,
			QueryParametersToRemove: d.RemoveQuery,
		}
		for _, h := range d.Headers {
			ok.Headers = append(ok.Headers, setHeader(h.Name, h.Value))
		}
		return &authv3.CheckResponse{
			Status:          &rpcstatus.Status{Code: int32(codes.OK)},
			HttpResponse:    &authv3.CheckResponse_OkResponse{OkResponse: ok},
			DynamicMetadata: meta,
		}
	}
	denied := &authv3.DeniedHttpResponse{
		Status: &typev3.HttpStatus{Code: typev3.StatusCode(d.Status)},
		Body:   string(d.Body),
	}
	for i, c := range d.Challenges {
		h := setHeader("www-authenticate", c)
		if i > 0 {
			// A second challenge (Bearer and DPoP) is a second header entry.
			h.AppendAction = corev3.HeaderValueOption_APPEND_IF_EXISTS_OR_ADD
		}
		denied.Headers = append(denied.Headers, h)
	}
	denied.Headers = append(denied.Headers, setHeader("content-type", d.ContentType))
	if d.RetryAfter != "" {
		denied.Headers = append(denied.Headers, setHeader("retry-after", d.RetryAfter))
	}
	return &authv3.CheckResponse{
		Status:          &rpcstatus.Status{Code: int32(grpcCode(d.Status)), Message: string(d.Reason)},
		HttpResponse:    &authv3.CheckResponse_DeniedResponse{DeniedResponse: denied},
		DynamicMetadata: meta,
	}
}

func setHeader(k, v string) *corev3.HeaderValueOption {
	return &corev3.HeaderValueOption{
		Header:       &corev3.HeaderValue{Key: k, Value: v},
		AppendAction: corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD,
	}
}

// metadata builds the dynamic metadata Envoy stores under
// envoy.filters.http.ext_authz, for access logs and rate limits.
func metadata(d *authz.Decision) *structpb.Struct {
	m := d.Metadata
	f := map[string]*structpb.Value{
		"decision": structpb.NewStringValue(d.DecisionLabel()),
		"reason":   structpb.NewStringValue(string(d.Reason)),
	}
	add := func(k, v string) {
		// authz leaves unsafe values out already; this keeps the promise
		// for any Decision an adapter renders.
		if v = authz.TextSafe(v); v != "" {
			f[k] = structpb.NewStringValue(v)
		}
	}
	add("provider", d.Provider)
	add("rule", d.Rule)
	add("issuer", m.Issuer)
	add("subject", m.Subject)
	add("client_id", m.ClientID)
	add("scope", m.Scope)
	add("cnf_method", m.CnfMethod)
	add("cnf_thumbprint", m.CnfThumbprint)
	return &structpb.Struct{Fields: f}
}

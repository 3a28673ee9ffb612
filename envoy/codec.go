package envoy

import (
	"context"
	"fmt"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/mem"
	protobuf "google.golang.org/protobuf/proto"

	"github.com/jwtauthz/jwt-authz/authz"
)

// The Check hot path does two things an ordinary gRPC server cannot:
//
//   - Decode what the decision reads. The Authorization service is
//     registered with its own handler (checkServiceDesc) whose request is a
//     checkMsg; the server's codec reads it with readCheck, which keeps
//     method, path, host, scheme, the source certificate,
//     context_extensions and the headers the current Authorizer reads
//     (authz.Authorizer.HeadersRead), and validates the rest without
//     keeping it. Anything readCheck does not read exactly as
//     proto.Unmarshal would goes to proto.Unmarshal.
//   - Do not build and re-encode answers. Every answer is written straight
//     from the Decision in its wire form (encodeDecision: the bytes of the
//     deterministic proto encoding, without the message); an allowed
//     decision on a cached token carries an authz.Answer slot where those
//     bytes are kept, and later Checks send them as they are (an
//     encodedResponse, which the codec passes through).
//
// Every other message (health, reflection) goes to grpc-go's proto codec
// unchanged.

// Codec returns the server codec of the hot path; install it with
// grpc.ForceServerCodecV2(envoy.Codec()). Without it the server works the
// same, decoding and encoding every message in full.
func Codec() encoding.CodecV2 { return codec{} }

type codec struct{}

// protoCodec is grpc-go's own codec, for everything that is not ours.
var protoCodec = encoding.GetCodecV2(proto.Name)

func (codec) Name() string { return proto.Name }

func (codec) Marshal(v any) (mem.BufferSlice, error) {
	if e, ok := v.(*encodedResponse); ok {
		return e.one[:], nil
	}
	return protoCodec.Marshal(v)
}

func (codec) Unmarshal(data mem.BufferSlice, v any) error {
	m, ok := v.(*checkMsg)
	if !ok {
		return protoCodec.Unmarshal(data, v)
	}
	buf := data.MaterializeToBuffer(mem.DefaultBufferPool())
	defer buf.Free()
	b := buf.ReadOnlyData()
	m.viaCodec = true
	if m.srv != nil {
		if a := m.srv.current.Load(); a != nil && readCheck(b, a.HeadersRead(), m.srv.limits, &m.CheckRequest, &m.parts) {
			m.a = a
			return nil
		}
	}
	if err := protobuf.Unmarshal(b, &m.CheckRequest); err != nil {
		return fmt.Errorf("envoy: decode CheckRequest: %w", err)
	}
	return nil
}

// checkMsg is the request of the Check handler: a CheckRequest, read in
// full or only in the parts a decision uses.
type checkMsg struct {
	authv3.CheckRequest
	// parts hold what the selective reader fills, in the same allocation.
	parts checkParts
	// srv is set before decoding: the codec reads its authorizer and limits.
	srv *Server
	// a is the authorizer whose HeadersRead the codec kept; nil after a
	// full decode. The Check uses it, not a newer one a reload stored in
	// between, which might read headers this request no longer has.
	a *authz.Authorizer
	// viaCodec: the message went through Codec, so the answer may be an
	// encodedResponse.
	viaCodec bool
}

// encodedResponse is a CheckResponse already in wire form, as the codec
// returns it: a SliceBuffer, which gRPC frees as a no-op, so the stored
// bytes never go back to a pool, and which is only read.
//
// One allocation: the buffer list points at the bytes held in the same
// struct (a *SliceBuffer is a Buffer without boxing the slice).
type encodedResponse struct {
	b   mem.SliceBuffer
	one [1]mem.Buffer
}

func newEncodedResponse(b []byte) *encodedResponse {
	e := &encodedResponse{b: b}
	e.one[0] = &e.b
	return e
}

// checkServiceDesc is authv3.Authorization_ServiceDesc with a Check
// handler that decodes into a checkMsg. Names and metadata are the
// generated ones, so clients and server reflection see the same service.
var checkServiceDesc = grpc.ServiceDesc{
	ServiceName: authv3.Authorization_ServiceDesc.ServiceName,
	HandlerType: authv3.Authorization_ServiceDesc.HandlerType,
	Methods:     []grpc.MethodDesc{{MethodName: "Check", Handler: checkHandler}},
	Streams:     []grpc.StreamDesc{},
	Metadata:    authv3.Authorization_ServiceDesc.Metadata,
}

const checkMethod = "/envoy.service.auth.v3.Authorization/Check"

func checkHandler(srv any, ctx context.Context, dec func(any) error, interceptor grpc.UnaryServerInterceptor) (any, error) {
	s := srv.(*Server)
	in := &checkMsg{srv: s}
	if err := dec(in); err != nil {
		return nil, err
	}
	if interceptor == nil {
		return s.checkMsg(ctx, in)
	}
	info := &grpc.UnaryServerInfo{Server: srv, FullMethod: checkMethod}
	// Interceptors see the CheckRequest, as with the generated handler.
	return interceptor(ctx, &in.CheckRequest, info, func(ctx context.Context, _ any) (any, error) {
		return s.checkMsg(ctx, in)
	})
}

// checkMsg decides in and renders the answer, from the token's stored
// bytes when there are some.
func (s *Server) checkMsg(ctx context.Context, in *checkMsg) (any, error) {
	read := func() (*authz.Request, authz.Refusal) { return s.request(&in.CheckRequest) }
	var d authz.Decision
	if in.a != nil {
		d = s.current.CheckOn(ctx, in.a, read)
	} else {
		d = s.current.Check(ctx, read)
	}
	if !in.viaCodec {
		return Response(&d), nil
	}
	if e, ok := d.Answer.Load().(*encodedResponse); ok {
		return e, nil
	}
	e := newEncodedResponse(encodeDecision(&d))
	d.Answer.Store(e) // a no-op for the zero Answer
	return e, nil
}

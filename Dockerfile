# syntax=docker/dockerfile:1
#
# One image with the three programs of the demo (jwt-authz, dev-issuer, mock-target): static binaries
# on a distroless base without a shell, running as a non-root user. docker-compose.yaml picks the
# program per service with `command:`.
#
#   docker build -t jwt-authz .
#   docker run --rm jwt-authz /usr/local/bin/jwt-authz version

FROM golang:1.26 AS build
WORKDIR /src
# Dependencies first, so that a source change does not download them again.
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
# CGO off: the binaries must run on distroless/static, which has no libc.
# -buildvcs=false: the build context may hold no .git, or one git cannot read here.
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 go build -trimpath -buildvcs=false -ldflags "-s -w" -o /out/ \
      ./cmd/jwt-authz ./cmd/dev-issuer ./cmd/mock-target

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/ /usr/local/bin/
USER nonroot
# 9001 ext_authz gRPC, 9090 jwt-authz metrics/health, 8081 dev-issuer, 8080 mock-target.
EXPOSE 9001 9090 8081 8080
CMD ["/usr/local/bin/jwt-authz", "version"]

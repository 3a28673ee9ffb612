# syntax=docker/dockerfile:1
#
# jwt-authz for Docker users. The default (last) stage is the runtime image: the static jwt-authz
# alone on distroless/static (CA roots, no shell), as user 65532, with entrypoint `jwt-authz` and
# command `serve -config /etc/jwt-authz/config.yaml`, the same shape as the release image that
# `make image` builds without Docker (docs/releases.md). The `dev` stage adds dev-issuer and
# mock-target for the compose demo; never run those in production.
#
#   docker build -t jwt-authz:0.1.0 .
#   docker run --rm jwt-authz:0.1.0 version
#   docker build --target dev -t jwt-authz-dev .
#
# The version is the VERSION file's unless --build-arg VERSION=... says otherwise; pass
# --build-arg REVISION=$(git rev-parse HEAD) to stamp the commit (the context holds no .git).

FROM golang:1.26 AS build
WORKDIR /src
# Dependencies first, so that a source change does not download them again.
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
ARG VERSION=""
ARG REVISION=""
# CGO off: the binaries must run on distroless/static, which has no libc.
# -buildvcs=false: the build context holds no .git; the revision comes from the build arg.
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    version="${VERSION:-$(cat VERSION)}" && \
    CGO_ENABLED=0 go build -trimpath -buildvcs=false \
      -ldflags "-s -w -X main.version=${version} -X main.revision=${REVISION}" -o /out/ \
      ./cmd/jwt-authz ./cmd/dev-issuer ./cmd/mock-target

# The compose demo's image: all three programs in /usr/local/bin; each service picks one with
# `command:`.
FROM gcr.io/distroless/static-debian12:nonroot AS dev
COPY --from=build /out/ /usr/local/bin/
USER nonroot
# 9001 ext_authz gRPC, 9090 jwt-authz metrics/health, 8081 dev-issuer, 8080 mock-target.
EXPOSE 9001 9090 8081 8080
CMD ["/usr/local/bin/jwt-authz", "version"]

# The runtime image: jwt-authz only.
FROM gcr.io/distroless/static-debian12:nonroot AS runtime
# `jwt-authz version` tells the version and revision; LABEL cannot read the VERSION file.
LABEL org.opencontainers.image.title="jwt-authz" \
      org.opencontainers.image.source="https://github.com/jwtauthz/jwt-authz" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=build /out/jwt-authz /jwt-authz
USER 65532:65532
# 9001 ext_authz gRPC, 9090 /metrics /healthz /readyz.
EXPOSE 9001 9090
ENTRYPOINT ["/jwt-authz"]
CMD ["serve", "-config", "/etc/jwt-authz/config.yaml"]

# jwt-authz — `make help` lists the targets.
SHELL := /bin/bash
GO ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X main.version=$(VERSION)
PROTOC_GEN_GO_VERSION := v1.36.12
GOBIN := $(CURDIR)/bin
FUZZTIME ?= 30s

.DEFAULT_GOAL := help

help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-z-]+:.*## / {printf "  %-18s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

build: ## build jwt-authz, dev-issuer and mock-target (static) into bin/
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "$(LDFLAGS)" -o bin/ ./cmd/jwt-authz ./cmd/dev-issuer ./cmd/mock-target

run: ## start dev-issuer, mock-target and jwt-authz on loopback (Ctrl-C stops all three)
	bash scripts/run-local.sh

test: ## the whole test suite, with the race detector
	$(GO) test -race -count=1 -timeout 15m ./...

check: vet proto-check tidy-check test ## what CI runs

vet: ## go vet
	$(GO) vet ./...

lint: vet ## go vet (no pinned third-party linter installs here)

bench: ## Go benchmarks of Check beside bare signature verification, and of the Check hot path against the floor's codec work (not part of make test)
	$(GO) test -run '^$$' -bench . -benchmem -count 5 ./authz/... ./envoy/

loadtest: ## load benchmark: jwt-authz against an empty and a shaped floor, interleaved rounds, RSS (a few minutes; not in make test)
	bash bench/loadtest.sh

FUZZ_PKGS := ./authz/ ./config/ ./envoy/ ./jwks/

fuzz: ## run every fuzz target for FUZZTIME each (default 30s)
	@for p in $(FUZZ_PKGS); do for t in $$($(GO) test -list '^Fuzz' $$p | grep ^Fuzz); do \
		echo "== $$p $$t"; $(GO) test -run '^$$' -fuzz "^$$t$$" -fuzztime $(FUZZTIME) $$p || exit 1; done; done

fuzz-smoke: ## every fuzz target for 5s (CI)
	@$(MAKE) --no-print-directory fuzz FUZZTIME=5s

soak: ## drive Check at a steady rate for a few minutes through rotations, IdP failures and reloads
	SOAK_DURATION=$${SOAK_DURATION:-3m} $(GO) test -race -count=1 -run '^TestSoak$$' -timeout 20m -v ./cmd/jwt-authz/

proto: ## regenerate proto/ Go code (protoc from apt, protoc-gen-go pinned)
	@command -v protoc >/dev/null || { echo "protoc missing: apt-get install -y protobuf-compiler"; exit 1; }
	GOBIN=$(GOBIN) $(GO) install google.golang.org/protobuf/cmd/protoc-gen-go@$(PROTOC_GEN_GO_VERSION)
	PATH="$(GOBIN):$$PATH" protoc -I proto --go_out=proto --go_opt=paths=source_relative proto/jwtauthz/config/v1/config.proto

proto-check: ## fail when the generated Go is not what config.proto gives
	@command -v protoc >/dev/null || { echo "proto-check skipped: protoc not installed"; exit 0; }; \
	tmp=$$(mktemp -d); trap 'rm -rf $$tmp' EXIT; \
	GOBIN=$(GOBIN) $(GO) install google.golang.org/protobuf/cmd/protoc-gen-go@$(PROTOC_GEN_GO_VERSION) && \
	PATH="$(GOBIN):$$PATH" protoc -I proto --go_out=$$tmp --go_opt=paths=source_relative proto/jwtauthz/config/v1/config.proto && \
	diff -u proto/jwtauthz/config/v1/config.pb.go $$tmp/jwtauthz/config/v1/config.pb.go && echo "proto: generated code is current"

tidy-check: ## fail when go.mod/go.sum are not tidy
	@cp go.mod /tmp/go.mod.bak && cp go.sum /tmp/go.sum.bak; \
	$(GO) mod tidy; \
	if ! git diff --quiet -- go.mod go.sum; then git diff -- go.mod go.sum; cp /tmp/go.mod.bak go.mod; cp /tmp/go.sum.bak go.sum; echo "go.mod/go.sum not tidy"; exit 1; fi; echo "go.mod/go.sum tidy"

demo-config-check: ## parse envoy/*.yaml against Envoy's protos and docker-compose.yaml with compose-go
	$(GO) test -count=1 ./envoy/ ./deploy/...

vuln: ## govulncheck (pinned); needs its online database, so it is not part of make test
	GOBIN=$(GOBIN) $(GO) install golang.org/x/vuln/cmd/govulncheck@v1.1.4
	timeout 60 $(GOBIN)/govulncheck ./... || { echo "govulncheck failed or could not reach its vulnerability database (no network here?)"; exit 1; }

clean: ## remove build output
	rm -rf bin .run

.PHONY: help build run test check vet lint bench loadtest fuzz fuzz-smoke soak proto proto-check tidy-check demo-config-check vuln clean

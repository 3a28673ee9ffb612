# jwt-authz — `make help` lists the targets.
SHELL := /bin/bash
GO ?= go
# The version is the VERSION file's; the revision is the commit, when there is a git checkout.
VERSION ?= $(shell cat VERSION 2>/dev/null || echo dev)
REVISION ?= $(shell git rev-parse HEAD 2>/dev/null)
# Every file time in the archives and the image: the last commit's, so two builds of it agree.
SOURCE_DATE_EPOCH ?= $(shell git log -1 --format=%ct 2>/dev/null || echo 0)
LDFLAGS := -s -w -X main.version=$(VERSION) -X main.revision=$(REVISION)
RELEASE := cd release && $(GO) run ./cmd/release -root .. -out ../dist -version $(VERSION) -revision "$(REVISION)" -source-date-epoch $(SOURCE_DATE_EPOCH)
PROTOC_GEN_GO_VERSION := v1.36.12
GOBIN := $(CURDIR)/bin
FUZZTIME ?= 30s
# The root module and the nested ones that hold heavy test-only or release-only dependencies.
MODULES := . deploy release
# tools/ is a module of its own that pins the linters (a tool directive), so the server's go.mod
# lists only what the server links.
TOOL_MODULES := tools

.DEFAULT_GOAL := help

help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-z-]+:.*## / {printf "  %-18s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

build: ## build jwt-authz, dev-issuer and mock-target (static) into bin/
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "$(LDFLAGS)" -o bin/ ./cmd/jwt-authz ./cmd/dev-issuer ./cmd/mock-target

run: ## start dev-issuer, mock-target and jwt-authz on loopback (Ctrl-C stops all three)
	bash scripts/run-local.sh

test: ## the whole test suite, with the race detector
	$(GO) test -race -count=1 -timeout 15m ./...
	@# The deploy module only decodes and renders files: no goroutines of ours
	@# to race, and -race would recompile Helm and the Kubernetes API for minutes.
	cd deploy && $(GO) test -count=1 -timeout 10m ./...
	cd release && $(GO) test -race -count=1 -timeout 10m ./...

check: lint proto-check tidy-check test ## what CI runs (.ci/run): lint (vet, staticcheck), generated code, tidiness, tests

vet: ## go vet
	@for m in $(MODULES); do (cd $$m && $(GO) vet ./...) || exit 1; done

lint: vet staticcheck ## go vet and staticcheck (pinned in tools/go.mod) on every module

staticcheck: ## staticcheck on every module; checks turned off, with their reasons, are in staticcheck.conf
	$(GO) -C tools build -o $(GOBIN)/staticcheck honnef.co/go/tools/cmd/staticcheck
	@for m in $(MODULES); do (cd $$m && $(GOBIN)/staticcheck ./...) || { echo "$$m: staticcheck found problems"; exit 1; }; echo "$$m: staticcheck clean"; done

bench: ## Go benchmarks of Check beside bare signature verification, and of the Check hot path against the floor's codec work (not part of make test)
	$(GO) test -run '^$$' -bench . -benchmem -count 5 ./authz/... ./envoy/

loadtest: ## load benchmark: jwt-authz against an empty and a shaped floor, interleaved rounds, RSS (a few minutes; not in make test)
	bash bench/loadtest.sh

# Every package of the root module with a fuzz target.
FUZZ_PKGS := $(addprefix ./,$(sort $(dir $(shell grep -rl --include='*_test.go' '^func Fuzz' authz cmd config envoy httpauthz internal jwks replay stack 2>/dev/null))))

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

tidy-check: ## fail when go.mod/go.sum (root and nested modules) are not tidy
	@for m in $(MODULES) $(TOOL_MODULES); do (cd $$m && $(GO) mod tidy -diff) || { echo "$$m: go.mod/go.sum not tidy (run go mod tidy there)"; exit 1; }; echo "$$m: tidy"; done

demo-config-check: ## parse deploy/envoy/*.yaml against Envoy's protos, and the deploy/ files (compose, kustomize, Helm, alerts)
	$(GO) test -count=1 ./envoy/
	cd deploy && $(GO) test -count=1 ./...

vuln: ## govulncheck (pinned); needs its online database, so it is not part of make test
	GOBIN=$(GOBIN) $(GO) install golang.org/x/vuln/cmd/govulncheck@v1.1.4
	timeout 60 $(GOBIN)/govulncheck ./... || { echo "govulncheck failed or could not reach its vulnerability database (no network here?)"; exit 1; }

release: ## binaries for linux/amd64, linux/arm64, darwin/arm64, archives, SBOMs, image and SHA256SUMS into dist/
	$(RELEASE)

image: ## the linux/amd64 image as dist/jwt-authz-VERSION-image.tar (docker load -i), built without Docker
	$(RELEASE) -image-only

release-check: ## build the release twice in two copies of the tree and compare SHA256SUMS (not in make test)
	VERSION=$(VERSION) REVISION="$(REVISION)" SOURCE_DATE_EPOCH=$(SOURCE_DATE_EPOCH) bash scripts/release-check.sh

clean: ## remove build output
	rm -rf bin .run dist

.PHONY: help build run test check vet lint staticcheck bench loadtest fuzz fuzz-smoke soak proto proto-check tidy-check demo-config-check vuln release image release-check clean

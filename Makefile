# Kestrel: eBPF host sensor for GPU inference nodes.
# Every target documents itself: `make help`.

SHELL    := /bin/bash
GO        ?= go
BIN       ?= bin/sensor
CONFIG    ?= deploy/sensor.yaml
GOTEST    ?= $(GO) test
# The semantic version from git tags (scripts/version.sh says how), computed once; set VERSION and
# COMMIT to build from a tree without git (the image build does).
ifeq ($(origin VERSION),undefined)
VERSION   := $(shell scripts/version.sh)
endif
ifeq ($(origin COMMIT),undefined)
COMMIT    := $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
endif
LDFLAGS   := -s -w -X main.buildVersion=$(VERSION) -X main.buildCommit=$(COMMIT)
IMAGE     ?= ghcr.io/kestrel-sec/kestrel
# A tag allows no "+": v0.0.0-dev+1a2b3c is tagged v0.0.0-dev-1a2b3c.
IMAGE_TAG ?= $(subst +,-,$(VERSION))

# go-nvml is cgo; silence the deprecation warnings of its header.
export CGO_CFLAGS ?= -O2 -g -Wno-deprecated-declarations

.DEFAULT_GOAL := help

.PHONY: help
help: ## Show this help.
	@awk 'BEGIN {FS = ":.*##"} /^[a-zA-Z_-]+:.*##/ {printf "  \033[36m%-16s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: build
build: ## Build bin/sensor, stamped with VERSION and COMMIT (needs no clang: BPF objects are committed).
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/sensor

.PHONY: version
version: ## Print the version `make build` stamps (from git tags; see scripts/version.sh).
	@echo $(VERSION)

.PHONY: run
run: build ## Run the sensor in the foreground with --tail and the default config (needs root).
	@if [ "$$(id -u)" != 0 ]; then echo "make run needs root (eBPF): try 'sudo make run'"; exit 1; fi
	./$(BIN) --tail --config $(CONFIG)

.PHONY: test
test: ## Run every test; eBPF and scenario tests run for real as root (installs missing packages first).
	@# As root where apt-get exists, the missing Debian packages are installed (KESTREL_NO_INSTALL=1: check only).
	@scripts/preflight.sh $(if $(KESTREL_NO_INSTALL),,--install)
	$(GOTEST) -count=1 -timeout 20m $$($(GO) list ./... | grep -v /test/e2e)
	@# The scenario replay watches the whole host: run it alone, not beside other root tests.
	$(GOTEST) -count=1 -timeout 20m -v ./test/e2e

.PHONY: bench
bench: ## Run the overhead storms (none / empty programs / sensor, alternating) and the user-space benchmarks, the whole pipeline's among them (root).
	$(GO) build -o bin/sensorbench ./cmd/sensorbench
	./bin/sensorbench $(BENCHFLAGS)
	$(GOTEST) -run '^$$' -bench . -benchmem -benchtime 200000x -count 1 ./internal/detect/... ./internal/export ./internal/runtime/enrich ./internal/runtime

.PHONY: otlp-e2e
otlp-e2e: ## Build a real OpenTelemetry Collector (test/otelcol), export to it from the daemon, count its records against the sensor's (root; minutes).
	./scripts/otlp-e2e.sh

.PHONY: docs
docs: ## Regenerate docs/rules.md from the rule registry (a test fails when it is stale).
	$(GO) run ./internal/detect/rulesdoc/gendoc -o docs/rules.md

.PHONY: generate
generate: ## Rebuild generated code: bpf2go objects and bindings, vmlinux.h, protobuf (needs clang, bpftool, protoc).
	$(GO) generate ./...

.PHONY: check-generated
check-generated: ## Fail if generated code is not what `make generate` produces.
	@$(MAKE) --no-print-directory generate
	@git diff --exit-code --stat -- bpf proto internal || { echo "generated code is stale: run 'make generate' and commit"; exit 1; }
	@test -z "$$(git status --porcelain -- bpf proto internal)" || { git status --porcelain -- bpf proto internal; echo "generate left untracked files"; exit 1; }

.PHONY: lint
lint: ## gofmt, go vet and staticcheck.
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "run gofmt -w"; exit 1; }
	$(GO) vet ./...
	$(GO) run honnef.co/go/tools/cmd/staticcheck@v0.8.2 ./...

.PHONY: fuzz
fuzz: ## Fuzz every parser (decoder, cgroup paths, /proc, config, filters, replay) for FUZZTIME each (default 30s).
	@set -e; for t in \
	  ./internal/runtime:FuzzDecode ./internal/runtime:FuzzDecodeNet \
	  ./internal/runtime/cgroup:FuzzParse ./internal/runtime/proc:FuzzParseStat \
	  ./internal/runtime/proc:FuzzParseStatus ./internal/runtime/proc:FuzzParseCgroup \
	  ./internal/runtime/proc:FuzzParseMountinfo ./internal/config:FuzzParse \
	  ./internal/export:FuzzCompileFilter ./internal/export:FuzzEventFromProto ./internal/export:FuzzAppendJSONString \
	  ./internal/export:FuzzEventToProto ./internal/event:FuzzJSONExactBytes ./internal/event:FuzzTerminalSafeJSON \
	  ./internal/gpu:FuzzParseReplay ./internal/detect:FuzzProcess ./internal/detect/model:FuzzIsModel; do \
	  echo "== $${t#*:} in $${t%%:*}"; \
	  $(GO) test $${t%%:*} -run '^$$' -fuzz "^$${t#*:}$$" -fuzztime $${FUZZTIME:-30s}; \
	done

.PHONY: preflight
preflight: ## Check what `make test` needs (tools, Go, root, BTF, cgroup v2, kernel); name what is missing.
	@scripts/preflight.sh

.PHONY: deps
deps: ## Install the Debian/Ubuntu packages the tests and `make generate` need (root, apt-get).
	@scripts/preflight.sh --install --generate

.PHONY: manifests
manifests: ## Render deploy/daemonset.yaml from charts/kestrel (deploy/manifest-values.yaml).
	$(GOTEST) ./deploy -run '^TestManifestIsRenderedFromTheChart$$' -count=1 -update

.PHONY: chart
chart: ## helm lint and helm template of charts/kestrel, with the pinned Helm (go tool helm).
	$(GO) tool helm lint --strict charts/kestrel
	$(GO) tool helm template kestrel charts/kestrel --namespace kestrel-system -f deploy/manifest-values.yaml

.PHONY: image
image: ## Build the image IMAGE:IMAGE_TAG (ghcr.io/kestrel-sec/kestrel:<version>) with docker, podman or buildah.
	@scripts/image.sh "$(IMAGE):$(IMAGE_TAG)" "$(VERSION)" "$(COMMIT)"

.PHONY: release-files
release-files: ## Set the chart's version/appVersion to VERSION (a release vX.Y.Z) and re-render the manifest.
	@[[ "$(VERSION)" =~ ^v[0-9]+\.[0-9]+\.[0-9]+(-[0-9A-Za-z.-]+)?$$ && "$(VERSION)" != *dev* ]] || \
	  { echo "release-files: VERSION=$(VERSION) is not a release version vX.Y.Z[-rc.N]"; exit 2; }
	sed -i -E 's/^version: .*/version: $(patsubst v%,%,$(VERSION))/; s/^appVersion: .*/appVersion: "$(VERSION)"/' charts/kestrel/Chart.yaml
	@$(MAKE) --no-print-directory manifests

.PHONY: soak
soak: build ## Run the daemon under mixed load and rude clients for SOAKTIME (default 30m); report leaks and loss accounting (root).
	$(GO) build -o bin/feedsoak ./cmd/feedsoak
	./bin/feedsoak -sensor $(BIN) -duration $${SOAKTIME:-30m} $(SOAKFLAGS)

.PHONY: clean
clean: ## Remove build outputs.
	rm -rf bin

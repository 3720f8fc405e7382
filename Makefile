# Kestrel: eBPF host sensor for GPU inference nodes.
# Every target documents itself: `make help`.

SHELL    := /bin/bash
GO        ?= go
BIN       := bin/sensor
CONFIG    ?= deploy/sensor.yaml
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS   := -s -w -X main.version=$(VERSION)
GOTEST    ?= $(GO) test

# go-nvml is cgo; silence the deprecation warnings of its header.
export CGO_CFLAGS ?= -O2 -g -Wno-deprecated-declarations

.DEFAULT_GOAL := help

.PHONY: help
help: ## Show this help.
	@awk 'BEGIN {FS = ":.*##"} /^[a-zA-Z_-]+:.*##/ {printf "  \033[36m%-16s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: build
build: ## Build bin/sensor (needs no clang: BPF objects are committed).
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/sensor

.PHONY: run
run: build ## Run the sensor in the foreground with --tail and the default config (needs root).
	@if [ "$$(id -u)" != 0 ]; then echo "make run needs root (eBPF): try 'sudo make run'"; exit 1; fi
	./$(BIN) --tail --config $(CONFIG)

.PHONY: test
test: ## Run every test; eBPF and scenario tests run for real as root.
	$(GOTEST) -count=1 -timeout 20m $$($(GO) list ./... | grep -v /test/e2e)
	@# The scenario replay watches the whole host: run it alone, not beside other root tests.
	$(GOTEST) -count=1 -timeout 20m -v ./test/e2e

.PHONY: bench
bench: ## Run the overhead storms (none / empty programs / sensor, alternating) and the user-space benchmarks (root).
	$(GO) build -o bin/sensorbench ./cmd/sensorbench
	./bin/sensorbench $(BENCHFLAGS)
	$(GOTEST) -run '^$$' -bench . -benchmem -benchtime 200000x -count 1 ./internal/detect/... ./internal/export ./internal/runtime/enrich

.PHONY: otlp-e2e
otlp-e2e: ## Build a real OpenTelemetry Collector (test/otelcol), export to it from the daemon, count its records against the sensor's (root; minutes).
	./scripts/otlp-e2e.sh

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
	  ./internal/export:FuzzCompileFilter ./internal/export:FuzzEventFromProto \
	  ./internal/gpu:FuzzParseReplay ./internal/detect:FuzzProcess ./internal/detect/model:FuzzIsModel; do \
	  echo "== $${t#*:} in $${t%%:*}"; \
	  $(GO) test $${t%%:*} -run '^$$' -fuzz "^$${t#*:}$$" -fuzztime $${FUZZTIME:-30s}; \
	done

.PHONY: clean
clean: ## Remove build outputs.
	rm -rf bin

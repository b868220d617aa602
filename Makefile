# The gateway's tasks. `make help` lists them; `make check` is what to run
# before pushing; `make test` is everything CI runs.

SHELL := /bin/bash
.DEFAULT_GOAL := check

VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT  ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
LDFLAGS := -s -w -X main.version=$(VERSION) -X main.commit=$(COMMIT)
BIN     := bin/gateway
# An execution count rather than a duration: a time-bounded run can fail
# with "context deadline exceeded" when the deadline lands while the fuzzer
# minimizes a new input, which is not a finding. `make fuzz` runs each
# target for FUZZTIME; `make test` for FUZZTIME_TEST (the seed corpora also
# run in every `go test`). Each target builds its own instrumented test
# binary: on a fresh build cache that build, not the fuzzing, is most of
# the time of `make fuzz-short`.
FUZZTIME ?= 100000x
FUZZTIME_TEST ?= 20000x

# package:FuzzTarget pairs run by `make fuzz`.
FUZZ_TARGETS := \
	./signature:FuzzVerify \
	./signature:FuzzParseStandard \
	./auth:FuzzAuthenticate \
	./rooms:FuzzHandle \
	./webhook:FuzzServe \
	./webhook:FuzzParseAgreesWithV1 \
	./event:FuzzJSONAgreesWithV1 \
	./event:FuzzJobPayloadsAgreeWithV1 \
	./event:FuzzAppendID \
	./event:FuzzValidUTF8 \
	./registry:FuzzServe \
	./publish:FuzzServe \
	./publish:FuzzMembers \
	./flaskqueue:FuzzDecodePickle \
	./flaskqueue:FuzzDecode \
	./status:FuzzParseLoginForm \
	./status:FuzzAuthorization \
	./status:FuzzJobFieldsAgreesWithV1 \
	./sioclient:FuzzParseEvent \
	./gateway:FuzzEventFrameAgreesWithLibrary \
	./recovery:FuzzPlanOffset

.PHONY: help
help: ## list the targets
	@grep -hE '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  \033[36m%-14s\033[0m %s\n", $$1, $$2}'

.PHONY: build
build: ## build bin/gateway (static, version baked in)
	CGO_ENABLED=0 go build -trimpath -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/gateway

.PHONY: run
run: build ## run one node in development on :5000 (embedded bus, no Redis needed)
	GATEWAY_ENV=development ./$(BIN)

.PHONY: fmt-check
fmt-check: ## fail when a file is not gofmt-ed
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "not gofmt-ed:"; echo "$$out"; exit 1; fi

.PHONY: vet
vet: ## go vet
	go vet ./...

.PHONY: race
race: ## unit tests with the race detector
	go test -race -count=1 ./...

.PHONY: check
check: fmt-check vet race ## gofmt, vet and the unit tests: run before pushing

.PHONY: fuzz
fuzz: ## run every fuzz target for FUZZTIME (default 100000 executions each; FUZZTIME=60s for longer)
	@set -e; for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; name=$${t##*:}; \
		echo "fuzz $$pkg $$name for $(FUZZTIME)"; \
		go test -run='^$$' -fuzz="^$$name$$" -fuzztime=$(FUZZTIME) -fuzzminimizetime=200x $$pkg; \
	done

.PHONY: fuzz-short
fuzz-short: ## every fuzz target for FUZZTIME_TEST executions (what make test runs)
	@$(MAKE) --no-print-directory fuzz FUZZTIME=$(FUZZTIME_TEST)

.PHONY: deps
deps: test/e2e/node_modules deploy/node_modules ## download every Go module and npm package the tests use, before they run
	go mod download
	cd deploy/validate && go mod download
	cd test/load && go mod download

deploy/node_modules: deploy/package-lock.json
	cd deploy && npm ci --no-audit --no-fund --loglevel=error
	@touch $@

test/e2e/node_modules: test/e2e/package-lock.json
	cd test/e2e && npm ci --no-audit --no-fund
	@touch $@

.PHONY: e2e
e2e: build test/e2e/node_modules ## end-to-end tests: the real binary with the real socket.io-client
	cd test/e2e && GATEWAY_BIN=$(CURDIR)/$(BIN) node --test --test-concurrency=1 --test-timeout=300000 --test-reporter=spec

.PHONY: deploy-check
deploy-check: build ## validate the Kubernetes manifests offline and lint the Dockerfile
	cd deploy/validate && GATEWAY_BIN=$(CURDIR)/$(BIN) go test -count=1 ./...
	deploy/lint-dockerfile.sh

.PHONY: test
test: deps check fuzz-short e2e deploy-check bench-smoke soak-smoke ## everything: gofmt, vet, race unit tests, short fuzzing, end-to-end, manifests, load smoke, soak smoke

.PHONY: bench
bench: ## full load comparison (gateway, node socket.io, Flask-SocketIO); writes docs/benchmarks.md and .png
	cd test/load && ./run.sh -out $(CURDIR)/docs

.PHONY: bench-smoke
bench-smoke: ## the load harness's unit tests and a few seconds of it against the gateway: fails on any loss or protocol error
	cd test/load && go vet ./... && go test -race -count=1 ./... && ./run.sh -smoke

# The rolling-restart scenario (test/load/cmd/rolling): 3 nodes on one
# redis-server, 3,000 clients, 200 events/s, each node drained in turn
# (SIGTERM), for the gateway then node socket.io with the redis streams
# adapter; writes the rolling-restart section of docs/benchmarks.md. Two to
# four minutes (node's recovery storm lengthens its part), under the shared
# bench lock; not part of make test. SMOKE=1: 300 clients, 50 events/s, 1 s
# drains, both servers, about 20 s once the lock is held, exit 1 on any
# gateway loss; docs untouched.
.PHONY: bench-rolling
bench-rolling: ## rolling restart (3 nodes, 3k clients, 200 ev/s) of the gateway and node socket.io: lost/duplicated/recovered per client into docs/benchmarks.md (SMOKE=1: a short run)
	cd test/load && go build -o bin/rolling ./cmd/rolling && \
	flock /tmp/gateway-bench.lock ./bin/rolling $(if $(SMOKE),-smoke -strict,-docs ../../docs/benchmarks.md) $(ROLLING_ARGS)

.PHONY: slow-client
slow-client: ## p99 of a busy room with and without a client that stops reading (test/load/slow_client.sh; run under flock on a shared machine)
	test/load/slow_client.sh

.PHONY: bench-go
bench-go: ## Go micro-benchmarks of the hot paths
	go test -run='^$$' -bench=. -benchmem ./...

# The soak (test/load/internal/soak): a real redis-server with AOF and two
# gateway nodes on it, 5,000 clients (10% long-polling) with 10% churn per
# minute, 500 events/s over 500 rooms (publish batches and twice-sent
# webhooks), Redis restarted once; RSS, goroutines, fds, Redis memory and
# keys, p99 sampled every 10 s and fitted over the second half. Exits 1 on
# a slope out of bounds, a lost owed delivery or a duplicate; prints a JSON
# summary. `make soak` (1 hour) writes docs/soak.png and the soak section of
# docs/reliability.md; run it under the bench lock on a shared machine.
# SOAK=60s is the smoke that make test runs (soak-smoke: no docs written).
SOAK         ?= 1h
SOAK_DOCS    ?= $(CURDIR)/docs
SOAK_RESULTS ?= results/soak.json
SOAK_FLAGS   ?=

.PHONY: soak
soak: build ## the soak: 5,000 churning clients, 500 events/s, 2 nodes, a Redis restart, for SOAK (1h); writes docs/soak.png and docs/reliability.md
	cd test/load && go run ./cmd/soak -gateway $(CURDIR)/$(BIN) -duration $(SOAK) -results $(SOAK_RESULTS) \
		$(if $(SOAK_DOCS),-docs $(SOAK_DOCS) -command "make soak$(if $(filter-out 1h,$(SOAK)), SOAK=$(SOAK))") $(SOAK_FLAGS)

.PHONY: soak-smoke
soak-smoke: ## the soak for 60 s (make soak SOAK=60s, sampled every 2 s, no docs written; its unit tests run in bench-smoke): part of make test
	@$(MAKE) --no-print-directory soak SOAK=60s SOAK_DOCS= SOAK_RESULTS=results-smoke/soak.json

# The attacks of docs/security.md (test/attack): each starts bin/gateway
# (and a redis-server where needed) on 127.0.0.1, attacks it, measures it
# and prints one JSON line. About ten minutes; not part of make test.
# ATTACKS=name,name runs some of them (go run ./test/attack -list).
ATTACK_BEFORE  ?= f174727
ATTACK_OLD_DIR ?= $(or $(TMPDIR),/tmp)/gateway-attack-before
ATTACK_ONLY    := $(if $(ATTACKS),-only $(ATTACKS))

bin/attack: $(shell git ls-files test/attack) go.mod go.sum
	CGO_ENABLED=0 go build -o bin/attack ./test/attack

.PHONY: attack
attack: build bin/attack ## run every attack of docs/security.md against bin/gateway on 127.0.0.1 (JSON lines; ATTACKS=a,b for some)
	./bin/attack -gateway $(BIN) -label after $(ATTACK_ONLY)

.PHONY: attack-compare
attack-compare: build bin/attack ## build the gateway before the bounds (ATTACK_BEFORE, f174727) and run every attack against it, then against bin/gateway
	rm -rf $(ATTACK_OLD_DIR) && mkdir -p $(ATTACK_OLD_DIR)
	git archive $(ATTACK_BEFORE) | tar -x -C $(ATTACK_OLD_DIR)
	cd $(ATTACK_OLD_DIR) && CGO_ENABLED=0 go build -trimpath -o bin/gateway ./cmd/gateway
	./bin/attack -gateway $(ATTACK_OLD_DIR)/bin/gateway -label before $(ATTACK_ONLY); s=$$?; \
	./bin/attack -gateway $(BIN) -label after $(ATTACK_ONLY) || s=1; exit $$s

.PHONY: clean
clean: ## remove build outputs
	rm -rf bin

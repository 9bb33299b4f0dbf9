# shardlog. `make` lists the targets.
GO        ?= go
BIN       := bin/shardlog
PKGS      := ./...
# Narrow a test run: make test TEST_RUN=TestCluster
TEST_RUN  ?= .
GO_TEST_FLAGS ?=
PROTOC_GEN_GO      := google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12
PROTOC_GEN_GO_GRPC := google.golang.org/grpc/cmd/protoc-gen-go-grpc@v1.6.0
STATICCHECK        := honnef.co/go/tools/cmd/staticcheck@v0.8.2
TOOLS     := $(CURDIR)/bin/tools

.PHONY: help build run test race lint fuzz proto clean check-pins chaos bench

help:
	@echo "targets:"
	@echo "  make run     start a local 3-node cluster on 127.0.0.1:7400/7410/7420, data in ./data/dev"
	@echo "  make test    all tests (-short), including in-process 3-node clusters"
	@echo "  make race    the fast tests under the race detector"
	@echo "  make build   build $(BIN)"
	@echo "  make lint    gofmt, go vet, staticcheck"
	@echo "  make fuzz    fuzz the batch decoder for FUZZTIME (default 30s)"
	@echo "  make bench   the benchmark matrix (about 4 min): JSON and a table under bench/results/"
	@echo "  make chaos   the long chaos set: 5 seeds x 120 s, all faults (kill-forever and drain too), busy + idle + retention topics, availability bound 10 s"
	@echo "               (partitions need root: installs iproute2, nftables), then CRASH_DURATION (default 3m) of in-process power cuts"
	@echo "  make proto   install protoc and the pinned plugins, regenerate proto/shardlogv1"

build:
	$(GO) build -o $(BIN) ./cmd/shardlog

run: build
	./$(BIN) dev --dir data/dev

# The dragonboat v4 pin needs this exact old Pebble; a dependency that moves it breaks the build.
check-pins:
	@test "$$($(GO) list -m -f '{{.Version}}' github.com/cockroachdb/pebble)" = "v0.0.0-20221207173255-0f086d933dac" || \
		{ echo "github.com/cockroachdb/pebble moved off the version dragonboat v4 needs"; exit 1; }

# The short chaos run in the tests partitions the network when it can (root, iproute2,
# nftables); setup-netns.sh installs the two packages and failing it only skips partitions.
test: check-pins build
	-@./chaos/setup-netns.sh
	$(GO) vet $(PKGS)
	$(GO) test -short -count=1 -timeout 9m -run '$(TEST_RUN)' $(GO_TEST_FLAGS) $(PKGS)

race:
	$(GO) test -short -race -count=1 -timeout 15m -run '$(TEST_RUN)' $(GO_TEST_FLAGS) $(PKGS)

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' | grep -v '\.pb\.go$$')); test -z "$$out" || { echo "gofmt would change:"; echo "$$out"; exit 1; }
	$(GO) vet $(PKGS)
	GOBIN=$(TOOLS) $(GO) install $(STATICCHECK)
	$(TOOLS)/staticcheck $(PKGS)

# The long chaos set (issues 3 and 8): the busy topic, the idle topic (16 shards, twice
# the flag's default so that a long kill, aimed at the node leading the most quiet ones,
# hits several; a record per shard every 20 s, probed when a fault may cut them off) and the retention topic (4 s), and the 10 s availability
# bound. It ends with the power-loss run (issue 8, node/crashtest): CRASH_DURATION of cuts
# of every node's power; SHARDLOG_CRASH_SEED=N replays a seed (a random one is printed).
# Seeds, duration and flags can be overridden:
#   make chaos CHAOS_SEEDS="1 2" CHAOS_DURATION=60s CHAOS_FLAGS="--max-unavailable 5s"
CHAOS_SEEDS    ?= 11 12 13 14 15
CHAOS_DURATION ?= 120s
CHAOS_FLAGS    ?= --idle-shards 16 --idle-interval 20s --retention-shards 2 --retention 4s --max-unavailable 10s \
                  --dead-after 10s --replication-timeout 60s --drain-timeout 60s
CRASH_DURATION ?= 3m
chaos: build
	./chaos/setup-netns.sh
	@for s in $(CHAOS_SEEDS); do \
		echo "== chaos seed $$s"; \
		./$(BIN) chaos --faults kill,pause,partition,restart-all,kill-forever,drain --duration $(CHAOS_DURATION) --seed $$s $(CHAOS_FLAGS) || exit 1; \
	done
	$(GO) test ./node/crashtest -run TestCrash -count=1 -v -timeout 30m -args -crash.duration=$(CRASH_DURATION)

# The standard benchmark matrix (issue 4): 100 B and 1 KiB records; 1, 8, 64 shards;
# RF 1 and 3; a fixed-rate run at 10% of peak. BENCH_FLAGS adds e.g. --repeat 3.
BENCH_FLAGS ?=
bench: build
	./$(BIN) bench matrix --out bench/results --doc docs/performance.md --baseline $(BENCH_FLAGS)

FUZZTIME ?= 30s
fuzz:
	$(GO) test ./batch -run '^$$' -fuzz FuzzDecode -fuzztime $(FUZZTIME)

proto:
	command -v protoc >/dev/null || { apt-get update && apt-get install -y protobuf-compiler; }
	GOBIN=$(TOOLS) $(GO) install $(PROTOC_GEN_GO)
	GOBIN=$(TOOLS) $(GO) install $(PROTOC_GEN_GO_GRPC)
	PATH=$(TOOLS):$$PATH protoc -I proto --go_out=. --go_opt=module=shardlog \
		--go-grpc_out=. --go-grpc_opt=module=shardlog proto/shardlog/v1/shardlog.proto

clean:
	rm -rf bin

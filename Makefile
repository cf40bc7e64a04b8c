# cairn — developer entry points. Tests run as root (CI does); GOFLAGS and
# other Go environment variables pass through to every go command.

GO        ?= go
BIN       ?= bin
TESTFLAGS ?=
STATICCHECK_VERSION ?= v0.8.2

.PHONY: all build image setup test bench lint fuzz demo clean cluster-binaries cluster-up cluster-down node-up node-down

all: build

build:
	$(GO) build -o $(BIN)/cairn ./cmd/cairn

# cairn's container image without a container engine: a static build and
# deploy/image's tarball of the same files as the Dockerfile's image,
# tagged ghcr.io/cairn-backup/cairn:<version>. Load it with `docker load -i`
# or `ctr images import`.
IMAGE_TAR ?= $(BIN)/cairn-image.tar
image:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "-s -w" -o $(BIN)/image/cairn ./cmd/cairn
	$(GO) run ./deploy/image/cmd/mkimage -binary $(BIN)/image/cairn -o $(IMAGE_TAR)

# Installs restic, fuse3, MinIO and the Kubernetes control plane when missing.
setup:
	bash tests/setup.sh

test: setup
	$(GO) test -count=1 -timeout 40m $(TESTFLAGS) ./...

# Compares cairn with restic (and restore with cp -a): by default every row of
# the performance table (1.5 GiB/20k files and 200k small files, local and S3
# behind 40 ms); see tests/bench/bench.sh for its environment (BENCH_SUITE,
# BENCH_SCALE=0.1 for a quick run, BENCH_DIR, BENCH_TOOLS, ...).
bench:
	bash tests/bench/bench.sh

lint:
	@unformatted=$$(gofmt -l . 2>&1); \
	if [ -n "$$unformatted" ]; then \
		echo "gofmt: these files need formatting (run gofmt -w):"; echo "$$unformatted"; exit 1; \
	fi
	$(GO) vet ./...
	@if command -v staticcheck >/dev/null 2>&1; then \
		echo staticcheck ./...; staticcheck ./...; \
	else \
		echo "staticcheck not found in PATH; skipped. Install it with:"; \
		echo "  go install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)   # then add \$$(go env GOPATH)/bin to PATH"; \
	fi

# Runs every fuzz target for FUZZTIME, one after another (go test -fuzz
# takes one target per run). Their seed corpora (f.Add and
# testdata/fuzz/FuzzX/) already run in `make test`. A crash is written to
# the package's testdata/fuzz/FuzzX/ and stops the loop.
FUZZTIME  ?= 30s
FUZZFLAGS ?=
fuzz:
	@set -e; \
	for dir in $$(grep -rl --include='*_test.go' '^func Fuzz' . | xargs -n1 dirname | sort -u); do \
		for target in $$($(GO) test -list '^Fuzz' $$dir | grep '^Fuzz'); do \
			echo "== $$dir $$target ($(FUZZTIME))"; \
			$(GO) test -run '^$$' -fuzz "^$$target\$$" -fuzztime $(FUZZTIME) $(FUZZFLAGS) $$dir; \
		done; \
	done

# The main job end to end on a local repository and a local control plane.
demo:
	bash tests/demo/demo.sh

# A real control plane (etcd, kube-apiserver, kube-controller-manager) on
# 127.0.0.1; binaries are built once from the Go module proxy (~12 min).
CLUSTER_DIR ?= .cluster
cluster-binaries:
	bash tests/cluster/build-binaries.sh

cluster-up: cluster-binaries
	$(GO) run ./tests/cluster/cmd/cluster up $(CLUSTER_DIR)

cluster-down:
	$(GO) run ./tests/cluster/cmd/cluster down $(CLUSTER_DIR)

# The control plane plus a real node (kubelet, containerd, runc) in the
# network namespace cairn-node, with the busybox, file-server and cairn
# images imported and local PVs made; see README.md, "Trying cairn on a
# one-node cluster". node-down leaves no processes, mounts or namespaces.
NODE_DIR ?= .node
node-up: cluster-binaries
	$(GO) build -o $(BIN)/cairn-node ./tests/node/cmd/node
	$(BIN)/cairn-node up $(NODE_DIR)

node-down:
	$(GO) build -o $(BIN)/cairn-node ./tests/node/cmd/node
	$(BIN)/cairn-node down $(NODE_DIR)

clean:
	rm -rf $(BIN) coverage.out coverage.html *.coverprofile

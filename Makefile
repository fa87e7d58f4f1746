# herald — make help lists the targets.

SHELL := /usr/bin/env bash
BIN := $(CURDIR)/bin
K8S_BIN := $(BIN)/k8s
CONTROLLER_GEN := $(BIN)/controller-gen
GO_TEST_FLAGS ?=
# The versions of etcd, kube-apiserver, kube-proxy and kubectl are pinned in
# tools/etcd/go.mod and tools/kube/go.mod; controller-gen's in tools/gen/go.mod.
K8S_STAMP := $(K8S_BIN)/.built

export KUBEBUILDER_ASSETS := $(K8S_BIN)

.DEFAULT_GOAL := help

##@ General

.PHONY: help
help: ## Show this help.
	@awk 'BEGIN {FS = ":.*##"; printf "Usage: make <target>\n"} /^[a-zA-Z_0-9-]+:.*?##/ { printf "  \033[36m%-14s\033[0m %s\n", $$1, $$2 } /^##@/ { printf "\n\033[1m%s\033[0m\n", substr($$0, 5) }' $(MAKEFILE_LIST)

##@ Development

.PHONY: generate
generate: $(CONTROLLER_GEN) ## Generate deepcopy code for the API types.
	$(CONTROLLER_GEN) object:headerFile=hack/boilerplate.go.txt paths=./api/...

.PHONY: manifests
manifests: $(CONTROLLER_GEN) ## Generate CRDs, RBAC and manifests/install.yaml.
	$(CONTROLLER_GEN) crd paths=./api/... output:crd:dir=manifests/crds
	$(CONTROLLER_GEN) rbac:roleName=herald-controller paths=./controller/... output:rbac:dir=manifests/rbac/controller
	$(CONTROLLER_GEN) rbac:roleName=herald-speaker paths=./speaker/... output:rbac:dir=manifests/rbac/speaker
	@hack/install-yaml.sh > manifests/install.yaml

.PHONY: verify-gen
verify-gen: generate manifests ## Fail when committed generated files differ from what the generators write.
	@if [ -n "$$(git status --porcelain -- api manifests)" ]; then \
		echo "generated files are stale; run 'make generate manifests' and commit:"; \
		git status --porcelain -- api manifests; git --no-pager diff --stat -- api manifests; exit 1; fi

.PHONY: fmt
fmt: ## Format the code.
	gofmt -w $$(git ls-files '*.go')

.PHONY: lint
lint: ## gofmt check and go vet.
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	go vet ./...
	go vet -tags integration ./...
	go vet -tags e2e ./e2e/...
	go vet -tags kind ./e2e/kind/...

.PHONY: build
build: ## Build the controller, speaker and kubectl-herald (kubectl plugin) binaries into bin/.
	go build -o $(BIN)/herald-controller ./controller
	go build -o $(BIN)/herald-speaker ./speaker
	go build -o $(BIN)/kubectl-herald ./kubectl-herald

##@ Images

VERSION ?= dev
IMAGE ?= ghcr.io/heraldlb/herald:$(VERSION)
WHOAMI_IMAGE ?= herald.local/whoami:$(VERSION)
# Docker's own client when no buildx plugin exists: BuildKit (the Dockerfiles' cache
# mounts) needs one of the two. Podman works too (DOCKER=podman).
DOCKER ?= $(shell if docker buildx version >/dev/null 2>&1 || ! [ -x /usr/bin/docker ]; then echo docker; else echo /usr/bin/docker; fi)
# OFFLINE=1 builds from base images made on this machine (hack/local-images.sh) and
# lets the build reach the Go module proxy through the host's network: what the
# tests here use, where no registry answers.
IMAGE_BUILD_FLAGS ?=
ifeq ($(OFFLINE),1)
BASE_ARGS = base=$$(DOCKER=$(DOCKER) hack/local-images.sh) &&
IMAGE_BUILD_FLAGS += --network host $$base
endif

.PHONY: image
image: ## Build herald's image (controller and speaker) as $(IMAGE); OFFLINE=1 without registries.
	$(BASE_ARGS) DOCKER_BUILDKIT=1 $(DOCKER) build $(IMAGE_BUILD_FLAGS) --build-arg VERSION=$(VERSION) -t $(IMAGE) .

.PHONY: whoami-image
whoami-image: ## Build the test backend image (e2e/cmd/whoami) as $(WHOAMI_IMAGE).
	$(BASE_ARGS) DOCKER_BUILDKIT=1 $(DOCKER) build $(IMAGE_BUILD_FLAGS) -f e2e/cmd/whoami/Dockerfile -t $(WHOAMI_IMAGE) .

##@ Demo

.PHONY: demo
demo: ## As root: the lab, a Service going from <pending> to an address curl reaches (MODE=bgp: routed by FRR).
	@MODE=$(MODE) hack/demo.sh

.PHONY: kind-demo
kind-demo: ## As root: a kind cluster built here, install.yaml applied, a Service from <pending> to an address curl reaches from the host.
	@hack/kind-demo.sh

.PHONY: kind-down
kind-down: ## Delete the kind cluster of kind-demo and e2e-kind.
	hack/kind/cluster.sh down

.PHONY: demo-down
demo-down: ## Tear the demo lab down (nothing is left on the machine).
	go run ./e2e/cmd/lab down

##@ Test

.PHONY: unit
unit: ## Pure Go tests (seconds).
	go test $(GO_TEST_FLAGS) ./...

.PHONY: integration
integration: kube-bins ## Tests against a real kube-apiserver and etcd (envtest).
	go test $(GO_TEST_FLAGS) -tags integration -count=1 -timeout 20m ./controller/integration/...

.PHONY: e2e
e2e: kube-bins ## End-to-end tests in the netns lab (root; needs iproute2 iptables conntrack curl).
	go test $(GO_TEST_FLAGS) -tags e2e -count=1 -timeout 20m -v ./e2e/... 2>&1 | tee /tmp/herald-e2e.log | awk -f hack/test-filter.awk; exit $${PIPESTATUS[0]}

.PHONY: e2e-kind
e2e-kind: ## herald from its image and install.yaml on a real kind cluster built offline (root; installs docker.io if missing).
	@hack/kind-e2e.sh

.PHONY: test
test: verify-gen lint unit integration e2e e2e-kind ## Everything CI runs (e2e and e2e-kind need root).

.PHONY: bench
bench: kube-bins ## Benchmarks: allocator, BGP speaker, Service → IP on a real API server, layer 2 and BGP in the lab and on kind (root). Lines "bench: ..." go to bench-results.txt.
	@rm -f bench-results.txt
	@go test -run '^$$' -bench . -benchmem ./internal/allocator/ ./speaker/election/ ./speaker/plan/ ./speaker/announced/ ./speaker/bgp/ | tee bench-allocator.txt
	@go test -tags integration -run '^$$' -bench . -benchtime 1x -timeout 20m ./controller/integration/ | tee bench-apiserver.txt
	@grep -ho 'bench: .*' bench-apiserver.txt >> bench-results.txt || true
	@HERALD_BENCH_OUT=$(CURDIR)/bench-results.txt go test -tags e2e -run '^$$' -bench 'Benchmark(Layer2|BGP|AnnouncedFailover)$$' -benchtime 1x -timeout 20m ./e2e/ | grep -E '^bench:|^ok|FAIL'
	@HERALD_BENCH_OUT=$(CURDIR)/bench-results.txt BENCH=1 hack/kind-e2e.sh
	@echo; cat bench-results.txt

.PHONY: bench-kind
bench-kind: ## Benchmarks on the kind cluster only (root): Service → first answer, node loss, pods' memory and CPU.
	@HERALD_BENCH_OUT=$(CURDIR)/bench-results.txt BENCH=1 hack/kind-e2e.sh

##@ Tools

.PHONY: kube-bins
kube-bins: $(K8S_STAMP) ## Build etcd and the Kubernetes commands (static, version-stamped) from their Go modules into bin/k8s.

$(K8S_STAMP): hack/kube-bins.sh tools/etcd/go.mod tools/etcd/go.sum tools/etcd/main.go tools/kube/go.mod tools/kube/go.sum tools/kube/tools.go
	hack/kube-bins.sh $(K8S_BIN)
	@touch $@

$(CONTROLLER_GEN): tools/gen/go.mod tools/gen/go.sum
	cd tools/gen && go build -o $(CONTROLLER_GEN) sigs.k8s.io/controller-tools/cmd/controller-gen

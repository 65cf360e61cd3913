# Two commands for a fresh machine:  `make up`  and  `make test`.
# Everything else here is a step they use.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON  ?= python3
VENV    := .venv
PY      := $(VENV)/bin/python
STAMP   := $(VENV)/.installed
DEVCLUSTER := $(PY) -m devcluster.cli
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
# pytest exits 5 when a selection holds no test; a suite that is empty so far is not a failure.
PYTEST  = rc=0; $(PY) -m pytest $(1) || rc=$$?; if [ $$rc -eq 5 ]; then echo "pytest: no tests selected by $(1)"; rc=0; fi; exit $$rc

.PHONY: help up up-real test test-realnode setup venv system-deps binaries cluster-up cluster-down cluster-status bench-installer down test-molecule \
        test-unit test-cluster lint bench-cluster clean bench-controllers bench-apiserver bench-monitoring bench-watch image bench-image

help: ## list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | column -t -s "$$(printf '\t')"

up: setup cluster-up ## set everything up and install the platform on the local cluster through the operator
	$(PY) -m devcluster.platform up

up-real: setup image ## like `make up`, with the operator and the backend as pods on a real node (docs/real-node.md)
	KS_REAL_NODE=1 $(DEVCLUSTER) up
	$(PY) -m devcluster.platform up-real

down: ## stop the operator and the local cluster
	@test -x $(PY) && $(PY) -m devcluster.platform down || true
	@$(MAKE) --no-print-directory cluster-down

# Each step's wall time is printed at the end (pytest prints its own per test folder).
TEST_STEPS := lint test-unit image cluster-up test-cluster test-molecule
test: setup ## set up whatever is missing and run the whole test suite
	@rc=0; times=""; for step in $(TEST_STEPS); do \
	  start=$$(date +%s); \
	  $(MAKE) --no-print-directory $$step || rc=$$?; \
	  times="$$times$$(printf '  %-14s %5ss%s' $$step $$(( $$(date +%s) - start )) "$$( [ $$rc -ne 0 ] && echo '  FAILED')")\n"; \
	  [ $$rc -eq 0 ] || break; \
	done; \
	printf '\nmake test, wall time per step:\n%b' "$$times"; exit $$rc

setup: venv system-deps binaries ## install Python deps, Debian packages and the cluster binaries

venv: $(STAMP)
$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@touch $@

system-deps: ## Debian packages the tests use (only what is missing)
	@bash hack/system-deps.sh

image: setup ## build the project image with podman (Debian base from mmdebstrap, both cached)
	$(PY) -m devcluster.image

binaries: venv ## build etcd, Kubernetes, kubectl and KWOK from the Go module proxy (cached)
	$(DEVCLUSTER) build

cluster-up: binaries ## start the local control plane (idempotent); prints the kubeconfig path
	$(DEVCLUSTER) up

cluster-down: ## stop the local control plane; leaves no process behind
	@test -x $(PY) && $(DEVCLUSTER) down || true

cluster-status:
	@$(DEVCLUSTER) status

test-unit: venv ## tests that need no cluster
	@$(call PYTEST,-m "not cluster")

test-cluster: setup ## tests against the local control plane (started or reused; tests/realnode adds the real node)
	@$(call PYTEST,-m cluster --durations=40)

test-realnode: setup image ## the real-node suite: operator and backend as pods (docs/real-node.md)
	@$(call PYTEST,-m realnode)

test-molecule: cluster-up ## molecule scenarios (delegated driver) against the local cluster
	KUBECONFIG=$(CURDIR)/.local/cluster/kubeconfig $(VENV)/bin/molecule test --all

lint: venv ## ruff, mypy, import contracts, yamllint, ansible-lint
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports --no-cache
	$(VENV)/bin/yamllint -s .
	$(VENV)/bin/ansible-lint

bench-cluster: setup ## cluster benchmark, JSON under bench/results/
	$(PY) -m bench.cluster

clean: cluster-down ## remove local state (keeps the binary cache)
	rm -rf .local

bench-installer: setup ## full install of every component vs the server-side-apply floor, toggle, no-op, RSS, per-task cost
	PYTHONPATH=collections $(PY) -m bench.installer

bench-controllers: setup ## controller-manager benchmark (1,000 users vs bcrypt floor, 500 namespaces, RSS)
	$(PY) -m bench.controllers

bench-image: setup ## image build times (base and image, cold and warm) and size
	$(PY) -m bench.image

bench-watch: setup ## websocket watch through ks-apiserver vs straight to kube-apiserver (events/s, added latency)
	$(PY) -m bench.watch

bench-apiserver: setup ## ks-apiserver benchmark (proxy vs direct, cached lists at 10,000 users / 5,000 namespaces, RSS)
	$(PY) -m bench.apiserver

bench-monitoring: setup ## monitoring API benchmark (a query through ks-apiserver vs the same PromQL to Prometheus)
	$(PY) -m bench.monitoring

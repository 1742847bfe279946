# Arbiter — make help lists the targets.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PROTO_SRC := $(patsubst protos/%,%,$(wildcard protos/arbiter/v1/*.proto))
# -I protos: the generated code imports itself as `arbiter.v1`, the name it is installed under.
PROTOC := $(PY) -m grpc_tools.protoc -I protos --plugin=protoc-gen-mypy=$(VENV)/bin/protoc-gen-mypy --plugin=protoc-gen-mypy_grpc=$(VENV)/bin/protoc-gen-mypy_grpc
LISTEN ?= 127.0.0.1:50051
DB ?= sqlite:///arbiter.db
CONFIG ?= examples/experiments.toml
BENCH_ARGS ?=

.PHONY: help install deps run test test-clients protos check-protos lint typecheck bench bench-lag bench-soak bench-quality bench-policies bench-drift bench-evaluate bench-evaluability bench-promotion clients clean

help: ## list the targets
	@grep -E '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-16s %s\n", $$1, $$2}'

# The client distribution first (arbiter.client + arbiter.v1; the root one depends on it), both
# editable, so `make protos` and edits to the client take effect without reinstalling.
$(STAMP): pyproject.toml clients/python/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ./clients/python
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP) ## create .venv and install Arbiter with its dev tools

# Before .venv (python3-venv may be among them): root installs, anyone else is told the command.
deps: ## install what the suite needs beyond the repo (as root; otherwise print the command)
	@PYTHON=$(PYTHON) bash scripts/install-deps.sh --auto

run: $(STAMP) ## start the server on the embedded SQLite with the demo config
	$(VENV)/bin/arbiter serve --listen $(LISTEN) --db $(DB) --config $(CONFIG)

test: deps $(STAMP) ## run the whole suite: Python, PostgreSQL, and the generated clients (exit 5, no tests, fails)
	$(PY) -m pytest; rc=$$?; if [ $$rc -eq 5 ]; then echo "pytest collected no tests" >&2; exit 1; fi; exit $$rc

protos: $(STAMP) ## regenerate the Python code and mypy stubs from protos/
	$(PROTOC) --python_out=protos --grpc_python_out=protos --mypy_out=protos --mypy_grpc_out=protos $(PROTO_SRC)

check-protos: $(STAMP) ## regenerate and fail if the committed generated code differs
	@tmp=$$(mktemp -d) && \
	$(PROTOC) --python_out=$$tmp --grpc_python_out=$$tmp --mypy_out=$$tmp --mypy_grpc_out=$$tmp $(PROTO_SRC) && \
	diff -r -x '__init__.py' -x '__pycache__' -x '*.proto' $$tmp/arbiter/v1 protos/arbiter/v1 && echo "generated code is up to date"; \
	rc=$$?; rm -rf $$tmp; exit $$rc

lint: $(STAMP) ## ruff, mypy and the layering contracts (import-linter, [tool.importlinter])
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

.PHONY: docs
docs: $(STAMP) ## regenerate docs/policies.md from the policy classes (a test fails when it drifts)
	$(VENV)/bin/arbiter policies --markdown > docs/policies.md.tmp && mv docs/policies.md.tmp docs/policies.md

bench: $(STAMP) ## Choose/Reward load test, 1 and 2 processes, vs an echo server (BENCH_ARGS="--processes 1,2,4 ...")
	$(PY) -m bench.load $(BENCH_ARGS)

bench-lag: $(STAMP) ## fold lag between two processes on SQLite and PostgreSQL; replay and database rates
	$(PY) -m bench.lag $(BENCH_ARGS)

bench-soak: $(STAMP) ## 10 minutes at 300 decisions/s: server RSS and database size every 30 s
	$(PY) -m bench.soak $(BENCH_ARGS)

bench-quality: $(STAMP) ## progressive reward of every policy on the digits bandit problem
	$(PY) -m bench.quality

bench-policies: $(STAMP) ## per-decision cost of every policy, side by side with baselines
	$(PY) -m bench.policies

bench-drift: $(STAMP) ## forgetting and drift alarms: reward before/after an abrupt, a gradual and no change (linucb, lints)
	$(PY) -m bench.drift $(BENCH_ARGS)

bench-evaluate: $(STAMP) ## offline replay of a 1M-decision synthetic log (uniform + linucb candidates)
	$(PY) -m bench.evaluate --rows 1000000

bench-evaluability: $(STAMP) ## LinUCB's exploration floor: online reward against the ESS of the log it writes
	$(PY) -m bench.evaluability

bench-promotion: $(STAMP) ## auto-promotion under peeking: false promotions and decisions needed, anytime-valid vs fixed
	$(PY) -m bench.promotion $(BENCH_ARGS)

clients: $(STAMP) ## build the Node, Go and Java clients
	$(MAKE) -C clients build

test-clients: deps $(STAMP) ## run each language's client test against a live server
	$(PY) -m pytest -ra tests/clients_live; rc=$$?; if [ $$rc -eq 5 ]; then echo "no client tests collected" >&2; exit 1; fi; exit $$rc

clean: ## remove the virtualenv and caches
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache

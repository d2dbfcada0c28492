# Image Factory (Python). `make run` and `make test` do all set-up themselves.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
BUF := tools/node_modules/.bin/buf
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=
# `buf breaking` compares the protos with this git ref (the main branch by default).
BUF_AGAINST ?= .git\#branch=main

.PHONY: help setup system-packages run demo test check lint proto proto-check buf-lint buf-breaking lock bench clean

help:
	@echo "make run     start the whole mesh on 127.0.0.1:8080 (Ctrl-C stops it)"
	@echo "make demo    the same, offline, against a demo Talos release in a local registry"
	@echo "make test    install what is missing, run the linters and the whole test suite"
	@echo "make check   linters only (ruff, mypy, buf lint, buf breaking)"
	@echo "make proto   regenerate gen/ from protos/"
	@echo "make bench   benchmarks (tests/bench)"

system-packages:
	@scripts/install_system_packages.sh

$(STAMP): pyproject.toml requirements.lock
	@scripts/install_system_packages.sh
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -r requirements.lock
	$(PY) -m pip install -q --disable-pip-version-check --no-deps -e .
	@touch $@

$(BUF): tools/package.json
	@scripts/install_system_packages.sh
	cd tools && npm install --no-fund --no-audit --loglevel=error
	@touch $@

COSIGN := tools/trixie/cosign/usr/bin/cosign

$(COSIGN): scripts/fetch_cosign.sh
	scripts/fetch_cosign.sh

setup: $(STAMP) $(BUF) $(COSIGN)

run: $(STAMP)
	$(PY) -m services.mesh

demo: $(STAMP)
	$(PY) -m devtools.demo

proto: $(STAMP)
	scripts/gen_proto.sh gen

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

buf-lint: $(BUF)
	$(BUF) lint

buf-breaking: $(BUF)
	@if git rev-parse --verify -q main >/dev/null; then \
		echo "$(BUF) breaking --against '$(BUF_AGAINST)'"; $(BUF) breaking --against '$(BUF_AGAINST)'; \
	else echo "buf breaking: no main branch to compare with; skipped"; fi

check: lint buf-lint buf-breaking

test: check
	$(PY) -m pytest --durations=20 $(PYTEST_ARGS)

bench: setup
	$(PY) -m pytest tests/bench -p no:cacheprovider -s $(PYTEST_ARGS)

lock: $(STAMP)
	{ echo "# Full pinned dependency set (runtime + dev), installed by 'make setup'. Regenerate with 'make lock'."; \
	  $(PY) -m pip freeze --exclude-editable | grep -v '^-e'; } > requirements.lock

clean:
	rm -rf $(VENV) tools/node_modules var .pytest_cache .mypy_cache .ruff_cache

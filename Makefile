# Firebreak: `make dev` runs the whole stack on this machine, `make test` checks everything.
#
# The virtualenv (.venv, made with uv) is reinstalled only when pyproject.toml changes;
# Debian packages the tests need come from scripts/install-system-deps.sh.

SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.firebreak-installed
# uv from PATH, else the module that `pip install --user uv` leaves off PATH.
UV = $(shell command -v uv 2>/dev/null || echo "python3 -m uv")

.PHONY: help env sysdeps dev demo test lint clean

help:
	@echo "make dev     run Temporal, OpenBao, the worker and the API here (Ctrl-C stops)"
	@echo "make demo    the same, then send a demo alert and follow its incident"
	@echo "make test    lint, type-check and run every test (real servers, no skips)"
	@echo "make lint    ruff, mypy and the layering contracts (lint-imports) only"
	@echo "make clean   remove caches and build output (keeps .venv and data/)"

$(PY):
	@command -v uv >/dev/null 2>&1 || python3 -m uv --version >/dev/null 2>&1 \
		|| python3 -m pip install --user uv \
		|| python3 -m pip install --user --break-system-packages uv
	$(UV) venv $(VENV)

$(STAMP): pyproject.toml | $(PY)
	$(UV) pip install --python $(PY) -e '.[dev]'
	@touch $@

env: $(STAMP)

sysdeps:
	@bash scripts/install-system-deps.sh

dev: env
	@bash scripts/install-system-deps.sh \
		|| echo "warning: system packages missing; only the tests need them" >&2
	$(PY) -m devstack

demo: env
	@bash scripts/install-system-deps.sh \
		|| echo "warning: system packages missing; only the tests need them" >&2
	$(PY) -m devstack --demo

lint: env
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy .
	$(VENV)/bin/lint-imports

test: env sysdeps
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy .
	$(VENV)/bin/lint-imports
	$(PY) -m pytest

clean:
	rm -rf build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache test-artifacts $(STAMP)
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -exec rm -rf {} +

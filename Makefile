# taxrisk: `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help
VENV := .venv
BIN := $(VENV)/bin
export MLFLOW_DISABLE_TELEMETRY := true
export MPLBACKEND := Agg

# The demo: a small synthetic city, end to end.
DEMO_DIR ?= data/demo
DEMO_TAXPAYERS ?= 5000
DEMO_MONTHS ?= 36
DEMO_SEED ?= 1
DEMO_END ?= 2025-12
DEMO_ASOF ?= 2025-12-31
DEMO_TRIALS ?= 10
PYTEST_ARGS ?=

.PHONY: help setup setup-test demo test lint format typecheck bench clean

help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

setup: ## install the pinned stack into .venv (idempotent)
	@scripts/setup.sh

setup-test: ## setup plus what the test suite needs
	@scripts/setup.sh --test

demo: setup ## demo city end to end (generate, validate, features, train, score, dispatch), then serve
	DEMO_DIR=$(DEMO_DIR) DEMO_TAXPAYERS=$(DEMO_TAXPAYERS) DEMO_MONTHS=$(DEMO_MONTHS) DEMO_SEED=$(DEMO_SEED) \
	DEMO_END=$(DEMO_END) DEMO_ASOF=$(DEMO_ASOF) DEMO_TRIALS=$(DEMO_TRIALS) scripts/demo.sh

test: setup-test ## lint, import contracts, type-check and run the whole test suite
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python scripts/lint_imports.py
	$(BIN)/mypy taxrisk features training serving experiments
	$(BIN)/pytest -p no:cacheprovider $(PYTEST_ARGS)

lint: ## ruff lint and format check, import-linter contracts (lint-imports; see pyproject.toml)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python scripts/lint_imports.py

format: ## ruff fix and format
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

typecheck: ## mypy
	$(BIN)/mypy taxrisk features training serving experiments

bench: setup ## benchmarks (see experiments/README.md); BENCH_DIR=data folder
	$(BIN)/python experiments/bench_generate.py
	$(BIN)/python experiments/bench_validate.py $(or $(BENCH_DIR),/work/data/city-1m)
	$(BIN)/python experiments/bench_features.py $(or $(BENCH_DIR),/work/data/city-1m)

clean: ## remove the workspace, demo data and caches (not .venv)
	rm -rf taxrisk-workspace taxrisk-demo test-artifacts data .pytest_cache .mypy_cache .ruff_cache .grimp_cache

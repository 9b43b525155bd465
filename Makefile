# zipscore's front door: every command a newcomer needs is a target here.
SHELL := /bin/bash
.DEFAULT_GOAL := help

UV_VERSION := 0.13.9
# Another interpreter in another virtualenv: make test-repeat PYTHON=/path/python3.13 VENV=.venv-3.13
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
export PATH := $(CURDIR)/$(BIN):$(PATH)
export UV_PROJECT_ENVIRONMENT := $(CURDIR)/$(VENV)
RUNS ?= 2 3
# As root (a development container), Celery warns at every worker start that it runs as
# superuser; make run says so once instead. Deployments run as user 10001 (Dockerfile).
RUN_WARNINGS := $(if $(filter 0,$(shell id -u)),PYTHONWARNINGS=ignore::UserWarning:celery.platforms,)
PYTEST_ARGS ?=

.PHONY: help install browser prometheus test-tools run test test-repeat drills lint format typecheck coverage security mutation bench bench-scaling bench-gateway bench-metrics bench-pressure profile clean doctor migrate load-sample

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-16s %s\n", $$1, $$2}'

install: ## create .venv with the locked dependencies (uv.lock)
	@command -v uv >/dev/null 2>&1 || python3 -m pip install --quiet "uv==$(UV_VERSION)"
	uv sync --frozen --all-extras --python $(PYTHON) --compile-bytecode
	@# Bytecode for our own modules too: with PYTHONDONTWRITEBYTECODE set (as on these
	@# machines) every worker and CLI subprocess would otherwise recompile them at start.
	@python -m compileall -q -j 0 worker producer ops tests exercises >/dev/null

browser: ## install Debian's chromium for the dashboard test, when missing (needs root)
	@test -x /usr/bin/chromium || { \
	  if [ "$$(id -u)" = 0 ]; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else echo "make browser: run 'sudo apt-get install chromium' for the dashboard test" >&2; fi; }

prometheus: ## install Debian's prometheus (prometheus, promtool) for the monitoring tests, when missing (needs root)
	@command -v prometheus >/dev/null 2>&1 && command -v promtool >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null; \
	  else echo "make prometheus: run 'sudo apt-get install prometheus' for the monitoring tests" >&2; fi; }

test-tools: ## install Debian's socat and redis-sentinel for the multi-host and failover drills, when missing (needs root)
	@command -v socat >/dev/null 2>&1 && command -v redis-sentinel >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq socat redis-sentinel >/dev/null; \
	  else echo "make test-tools: run 'sudo apt-get install socat redis-sentinel' for the multi-host and failover drills" >&2; fi; }

doctor: install ## check that Postgres and Redis answer
	zipscore doctor

migrate: install ## apply schema migrations
	zipscore db migrate

load-sample: migrate ## load the sample risk table if none is loaded
	zipscore db load-zipcodes ops/sample_data/risk-table.sample.csv --if-empty

run: install ## migrate, load the sample table if empty, run workers, beat, flower, gateway
	@zipscore doctor --require-free-ports || { echo "make run: mend what is above first" >&2; exit 1; }
	zipscore db migrate
	zipscore db load-zipcodes ops/sample_data/risk-table.sample.csv --if-empty
	@mkdir -p var
	@test "$$(id -u)" != 0 || echo "make run: running as root, so Celery's superuser warning is silenced for this run" >&2
	@# Ctrl-C is how a run ends: honcho then stops every process and exits 130, which is
	@# success here, not an error for make to report.
	@$(RUN_WARNINGS) honcho --procfile Procfile start || [ $$? -eq 130 ]

lint: install ## ruff lint and format check, and the import rules between rooms (import-linter)
	ruff check .
	ruff format --check .
	lint-imports --no-cache

format: install ## apply ruff's formatting and fixes
	ruff format .
	ruff check --fix .

typecheck: install ## mypy, strict
	mypy

test: install browser prometheus test-tools lint typecheck security ## the whole suite (unit, integration, e2e) with the gates
	@# Without Postgres and Redis the service tiers skip (CI fails instead), so the coverage
	@# gate only holds when they run.
	@gate=90; zipscore doctor >/dev/null 2>&1 || { gate=0; \
	  echo "make test: Postgres or Redis is down: service tiers skipped, coverage gate off" >&2; }; \
	python -m pytest --cov --cov-report=term --cov-fail-under=$$gate $(PYTEST_ARGS)

test-repeat: install ## run the whole suite again, once per RUNS (CI's repeatability gate); pytest times each
	@for run in $(RUNS); do \
	  echo "suite run $$run of 3 on $$(python --version):"; \
	  python -m pytest -q $(PYTEST_ARGS) || exit 1; \
	done

DRILLS_ARGS ?=
drills: install test-tools ## full reliability drills (faults, hostile input, secrets) and the 60 s soak table
	ZIPSCORE_DRILLS=full python -m pytest -m drill --no-cov -s --timeout 900 $(DRILLS_ARGS)
	python -m ops.drills.soak --seconds 60 --phase-seconds 10

security: install ## bandit (medium severity and up) and pip-audit of the lock file
	bandit -q -r worker producer -ll
	python ops/audit_dependencies.py

mutation: install ## mutation testing of the core rules with mutmut, and the score
	rm -rf mutants
	mutmut run --max-children 2
	mutmut export-cicd-stats
	python ops/mutation_score.py mutants/mutmut-cicd-stats.json --target 85

BENCH_ARGS ?=
GATEWAY_BENCH_ARGS ?=
SCALING_BENCH_ARGS ?=
METRICS_BENCH_ARGS ?=
bench: install ## batch benchmark (floor, task per row, zipscore; DuckDB and Polars side by side; 1 vs 2 worker processes), the gateway's, the cost of metrics
	@# Bytecode once, so worker and CLI start-up do not recompile every module.
	python -m compileall -q -j 0 $(VENV)/lib worker producer >/dev/null || true
	python -m ops.bench.batch_bench $(BENCH_ARGS)
	python -m ops.bench.scaling $(SCALING_BENCH_ARGS)
	python -m ops.bench.gateway_bench $(GATEWAY_BENCH_ARGS)
	python -m ops.bench.metrics_cost $(METRICS_BENCH_ARGS)

bench-scaling: install ## batch job with a -c 1 and a -c 2 worker: each part's CPU and the ceilings of scaling out
	python -m ops.bench.scaling $(SCALING_BENCH_ARGS)

bench-gateway: install ## gateway benchmark: 64 HTTP clients, off-loop vs blocking handlers
	python -m ops.bench.gateway_bench $(GATEWAY_BENCH_ARGS)

bench-metrics: install ## the cost of metrics on the lookup round trip: off and on in the same run
	python -m ops.bench.metrics_cost $(METRICS_BENCH_ARGS)

bench-pressure: install ## the gateway with no worker: 100 uncached lookups and 6 concurrent 60 MB uploads
	python -m ops.bench.gateway_pressure

profile: install ## cProfile a burst of lookups and a batch run; top functions, reports/*.prof
	python -m ops.bench.profile

coverage: install ## coverage report of worker/ and producer/ as HTML in reports/coverage
	python -m pytest --cov --cov-report=html:reports/coverage --cov-report=term $(PYTEST_ARGS)

clean: ## remove caches, reports and the virtualenv
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis .coverage reports var mutants
	find . -name __pycache__ -type d -prune -exec rm -rf {} +

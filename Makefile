# Two set-up commands: `make demo` and `make test`. Both create .venv and install on first use:
# `make demo` / `make dev` the runtime dependencies only, `make test` adds the dev extra
# (pytest, moto, playwright, ruff, mypy... and the production extra its tests import).
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
# One venv, one stamp per install level; editing pyproject.toml or setup.py reinstalls.
RUNTIME_STAMP := $(VENV)/.installed-runtime
DEV_STAMP := $(VENV)/.installed-dev
# Where `make demo` / `make dev` keep the Dagster instance and the tables (override as you like).
DAGSTER_HOME ?= $(CURDIR)/.sentinel/dagster
SENTINEL_DATA_DIR ?= $(CURDIR)/.sentinel/data
RUN_ENV := DAGSTER_HOME=$(DAGSTER_HOME) SENTINEL_DATA_DIR=$(SENTINEL_DATA_DIR)

.PHONY: install install-dev demo test test-fast dev lint typecheck validate bench clean browser \
	postgres

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(RUNTIME_STAMP): pyproject.toml setup.py | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $@

$(DEV_STAMP): $(RUNTIME_STAMP)
	PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 $(BIN)/pip install --quiet -e ".[dev]"
	touch $@

install: $(RUNTIME_STAMP)

install-dev: $(DEV_STAMP)

demo: $(RUNTIME_STAMP)
	mkdir -p $(DAGSTER_HOME)
	$(RUN_ENV) $(BIN)/sentinel demo --days 60

# `make dev PORT=3001` for another port. `sentinel demo` records the first day it wrote in
# $(DEMO_START); with the demo source, `make dev` starts the daily partitions there, so the UI
# shows the demo's days rather than every day since 2025-01-01 as missing (the days after the
# demo are shown missing until the 09:00 schedule or a backfill fills them). A
# SENTINEL_START_DATE you set (environment or `make dev SENTINEL_START_DATE=...`) wins.
PORT ?= 3000
DEMO_START := $(DAGSTER_HOME)/sentinel-demo-start

dev: $(RUNTIME_STAMP)
	mkdir -p $(DAGSTER_HOME)
	@start='$(SENTINEL_START_DATE)'; \
	if [ -z "$$start" ] && [ -f '$(DEMO_START)' ] \
	  && { [ -z '$(SENTINEL_SOURCE)' ] || [ '$(SENTINEL_SOURCE)' = demo ]; }; then \
	  start=$$(cat '$(DEMO_START)'); \
	  echo "Daily partitions start on $$start, the first day of the demo ($(DEMO_START));" \
	    "set SENTINEL_START_DATE to choose another day."; \
	fi; \
	$(RUN_ENV) SENTINEL_START_DATE="$$start" $(BIN)/dagster dev -w workspace.yaml -p $(PORT)

lint: $(DEV_STAMP)
	$(BIN)/ruff check .

typecheck: $(DEV_STAMP)
	$(BIN)/mypy

validate: $(RUNTIME_STAMP)
	$(BIN)/dagster definitions validate -w workspace.yaml

# The UI test drives Debian's chromium with Playwright; Playwright's browser download is never
# used (no `playwright install`). Installed here when missing, with sudo unless already root.
CHROMIUM ?= /usr/bin/chromium
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
APT_INSTALL := $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends

browser:
	@if [ ! -x "$(CHROMIUM)" ]; then \
	  echo "Installing Debian's chromium for the UI test"; \
	  $(APT_INSTALL) chromium || { $(SUDO) apt-get update && $(APT_INSTALL) chromium; }; \
	fi

# test_production.py needs PostgreSQL at 127.0.0.1:5432; start a stopped local cluster if there
# is one (if not, those tests fail and say how to get one).
postgres:
	@if command -v pg_isready >/dev/null && ! pg_isready -q -h 127.0.0.1 -p 5432 \
	  && command -v pg_ctlcluster >/dev/null && [ -d /etc/postgresql ]; then \
	  $(SUDO) pg_ctlcluster --skip-systemctl-redirect $$(ls /etc/postgresql) main start || true; \
	fi

test: $(DEV_STAMP) lint typecheck validate browser postgres
	SENTINEL_CHROMIUM=$(CHROMIUM) PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 $(BIN)/pytest -q

# The quick loop: unit tests only (no PostgreSQL, chromium, fake servers or Dagster runs; what
# "integration" means is in sentinel_pipeline_tests/conftest.py).
test-fast: $(DEV_STAMP) lint
	$(BIN)/pytest -q -m "not integration"

# Benchmarks print their figures; they are not tests (see the README for what each measures).
# Dev install: cost_explorer_requests.py borrows the tests' fake Cost Explorer.
bench: $(DEV_STAMP)
	$(BIN)/python -m benchmarks.quality.run
	$(BIN)/python -m benchmarks.public.run
	$(BIN)/python -m benchmarks.public.ceiling
	$(BIN)/python -m benchmarks.shapes
	@if [ -n "$(NAB)" ]; then $(BIN)/python -m benchmarks.real_series --nab "$(NAB)"; \
	else echo "benchmarks.real_series skipped: make bench NAB=<a checkout of numenta/NAB>"; fi
	$(BIN)/python benchmarks/detection_speed.py
	$(BIN)/python benchmarks/daily_run.py --series 100000
	$(BIN)/python benchmarks/backfill.py --days 240 --series 70
	$(BIN)/python benchmarks/backfill.py --days 365 --series 1000
	$(BIN)/python benchmarks/scale.py --days 365 --series 1000 3000 10000
	$(BIN)/python benchmarks/cur_aggregate.py
	$(BIN)/python benchmarks/cost_explorer_requests.py

clean:
	rm -rf .sentinel

# Two set-up commands: `make demo` and `make test`. Both create .venv and install on first use.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export DAGSTER_HOME ?= $(CURDIR)/.sentinel/dagster
export SENTINEL_DATA_DIR ?= $(CURDIR)/.sentinel/data

.PHONY: install demo test dev lint typecheck validate bench clean

$(STAMP): pyproject.toml setup.py
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	mkdir -p $(DAGSTER_HOME)
	$(BIN)/sentinel demo --days 60

dev: $(STAMP)
	mkdir -p $(DAGSTER_HOME)
	$(BIN)/dagster dev -w workspace.yaml

lint: $(STAMP)
	$(BIN)/ruff check .

typecheck: $(STAMP)
	$(BIN)/mypy

validate: $(STAMP)
	$(BIN)/dagster definitions validate -w workspace.yaml

test: $(STAMP) lint validate
	$(BIN)/pytest -q

bench: $(STAMP)
	$(BIN)/python benchmarks/backfill.py

clean:
	rm -rf .sentinel

# Two set-up commands: `make demo` and `make test`. Both create .venv and install on first use.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Where `make demo` / `make dev` keep the Dagster instance and the tables (override as you like).
DAGSTER_HOME ?= $(CURDIR)/.sentinel/dagster
SENTINEL_DATA_DIR ?= $(CURDIR)/.sentinel/data
RUN_ENV := DAGSTER_HOME=$(DAGSTER_HOME) SENTINEL_DATA_DIR=$(SENTINEL_DATA_DIR)

.PHONY: install demo test dev lint validate bench clean

$(STAMP): pyproject.toml setup.py
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	mkdir -p $(DAGSTER_HOME)
	$(RUN_ENV) $(BIN)/sentinel demo --days 60

dev: $(STAMP)
	mkdir -p $(DAGSTER_HOME)
	$(RUN_ENV) $(BIN)/dagster dev -w workspace.yaml

lint: $(STAMP)
	$(BIN)/ruff check .

validate: $(STAMP)
	$(BIN)/dagster definitions validate -w workspace.yaml

test: $(STAMP) lint validate
	$(BIN)/pytest -q

# Benchmarks print their figures; they are not tests (see the README for what each measures).
bench: $(STAMP)
	$(BIN)/python -m benchmarks.quality.run
	$(BIN)/python benchmarks/detection_speed.py
	$(BIN)/python benchmarks/backfill.py --days 240 --series 70
	$(BIN)/python benchmarks/backfill.py --days 365 --series 1000

clean:
	rm -rf .sentinel

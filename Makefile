# Two commands do all set-up: `make run` and `make test`.
# Glue 5.x runs Python 3.11: prefer it when installed.
PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test lint format bench bench-generate bench-etl clean

# (Re)install whenever requirements.txt changes.
$(STAMP): requirements.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/python run_pipeline.py

test: $(STAMP)
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# Both benchmarks, one after the other (never in parallel: they measure the machine).
bench: $(STAMP)
	$(BIN)/python benchmarks/bench_generate.py
	$(BIN)/python benchmarks/bench_etl.py

bench-generate: $(STAMP)
	$(BIN)/python benchmarks/bench_generate.py

# The ETL job at 1M and 10M rows against DuckDB and plain Spark (inputs cached in benchmarks/.cache/).
bench-etl: $(STAMP)
	$(BIN)/python benchmarks/bench_etl.py

clean:
	rm -rf lake spark-warehouse metastore_db derby.log .pytest_cache

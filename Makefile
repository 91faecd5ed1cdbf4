# Two commands do all set-up: `make run` and `make test`.
# Glue 5.x runs Python 3.11: prefer it when installed.
PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# checkov pins an older boto3/botocore than requirements.txt: a tool venv of its own.
CHECKOV_VENV  := .venv-checkov
CHECKOV_STAMP := $(CHECKOV_VENV)/.installed

.PHONY: run test lint format template bench bench-generate bench-etl bench-incremental clean

# The installer: uv installs the same pinned ranges as pip, in about half pip's time.
UV := uv>=0.9,<1

# (Re)install whenever requirements.txt changes.
$(STAMP): requirements.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet "$(UV)"
	$(BIN)/uv pip install --quiet --python $(BIN)/python -r requirements.txt
	$(BIN)/python -m pipeline.class_archive
	touch $(STAMP)

# (Re)install whenever requirements-checkov.txt changes, with the project venv's uv.
$(CHECKOV_STAMP): requirements-checkov.txt | $(STAMP)
	test -x $(BIN)/uv || $(BIN)/python -m pip install --quiet "$(UV)"
	test -x $(CHECKOV_VENV)/bin/python || $(BIN)/uv venv --quiet --python $(PYTHON) $(CHECKOV_VENV)
	$(BIN)/uv pip install --quiet --python $(CHECKOV_VENV)/bin/python -r requirements-checkov.txt
	touch $(CHECKOV_STAMP)

# The job's class archive is made at install; --if-missing remakes it after a Java or
# Spark change (and removes stale ones), before the run, not inside it.
run: $(STAMP)
	$(BIN)/python -m pipeline.class_archive --if-missing
	$(BIN)/python run_pipeline.py

# tests/test_template.py scans infrastructure/template.yaml with $(CHECKOV_VENV)/bin/checkov.
test: $(STAMP) $(CHECKOV_STAMP)
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# Regenerate the committed CloudFormation template from the plan `deploy.py up` applies.
template: $(STAMP)
	$(BIN)/python deploy.py template > infrastructure/template.yaml.tmp
	mv infrastructure/template.yaml.tmp infrastructure/template.yaml

# Both benchmarks, one after the other (never in parallel: they measure the machine).
bench: $(STAMP)
	$(BIN)/python benchmarks/bench_generate.py
	$(BIN)/python benchmarks/bench_etl.py

bench-generate: $(STAMP)
	$(BIN)/python benchmarks/bench_generate.py

# The ETL job at 1M and 10M rows against DuckDB and plain Spark (inputs cached in benchmarks/.cache/).
bench-etl: $(STAMP)
	$(BIN)/python benchmarks/bench_etl.py

# Daily loads: 20 daily files of 500K rows run one by one, then a full rebuild (inputs cached in benchmarks/.cache/).
bench-incremental: $(STAMP)
	$(BIN)/python benchmarks/bench_incremental.py

clean:
	rm -rf lake spark-warehouse metastore_db derby.log .pytest_cache

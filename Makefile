# Two commands do all set-up: `make run` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test lint bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)  ## run the service on config/floodwatch.toml
	$(BIN)/floodwatch run

test: $(STAMP)  ## lint, then the whole test suite (also on PostgreSQL when FLOODWATCH_TEST_DATABASE_URL is set)
	$(BIN)/ruff check floodwatch tests benchmarks
	$(BIN)/ruff format --check floodwatch tests benchmarks
	$(BIN)/lint-imports --no-cache
	$(BIN)/pytest -q

bench: $(STAMP)  ## print ingest, cycle, Telegram delivery, export, startup, login-throttling and forecast-keeping figures (see docs/benchmarks.md)
	$(BIN)/python benchmarks/bench_pipeline.py
	$(BIN)/python benchmarks/bench_telegram.py
	$(BIN)/python benchmarks/bench_exports.py
	$(BIN)/python benchmarks/bench_startup.py
	$(BIN)/python benchmarks/bench_login.py
	$(BIN)/python benchmarks/bench_forecasts.py

clean:
	rm -rf $(VENV) var .pytest_cache .ruff_cache

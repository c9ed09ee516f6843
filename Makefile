# Two commands do everything on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: run test lint typecheck pytest pytest-duckdb pytest-postgresql bench bench-scale clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(VENV)/.runtime: requirements.txt | $(BIN)/python
	$(BIN)/pip install -q -r requirements.txt
	touch $@

$(VENV)/.dev: requirements.txt requirements-dev.txt | $(BIN)/python
	$(BIN)/pip install -q -r requirements-dev.txt
	touch $@ $(VENV)/.runtime

# The last 2.x OpenAI SDK beside the venv's 3.x, for the SDK tests (git-ignored).
SDK2 := .sdk/openai-2
$(SDK2)/.installed: tests/e2e/openai_sdk/requirements-2x.txt | $(BIN)/python
	rm -rf $(SDK2)
	$(BIN)/pip install -q --target $(SDK2) -r tests/e2e/openai_sdk/requirements-2x.txt
	touch $@

# A first run writes a random SECRET_KEY into .env (git-ignored), so nothing needs configuring.
.env:
	@$(PYTHON) -c "import secrets; print('SECRET_KEY=' + secrets.token_urlsafe(50))" > .env
	@echo "Wrote .env with a new random SECRET_KEY."

run: $(VENV)/.runtime .env
	$(BIN)/python -m aigateway.serve --host $(HOST) --port $(PORT)

lint: $(VENV)/.dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports --no-cache

typecheck: $(VENV)/.dev
	$(BIN)/mypy .

# The whole suite on DuckDB, then again on PostgreSQL: a fresh schema per test (and per
# server an end-to-end test starts) in the server at TEST_DATABASE_URL, or in a throwaway
# one (tests/services.py). Tests marked duckdb_only or postgresql_only run on their backend.
pytest: pytest-duckdb pytest-postgresql

pytest-duckdb: $(VENV)/.dev $(SDK2)/.installed
	bash scripts/install-test-packages.sh $(BIN)/python
	bash scripts/install-axe.sh
	$(BIN)/python -m pytest

# tests/stub tests only the OpenRouter and OIDC stand-ins, which keep no data in the
# gateway's database, so the DuckDB pass covers them for both backends.
pytest-postgresql: $(VENV)/.dev $(SDK2)/.installed
	bash scripts/install-test-packages.sh $(BIN)/python
	bash scripts/install-axe.sh
	$(BIN)/python -m pytest --database=postgresql --ignore=tests/stub

test: lint typecheck pytest

bench: $(VENV)/.dev
	$(BIN)/python bench/auth_bench.py
	$(BIN)/python bench/gateway_bench.py
	$(BIN)/python bench/stats_bench.py

# DuckDB's single process, then PostgreSQL + Redis with 2 workers, side by side (bench/README.md).
bench-scale: $(VENV)/.dev
	$(BIN)/python bench/auth_bench.py --database postgres --workers 2
	$(BIN)/python bench/gateway_bench.py --database postgres --workers 2

clean:
	rm -rf $(VENV) .sdk .pytest_cache .mypy_cache .ruff_cache

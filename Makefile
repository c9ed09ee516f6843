# Two commands do everything on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: run test lint typecheck pytest bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(VENV)/.runtime: requirements.txt | $(BIN)/python
	$(BIN)/pip install -q -r requirements.txt
	touch $@

$(VENV)/.dev: requirements.txt requirements-dev.txt | $(BIN)/python
	$(BIN)/pip install -q -r requirements-dev.txt
	touch $@ $(VENV)/.runtime

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

pytest: $(VENV)/.dev
	bash scripts/install-chromium.sh
	bash scripts/install-axe.sh
	$(BIN)/python -m pytest

test: lint typecheck pytest

bench: $(VENV)/.dev
	$(BIN)/python bench/auth_bench.py
	$(BIN)/python bench/gateway_bench.py
	$(BIN)/python bench/stats_bench.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache

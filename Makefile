# dispatch_pay — the two commands a newcomer needs: `make run` and `make test`.
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 5000

.PHONY: run test install lint typecheck pytest migrate seed clean bench

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: requirements.txt requirements-dev.txt | $(BIN)/python
	$(BIN)/pip install --disable-pip-version-check -q -r requirements-dev.txt
	touch $@

install: $(VENV)/.installed

## run: install, migrate, seed the demo, start localstripe if no keys are set, serve
run: install
	$(BIN)/python -m dispatch_pay.devserver --host $(HOST) --port $(PORT)

migrate: install
	$(BIN)/flask --app app db upgrade

seed: migrate
	$(BIN)/flask --app app seed-demo

## lint: ruff, and import-linter (layers point down; only the Stripe module imports stripe)
lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

typecheck: install
	$(BIN)/mypy

pytest: install
	$(BIN)/pytest $(PYTEST_ARGS)

## test: lint, type-check and the whole test suite (PostgreSQL too when TEST_DATABASE_URL is set)
test: lint typecheck pytest

## bench: seed a database and compare the app with hello-world under the same gunicorn
## e.g. make bench BENCH_ARGS="--database-url postgresql+psycopg://root@127.0.0.1:5432/bench_1k --articles 1000"
bench: install
	$(BIN)/python -m bench.run $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache

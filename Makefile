# earthvec: the two set-up commands are `make demo` and `make test`; both create .venv first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_DB ?= demo_db
DEMO_SERVE ?= 1
PORT ?= 8501

.PHONY: install test test-ray test-all test-browser demo bench bench-scale chaos bad-input lint clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q "torch==2.13.0"
	$(BIN)/python -m pip install -q -e ".[dev,bench,browser,ray]"
	touch $(STAMP)

install: $(STAMP)

test: install
	$(BIN)/python -m pytest

test-ray: install  # the Ray runner on a local cluster, kill tests included (~3 min)
	$(BIN)/python -m pytest -m ray -p no:cacheprovider

test-all: install
	$(BIN)/python -m pytest -m "not gpu and not browser"

test-browser: install
	bash .ci/install-browser
	$(BIN)/python -m pytest -m browser

demo: install
	$(BIN)/earthvec demo --db $(DEMO_DB) --port $(PORT) $(if $(filter 0,$(DEMO_SERVE)),--no-serve,)

bench: install
	$(BIN)/earthvec bench --out bench_results

bench-scale: install  # the out-of-core index at 100M x 64-d: hours on 2 cores, ~35 GB of disk
	$(BIN)/earthvec bench --only scale --out bench_results

chaos: install  # SIGKILL fault injection, concurrency, then the hostile-input and SQL-escape tables
	$(BIN)/python -m bench.chaos --kills $(or $(KILLS),20) --out bench_results
	$(BIN)/python -m bench.concurrency --readers 4 --out bench_results
	$(BIN)/python -m bench.bad_input --slow

bad-input: install  # hostile/broken input through the CLI: prints the case table (part of make chaos)
	$(BIN)/python -m bench.bad_input --slow

lint: install
	$(BIN)/ruff check embedder index app tests bench
	$(BIN)/mypy embedder index app

clean:
	rm -rf $(DEMO_DB) bench_results .pytest_cache .mypy_cache .ruff_cache

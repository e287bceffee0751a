# The two commands of the README: `make demo` (the main job) and `make test` (the test suite).
# Both create .venv when missing: `make demo` installs medtune alone (what the demo needs), `make test` medtune with
# every extra and the test tools.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
PY := $(VENV)/bin/python
# Empty: the PneumoniaMNIST file that ships inside the package (`medtune demo`); or any DATA for `medtune train`.
DEMO_DATA ?=
PYTEST_ARGS ?=
# Two test processes with one torch thread each: 1.5x faster on 2 cores than one process with two threads
# (measured side by side; see the README's Layout section). Two processes with two threads each oversubscribe
# the cores and slow training tests many times over.
PYTEST_PARALLEL ?= -n 2 --dist loadfile

.PHONY: setup demo test bench-quick docs wheel-check fuzz lint bench clean

$(VENV)/.core: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e .
	touch $@

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $(VENV)/.core $@

setup: $(VENV)/.installed

demo: $(VENV)/.core
	@if [ -z "$(DEMO_DATA)" ]; then $(VENV)/bin/medtune demo; else $(VENV)/bin/medtune train "$(DEMO_DATA)"; fi

# The benchmarks' quick modes (`python benchmarks/X.py --quick`) run by `make bench-quick`, not by `make test`.
test: setup
	OMP_NUM_THREADS=1 $(PY) -m pytest $(PYTEST_PARALLEL) -m "not bench" $(PYTEST_ARGS)

bench-quick: setup
	OMP_NUM_THREADS=1 $(PY) -m pytest tests/benchmarks -m bench -p no:randomly -n 2 $(PYTEST_ARGS)

# The documentation site (MkDocs Material); --strict fails on a broken link or a page missing from the navigation.
docs: setup
	NO_MKDOCS_2_WARNING=1 DISABLE_MKDOCS_2_WARNING=true $(VENV)/bin/mkdocs build --strict -d site

# The built wheel installed into a fresh virtualenv, as `pip install medtune` would (tools/wheel_check.sh).
wheel-check: setup
	bash tools/wheel_check.sh

# A long fuzzing run by hand (20,000 inputs per target, about an hour here); make test runs a bounded one.
fuzz: setup
	HYPOTHESIS_PROFILE=long $(PY) -m pytest tests/fuzz -p no:randomly -W ignore::UserWarning $(PYTEST_ARGS)

lint: setup
	$(VENV)/bin/ruff check src tests benchmarks tools examples docs
	$(VENV)/bin/ruff format --check src tests benchmarks tools examples docs
	$(VENV)/bin/lint-imports
	$(PY) tools/check_size.py src
	$(PY) tools/check_layout.py src
	$(PY) tools/check_tests.py src/medtune tests

bench: setup
	$(PY) benchmarks/store.py
	$(PY) benchmarks/pneumoniamnist.py
	$(PY) benchmarks/explain.py
	$(PY) benchmarks/claims.py
	$(PY) benchmarks/startup.py
	$(PY) benchmarks/inference.py
	$(PY) benchmarks/segment_losses.py
	$(PY) benchmarks/similar.py
	$(PY) benchmarks/freeze.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache

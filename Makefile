# The two commands of the README: `make demo` (the main job) and `make test` (the test suite).
# Both create .venv and install medtune with its test extras when missing.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
PY := $(VENV)/bin/python
SHARED ?= ../shared/data
DEMO_DATA ?= $(SHARED)/pneumoniamnist/pneumoniamnist.npz
PYTEST_ARGS ?=
# Two test processes with one torch thread each: 1.5x faster on 2 cores than one process with two threads
# (measured side by side; see the README's Layout section). Two processes with two threads each oversubscribe
# the cores and slow training tests many times over.
PYTEST_PARALLEL ?= -n 2 --dist loadfile

.PHONY: setup demo test fuzz lint bench clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $@

setup: $(VENV)/.installed

demo: setup
	@test -f "$(DEMO_DATA)" || { echo "demo data $(DEMO_DATA) is absent: put ../shared/data beside this folder,"; \
	  echo "or download pneumoniamnist.npz (pip install medmnist; it saves to ~/.medmnist) and run"; \
	  echo "  make demo DEMO_DATA=~/.medmnist/pneumoniamnist.npz"; exit 1; }
	$(VENV)/bin/medtune train "$(DEMO_DATA)"

test: setup
	OMP_NUM_THREADS=1 $(PY) -m pytest $(PYTEST_PARALLEL) $(PYTEST_ARGS)

# A long fuzzing run by hand (20,000 inputs per target, about an hour here); make test runs a bounded one.
fuzz: setup
	HYPOTHESIS_PROFILE=long $(PY) -m pytest tests/fuzz -p no:randomly -W ignore::UserWarning $(PYTEST_ARGS)

lint: setup
	$(VENV)/bin/ruff check src tests benchmarks tools examples
	$(VENV)/bin/ruff format --check src tests benchmarks tools examples
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

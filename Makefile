# The whole set-up on a fresh machine: `make demo` runs the main job, `make test` runs the test suite.
# torch is pinned here, not in pyproject.toml, so that a fresh machine takes the CPU build from local disk
# instead of a multi-GB CUDA build; users with their own torch install the package alone.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
TORCH := torch==2.13.0

.PHONY: test demo

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(PY)
	$(PY) -m pip install --quiet "$(TORCH)" -e ".[test]"
	touch $@

test: $(VENV)/.installed
	$(VENV)/bin/ruff check src tests benchmarks examples
	$(PY) -m pytest -n 2 -q

demo: $(VENV)/.installed
	rm -rf build/demo
	$(VENV)/bin/hardmine compare --dataset digits --seeds 3 --epochs 10 --out build/demo

# The whole set-up on a fresh machine: `make demo` runs the main job, `make test` runs the test suite.
# Both install into .venv exactly the versions in requirements/test.lock (with hashes, by uv: seconds), and torch
# from the Makefile's pin: pip takes the CPU build from this machine's disk instead of a multi-GB CUDA build.
# pyproject.toml keeps the ranges users may install; `make lock` re-resolves the lock within them.
# The detection tests need torchvision, which only works beside the torch it was built for: `make test` builds a
# second venv, .venv-vision, with that pair (pip takes it from this machine's disk) plus the same lock, and runs
# tests/integrations/test_torchvision*.py there; the main suite in .venv skips them (tests/conftest.py).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
UV := $(VENV)/bin/uv
UV_VERSION := 0.13.10
TORCH := torch==2.13.0
LOCK := requirements/test.lock
VISION_VENV := .venv-vision
VISION_PY := $(VISION_VENV)/bin/python
VISION := torch==2.14.1 torchvision==0.29.1
VISION_TESTS := tests/integrations/test_torchvision*.py

.PHONY: test demo lock

$(UV):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet "uv==$(UV_VERSION)"

$(VENV)/.installed: pyproject.toml $(LOCK) | $(UV)
	$(PY) -m pip install --quiet "$(TORCH)"
	$(UV) pip install --quiet --python $(PY) --require-hashes --no-deps -r $(LOCK)
	$(UV) pip install --quiet --python $(PY) --no-deps --no-build-isolation -e .
	touch $@

$(VISION_VENV)/.installed: pyproject.toml $(LOCK) | $(UV)
	$(PYTHON) -m venv $(VISION_VENV)
	$(VISION_PY) -m pip install --quiet $(VISION)
	$(UV) pip install --quiet --python $(VISION_PY) --require-hashes --no-deps -r $(LOCK)
	$(UV) pip install --quiet --python $(VISION_PY) --no-deps --no-build-isolation -e .
	touch $@

test: $(VENV)/.installed $(VISION_VENV)/.installed
	$(VENV)/bin/ruff check src tests benchmarks examples
	$(PY) -m pytest -n 2 -q
	$(VISION_PY) -m pytest -n 2 -q $(VISION_TESTS)

demo: $(VENV)/.installed
	rm -rf build/demo
	$(VENV)/bin/hardmine compare --dataset digits --seeds 3 --epochs 10 --lr 0.2 --out build/demo
	@echo "What this showed: each strategy trained on scikit-learn's digits with 3 seeds, at the learning rate that"
	@echo "did best on validation, and the first line says which one to use and at what saving against uniform."
	@echo "The table compares them at equal footing; build/demo/report.html has every column and the plots."

lock: | $(UV)
	$(UV) pip compile pyproject.toml --extra test --python-version 3.11 --upgrade --quiet \
		--find-links /opt/wheels --override requirements/torch-cpu.txt --no-emit-package torch \
		--generate-hashes -o $(LOCK)
	$(PY) requirements/stamp.py $(LOCK)

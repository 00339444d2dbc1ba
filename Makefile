# The two commands of the README. Each creates .venv on a fresh machine,
# installs what it needs, then runs. torch and torchvision are pinned to the
# matching pair these machines keep on disk (a CUDA build, which also runs on the
# CPU); the package itself accepts any torch >= 2.2 with its torchvision.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
PY     := $(VENV)/bin/python
TORCH  := torch==2.14.1 torchvision==0.29.1
# pytest-xdist workers for `make test` (the tests use free ports and per-test
# folders, so they run in parallel); PYTEST_WORKERS=0 runs them in one process
PYTEST_WORKERS ?= 2

.PHONY: demo test lint docs bench clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q $(TORCH)

$(VENV)/.demo-installed: pyproject.toml | $(PY)
	$(PY) -m pip install -q -e ".[lab]"
	touch $@

$(VENV)/.dev-installed: pyproject.toml | $(PY)
	$(PY) -m pip install -q -e ".[dev]"
	touch $@

demo: $(VENV)/.demo-installed
	$(PY) examples/mnist_demo.py --out runs/demo

lint: $(VENV)/.dev-installed
	$(VENV)/bin/ruff check src tests benchmarks examples tools docs/*.py
	$(VENV)/bin/ruff format --check src tests benchmarks examples tools docs/*.py
	$(VENV)/bin/mypy

# the docs site and its API reference; --strict: a broken link or anchor, a page
# missing from the nav or a docstring that does not parse fails (mkdocs.yml)
docs: $(VENV)/.dev-installed
	$(VENV)/bin/mkdocs build --strict

test: lint docs
	$(VENV)/bin/pytest -q -n $(PYTEST_WORKERS)

bench: $(VENV)/.dev-installed
	$(PY) benchmarks/loss_overhead.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .site

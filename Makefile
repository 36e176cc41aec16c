# Every target installs what it needs first, so each works on a fresh machine.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# torch is pinned: a looser spec makes pip pull a multi-GB CUDA build instead of the CPU wheel.
STAMP := $(VENV)/.installed

.PHONY: install test quickstart clean

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "torch==2.13.0"
	$(PY) -m pip install -q -e ".[dev]"
	touch $(STAMP)

test: install
	$(PY) -m pytest -q tests

quickstart: install
	$(PY) -m textclf.quickstart

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache

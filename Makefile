# Every target installs what it needs first, so each works on a fresh machine.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# torch is pinned: a looser spec makes pip pull a multi-GB CUDA build instead of the CPU wheel.
STAMP := $(VENV)/.installed

.PHONY: install test quickstart clean cluster-up cluster-down bench

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "torch==2.13.0"
	$(PY) -m pip install -q -e ".[dev]"
	touch $(STAMP)

test: install
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m compileall -q textclf jobs benchmarks
	$(PY) -m pytest -q --durations=15 tests

DATA := data/rotten-tomatoes
MODEL := models/rotten-tomatoes
LABELED := labeled/rotten-tomatoes-test
TEXTCLF := $(VENV)/bin/textclf

# The whole path on the built-in corpus: prepare, train with 2 Ray Train workers, evaluate, predict, label.
quickstart: install
	$(TEXTCLF) prepare rotten-tomatoes $(DATA) --overwrite
	$(TEXTCLF) train --train $(DATA)/train --validation $(DATA)/validation --out $(MODEL) --workers 2
	$(TEXTCLF) evaluate $(MODEL) $(DATA)/test
	$(TEXTCLF) predict $(MODEL) "A gorgeous, witty, heartfelt film." "Two hours I will never get back." \
		"The plot is thin but the performances carry it."
	$(TEXTCLF) label $(MODEL) $(DATA)/test $(LABELED) --probabilities --keep-columns text --overwrite
	$(PY) -c "import pyarrow.dataset as d; print(d.dataset('$(LABELED)').head(5).to_pandas().to_string(max_colwidth=50))"
	@echo "prepared splits: $(DATA)/{train,validation,test}"
	@echo "model bundle:    $(MODEL) (report: $(MODEL)/report, checkpoints: $(MODEL).checkpoints)"
	@echo "labeled test:    $(LABELED) (manifest: $(LABELED)/_manifest.json)"

# A real local Ray head (127.0.0.1 only, token auth) for `ray job submit`; see cluster/README.md.
cluster-up: install
	cluster/local.sh up

cluster-down: install
	cluster/local.sh down

# Side-by-side measurements, about 15 minutes on 2 cores: each table to stdout and runs/bench/*.md.
bench: install
	$(PY) -m pip install -q -e ".[dev,bench]"
	$(PY) benchmarks/run_all.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache

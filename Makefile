# Two commands on a fresh machine:  `make demo` (the main job) and `make test` (the tests).
# Each creates the virtual environment and installs what it needs (CPU torch by default).
VENV ?= .venv
PYTHON ?= python3
# CPU build of torch. For a GPU: make TORCH_SPEC="torch" TORCH_INDEX="--index-url https://download.pytorch.org/whl/cu124"
TORCH_SPEC ?= torch==2.13.0
TORCH_INDEX ?=
PY := $(VENV)/bin/python

.PHONY: demo test lint docs bench bench-random bench-quick clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q $(TORCH_INDEX) "$(TORCH_SPEC)"
	$(PY) -m pip install -q -e ".[dev]"
	touch $@

demo: $(VENV)/.installed
	$(VENV)/bin/pyrocausal demo --out out/demo

test: $(VENV)/.installed docs
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m pytest

# The API reference from the docstrings (Sphinx autodoc + napoleon); warnings are errors.
docs: $(VENV)/.installed
	$(PY) -m sphinx -W --keep-going -q -b html docs out/docs

lint: $(VENV)/.installed
	$(PY) -m ruff check . && $(PY) -m ruff format --check .

$(VENV)-bench/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)-bench
	$(VENV)-bench/bin/python -m pip install -q $(TORCH_INDEX) "$(TORCH_SPEC)"
	$(VENV)-bench/bin/python -m pip install -q -e ".[dev,bench]"
	touch $@

bench: $(VENV)-bench/.installed
	$(VENV)-bench/bin/python bench/scm_suite.py --variants auto,maf --out bench/results

bench-random: $(VENV)-bench/.installed
	$(VENV)-bench/bin/python bench/scm_suite.py --pool random-eval --count 50 --no-chirho --out bench/results

bench-quick: $(VENV)-bench/.installed
	$(VENV)-bench/bin/python bench/scm_suite.py --quick --out out/bench-quick

clean:
	rm -rf $(VENV) $(VENV)-bench out build *.egg-info

# Two commands do all the set-up on a fresh machine with Python >= 3.10:
#   make demo   creates .venv, installs timelayers, runs the main job
#   make test   installs the test extras and runs the whole suite, then its CuPy
#               tests on the CuPy stand-in (tests/cupy_standin: no GPU needed)
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: demo test venv bench clean

$(BIN)/python:
	$(PYTHON) -c 'import sys; sys.exit("timelayers needs Python >= 3.10, found " + sys.version.split()[0]) if sys.version_info < (3, 10) else None'
	$(PYTHON) -m venv $(VENV)

venv: $(BIN)/python

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[plot]'
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[test,plot]'
	touch $@

demo: $(VENV)/.installed
	$(BIN)/timelayers demo

test: $(VENV)/.installed-test
	$(BIN)/python -m pytest -q
	TIMELAYERS_TEST_CUPY=standin $(BIN)/python -m pytest -q

bench: $(VENV)/.installed-test
	$(BIN)/python benchmarks/bench_layers.py

clean:
	rm -rf $(VENV) build src/*.egg-info .pytest_cache

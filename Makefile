# Set-up lives here and only here: `make install` builds .venv; `make demo` and
# `make test` depend on it. See README.
PYTHON ?= python3
VENV ?= .venv
PIP := $(VENV)/bin/python -m pip
STAMP := $(VENV)/.xsl-installed
DATA ?= ../shared/data
OUT ?= work/demo
MODEL ?= e5
PYTEST_ARGS ?=

.PHONY: install demo test clean

install: $(STAMP)

$(STAMP): setup.py Makefile
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	# CPU build from local disk; an unpinned torch would pull a multi-GB CUDA build
	$(PIP) install -q torch==2.13.0
	# fairseq 0.12.2 does not import on Python 3.11; ve-fairseq is upstream main plus the
	# dataclass fix. --no-deps: its metadata asks for torchaudio, which it does not need.
	$(PIP) install -q --no-deps ve-fairseq==0.12.3
	$(PIP) install -q -e ".[test]"
	@$(VENV)/bin/python -c "import xsl_fairseq.compat as c; print('apex:', 'found' if c.apex_available() else 'not installed (optional: fairseq falls back to torch kernels; never pip install apex)')"
	touch $@

demo: $(STAMP)
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" MODEL="$(MODEL)" DATA="$(DATA)" OUT="$(OUT)" bash examples/demo/run.sh

test: $(STAMP)
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(VENV)/bin/python -m pytest tests $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) work .pytest_cache

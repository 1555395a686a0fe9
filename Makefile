# make repro: set up .venv if needed, then run the DVC pipeline (dvc repro).
# make test:  set up .venv if needed, then lint and run the test suite (what CI runs: .ci/run).
# The venv is rebuilt only when pyproject.toml is newer than its install stamp.
SHELL := /bin/bash
# Any Python >= 3.11: the first of these found (override with `make PYTHON=/path/to/python`).
PYTHON_CANDIDATES := python3.11 python3.12 python3.13 python3.14 python3
PYTHON ?= $(firstword $(foreach p,$(PYTHON_CANDIDATES),$(shell command -v $(p) >/dev/null 2>&1 && \
	$(p) -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null && echo $(p))))
VENV := .venv
STAMP := $(VENV)/.installed

# DVC stage commands call `python`: make it the venv's. No DVC analytics lookups.
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
export DVC_NO_ANALYTICS := 1

.PHONY: setup repro test

setup: $(STAMP)

$(VENV)/bin/python:
	@if [ -z "$(PYTHON)" ]; then \
		echo "error: gatcluster needs Python 3.11 or newer, and none of $(PYTHON_CANDIDATES) is one:" \
			"install one, or run make PYTHON=/path/to/python3.11" >&2; exit 1; fi
	@echo "using $(PYTHON) ($$($(PYTHON) -c 'import sys; print(sys.version.split()[0])'))"
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(VENV)/bin/python
	$(VENV)/bin/python -m pip install -e '.[train,dev]'
	touch $@

repro: $(STAMP)
	$(VENV)/bin/dvc repro

test: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/python -m pytest

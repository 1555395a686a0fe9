# make repro: set up .venv if needed, then run the DVC pipeline (dvc repro).
# make test:  set up .venv if needed, then lint and run the test suite (what CI runs: .ci/run).
# The venv is rebuilt only when pyproject.toml is newer than its install stamp.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
STAMP := $(VENV)/.installed

# DVC stage commands call `python`: make it the venv's. No DVC analytics lookups.
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
export DVC_NO_ANALYTICS := 1

.PHONY: setup repro test

setup: $(STAMP)

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(VENV)/bin/python
	$(VENV)/bin/python -m pip install -e '.[dev]'
	touch $@

repro: $(STAMP)
	$(VENV)/bin/dvc repro

test: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/python -m pytest

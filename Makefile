# Quick start: `make demo` runs the embedded demo, `make test` runs the test suite.
# Both create .venv and install the project into it first (only when pyproject.toml changed);
# `make test` runs ruff and mypy before pytest.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
PY := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed

.PHONY: demo test lint clean

$(INSTALLED): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[test]"
	@touch $@

demo: $(INSTALLED)
	$(VENV)/bin/fleetscope demo

test: $(INSTALLED) lint
	$(PY) -m pytest

lint: $(INSTALLED)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports
	for model in triton_repo/*/1/model.py; do $(VENV)/bin/mypy $$model || exit 1; done

clean:
	$(VENV)/bin/fleetscope stack down || true
	rm -rf var

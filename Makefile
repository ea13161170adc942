# Quick start: `make demo` runs the embedded demo, `make test` runs the test suite.
# Both create .venv and install the project into it first (only when pyproject.toml changed);
# `make test` runs ruff and mypy before pytest.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
PY := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed

.PHONY: demo test lint ops-tools clean

# Offline checkers of deploy/ that come from Debian (promtool from prometheus, docker-compose);
# installed once, as root, when missing. kubectl (kustomize) is on the machine image.
OPS_TOOLS := promtool docker-compose

$(INSTALLED): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[test]"
	@touch $@

demo: $(INSTALLED)
	$(VENV)/bin/fleetscope demo --evaluate

test: $(INSTALLED) lint ops-tools
	$(PY) -m pytest

ops-tools:
	@missing=$$(for t in $(OPS_TOOLS); do command -v $$t >/dev/null || echo $$t; done); \
	if [ -n "$$missing" ]; then \
	  echo "installing prometheus and docker-compose from Debian (missing: $$missing)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
	    prometheus docker-compose >/dev/null || { echo "install the Debian packages prometheus and docker-compose"; exit 1; }; \
	fi

lint: $(INSTALLED)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports
	for model in triton_repo/*/1/model.py; do $(VENV)/bin/mypy $$model || exit 1; done

clean:
	$(VENV)/bin/fleetscope stack down || true
	rm -rf var

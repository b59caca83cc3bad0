# Every target bootstraps .venv first; the install reruns only when pyproject.toml changes.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
LEDGER_URL ?= sqlite:///var/ledger.db

.PHONY: run test lint bench

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[test]'
	touch $(STAMP)

NETWORK_DIR ?= var/network

# A development network with demo users (made once), then the API on the embedded ledger.
run: $(STAMP)
	$(BIN)/python -m api.devnet $(NETWORK_DIR) $(LEDGER_URL)
	$(BIN)/healthledger serve --network $(NETWORK_DIR) --ledger $(LEDGER_URL)

test: $(STAMP)
	$(BIN)/pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/hadolint --failure-threshold style Dockerfile

bench: $(STAMP)
	$(BIN)/python bench/ledger_commit.py

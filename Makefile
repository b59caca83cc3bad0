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

# The web app and GraphiQL (web/dist): locked npm packages, then a build when a source changes.
WEB_MODULES := web/node_modules/.package-lock.json
WEB_DIST := web/dist/index.html
WEB_SOURCES := $(shell find web/src web/public web/graphiql -type f -not -path 'web/src/gql/*' 2>/dev/null) \
	web/index.html web/graphiql.html web/vite.config.ts web/codegen.ts web/tsconfig.json schema.graphql

$(WEB_MODULES): web/package-lock.json
	cd web && npm ci --no-audit --no-fund
	touch $(WEB_MODULES)

$(WEB_DIST): $(WEB_MODULES) $(WEB_SOURCES)
	cd web && npm run build

# The browser the end-to-end test drives (Debian's package).
/usr/bin/chromium:
	command -v chromium >/dev/null || (apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium)

# NSS's tools, which put a user's .p12 into that browser's own certificate store for the test.
/usr/bin/pk12util:
	command -v pk12util >/dev/null || (apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libnss3-tools)

# A development network with demo users (made once), then the API and web app on the embedded ledger.
run: $(STAMP) $(WEB_DIST)
	$(BIN)/python -m devkit.devnet $(NETWORK_DIR) $(LEDGER_URL)
	$(BIN)/healthledger serve --network $(NETWORK_DIR) --ledger $(LEDGER_URL)

test: $(STAMP) $(WEB_DIST) /usr/bin/chromium /usr/bin/pk12util
	cd web && npm test
	$(BIN)/pytest

lint: $(STAMP) $(WEB_MODULES)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	cd web && npm run typecheck
	$(BIN)/hadolint --failure-threshold style Dockerfile

bench: $(STAMP)
	$(BIN)/python -m bench

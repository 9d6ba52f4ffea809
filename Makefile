# Beacon: `make run` to try it, `make test` to check it. Both set everything up first.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
FLASK := $(PY) -m flask --app app

export INTRANET_ENV ?= development

.PHONY: run test install chromium bench contract clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

## axe-core (the accessibility check the browser tests run inside Chromium), pinned by tests/package-lock.json.
NODE_STAMP := tests/node_modules/.installed
$(NODE_STAMP): tests/package.json tests/package-lock.json
	cd tests && npm ci --no-audit --no-fund --loglevel=error
	touch $(NODE_STAMP)

install: $(STAMP)

## Set up, create/migrate the SQLite database, seed demo data on first run, serve on :5000.
## The seed command prints the demo accounts and serve prints the address (each once).
run: install
	INTRANET_DEV_LOGIN=true $(FLASK) intranet init-db
	INTRANET_DEV_LOGIN=true $(FLASK) intranet demo seed --if-empty
	INTRANET_DEV_LOGIN=true $(FLASK) intranet serve --host 127.0.0.1 --port 5000

## Browser tests drive Debian's Chromium; Playwright never downloads a browser here.
chromium:
	@test -x /usr/bin/chromium || { \
	  echo "Installing Debian's chromium for the browser tests..."; \
	  (apt-get update -qq || true) && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; }

## Set up and run the whole suite (SQLite and PostgreSQL; exit code 5 = no tests collected).
test: install chromium $(NODE_STAMP)
	INTRANET_ENV=production $(PY) -m pytest $(PYTEST_ARGS); rc=$$?; \
	  if [ $$rc -eq 5 ]; then echo "pytest collected no tests"; exit 1; fi; exit $$rc

bench: install
	$(PY) -m bench

contract: install
	$(PY) ../shared/contract/check.py

clean:
	rm -rf $(VENV) instance .pytest_cache .hypothesis tests/node_modules test-artifacts

# Beacon: `make run` to try it, `make test` to check it. Both set everything up first.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
FLASK := $(PY) -m flask --app app

export INTRANET_ENV ?= development

.PHONY: run serve-prod test audit install chromium bench contract clean

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

## The interface's message catalogs (intranet/translations/*/LC_MESSAGES/beacon.po), compiled
## to .mo files, which are not committed; Beacon also compiles a catalog newer than its .mo when loading it.
CATALOGS := $(wildcard intranet/translations/*/LC_MESSAGES/beacon.po)
install: $(STAMP) $(CATALOGS:.po=.mo)

%.mo: %.po $(STAMP)
	$(VENV)/bin/pybabel compile -D beacon -i $< -o $@

## After changing strings: extract them into the template and merge it into each catalog.
.PHONY: catalogs
catalogs: install
	$(VENV)/bin/pybabel extract -F babel.cfg -k N_ -k lazy_gettext -k translate:2 -k ntranslate:2,3 --no-location --sort-output \
	  --project Beacon -o intranet/translations/beacon.pot .
	$(VENV)/bin/pybabel update -D beacon -i intranet/translations/beacon.pot -d intranet/translations --no-fuzzy-matching

## Set up, create/migrate the SQLite database, seed demo data on first run, serve on :5000.
## The seed command prints the demo accounts and serve prints the address (each once).
run: install
	INTRANET_DEV_LOGIN=true $(FLASK) intranet init-db
	INTRANET_DEV_LOGIN=true $(FLASK) intranet demo seed --if-empty
	INTRANET_DEV_LOGIN=true $(FLASK) intranet serve --host 127.0.0.1 --port 5000

## Production shape on one machine: migrate, then gunicorn (config/gunicorn.conf.py: workers, threads,
## JSON logs) and the one scheduler process beside it; Ctrl+C stops both. Needs INTRANET_DATABASE_URL
## (PostgreSQL) and INTRANET_SECRET_KEY, e.g. `set -a; . ./beacon.env; set +a; make serve-prod`
## (see config/example.env and the README's "Deploying"). Rate limits count in Redis unless told otherwise.
serve-prod: install
	@test -n "$$INTRANET_DATABASE_URL" || { echo "Set INTRANET_DATABASE_URL (postgresql+psycopg://...): see config/example.env"; exit 2; }
	export INTRANET_ENV=production INTRANET_LOG_FORMAT=$${INTRANET_LOG_FORMAT:-json} \
	  INTRANET_RATELIMIT_STORAGE_URI=$${INTRANET_RATELIMIT_STORAGE_URI:-redis://127.0.0.1:6379/0}; \
	$(FLASK) intranet init-db && { \
	  $(FLASK) intranet scheduler & scheduler=$$!; \
	  trap 'kill $$scheduler 2>/dev/null; wait $$scheduler' EXIT INT TERM; \
	  $(VENV)/bin/gunicorn -c config/gunicorn.conf.py app:app; }

## Browser tests drive Debian's Chromium; Playwright never downloads a browser here.
chromium:
	@test -x /usr/bin/chromium || { \
	  echo "Installing Debian's chromium for the browser tests..."; \
	  (apt-get update -qq || true) && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; }

## Set up and run the whole suite (SQLite and PostgreSQL; exit code 5 = no tests collected).
test: install chromium $(NODE_STAMP)
	INTRANET_ENV=production $(PY) -m pytest $(PYTEST_ARGS); rc=$$?; \
	  if [ $$rc -eq 5 ]; then echo "pytest collected no tests"; exit 1; fi; exit $$rc

## Dependency gate: fails on a known vulnerability in any installed package (pip-audit; live database when
## reachable, else the snapshot in .ci/advisories/, which the output says).
audit: install
	$(PY) .ci/audit.py

bench: install
	$(PY) -m bench

contract: install
	$(PY) ../shared/contract/check.py

clean:
	rm -rf $(VENV) instance .pytest_cache .hypothesis tests/node_modules test-artifacts

# Two commands: `make run` and `make test`. Everything else is a helper of those.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
SERVE ?= 1
HOST ?= 127.0.0.1
PORT ?= 8000
CHROMIUM ?= /usr/bin/chromium

.PHONY: install run test test-fast test-external browser lint typecheck format check db-stop clean

$(STAMP): requirements.lock
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else "Python 3.11 is required, found " + sys.version.split()[0])'
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -r requirements.lock
	touch $(STAMP)

install: $(STAMP)

# Browser tests drive the system Chromium (Debian's package); install it when missing.
browser:
	@if [ ! -x "$(CHROMIUM)" ]; then \
	  if [ "$$(id -u)" = "0" ] && command -v apt-get >/dev/null; then \
	    echo "Installing Debian's chromium for the browser tests"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else \
	    echo "Chromium is missing: install Debian's 'chromium' package (sudo apt-get install chromium)"; exit 1; \
	  fi; \
	fi

run: install
	$(PY) manage.py db_bootstrap
	$(PY) manage.py migrate --noinput
	$(PY) manage.py collectstatic --noinput --verbosity 0
	$(PY) manage.py seed_demo
	$(PY) manage.py rebalance --all-firms
	$(PY) manage.py demo_summary --url http://$(HOST):$(PORT)/
	@if [ "$(SERVE)" != "0" ]; then \
	  echo "Serving on http://$(HOST):$(PORT)/ (Ctrl-C to stop)"; \
	  $(PY) manage.py runserver $(HOST):$(PORT) --noreload; \
	fi

test: install browser
	$(VENV)/bin/pytest

# The database tests against an external PostgreSQL (default: this machine's, on
# 127.0.0.1:5432, superuser postgres without password). As that superuser it creates,
# idempotently, the owner role and its database; the owner then creates the
# application role (db_bootstrap), migrates and checks the tenancy, and the suite
# runs in its own test database.
EXTERNAL_PG_HOST ?= 127.0.0.1
EXTERNAL_PG_PORT ?= 5432
EXTERNAL_PG_SUPERUSER ?= postgres
EXTERNAL_DB ?= advisor_ci
EXTERNAL_OWNER ?= advisor_ci_owner
EXTERNAL_APP ?= advisor_ci_app
EXTERNAL_TEST_DB ?= test_advisor_ci
EXTERNAL_ENV = DATABASE_URL=postgresql://$(EXTERNAL_OWNER)@$(EXTERNAL_PG_HOST):$(EXTERNAL_PG_PORT)/$(EXTERNAL_DB) \
	DATABASE_APP_USER=$(EXTERNAL_APP) TEST_DATABASE_NAME=$(EXTERNAL_TEST_DB)

define EXTERNAL_SETUP_PY
import sys, psycopg
from psycopg import sql
host, port, superuser, db, owner, app = sys.argv[1:7]
with psycopg.connect(host=host, port=port, user=superuser, dbname="postgres", autocommit=True, connect_timeout=5) as conn:
    roles = {r for (r,) in conn.execute("SELECT rolname FROM pg_roles")}
    if owner not in roles:
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN CREATEDB CREATEROLE NOSUPERUSER").format(sql.Identifier(owner)))
        print(f"created role {owner}")
    if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [db]).fetchone():
        conn.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(db), sql.Identifier(owner)))
        print(f"created database {db} owned by {owner}")
    print(f"external PostgreSQL {host}:{port}: role {owner} and database {db} ready")
endef
export EXTERNAL_SETUP_PY

test-external: install
	$(PY) -c "$$EXTERNAL_SETUP_PY" $(EXTERNAL_PG_HOST) $(EXTERNAL_PG_PORT) $(EXTERNAL_PG_SUPERUSER) $(EXTERNAL_DB) $(EXTERNAL_OWNER) $(EXTERNAL_APP)
	$(EXTERNAL_ENV) $(PY) manage.py db_bootstrap
	$(EXTERNAL_ENV) $(PY) manage.py migrate --noinput
	$(EXTERNAL_ENV) $(PY) manage.py check_tenancy
	@# pytest exits 5 when it collects nothing: say so instead of failing obscurely.
	@rc=0; $(EXTERNAL_ENV) $(VENV)/bin/pytest -m "not browser" || rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests"; elif [ $$rc -ne 0 ]; then exit $$rc; fi

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: install
	$(VENV)/bin/mypy .

format: install
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

check: lint typecheck
	$(PY) manage.py check_tenancy

db-stop: install
	$(PY) -c "from advisor.db import embedded_stop; print('stopped' if embedded_stop() else 'not running')"

lock:
	$(VENV)/bin/pip-compile --quiet --extra dev --strip-extras -o requirements.lock pyproject.toml

clean:
	rm -rf $(VENV) staticfiles .pytest_cache .mypy_cache .ruff_cache

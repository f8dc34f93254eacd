# Two commands: `make run` and `make test`. Everything else is a helper of those.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
SERVE ?= 1
HOST ?= 127.0.0.1
PORT ?= 8000
CHROMIUM ?= /usr/bin/chromium

.PHONY: install run test test-fast browser lint typecheck format check db-stop clean

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
	$(PY) manage.py migrate --noinput
	$(PY) manage.py collectstatic --noinput --verbosity 0
	$(PY) manage.py seed_demo
	$(PY) manage.py demo_summary
	@if [ "$(SERVE)" != "0" ]; then \
	  echo "Serving on http://$(HOST):$(PORT)/ (Ctrl-C to stop)"; \
	  $(PY) manage.py runserver $(HOST):$(PORT) --noreload; \
	fi

test: install browser
	$(VENV)/bin/pytest

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

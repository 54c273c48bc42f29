# Counterpoint — the commands a newcomer needs. Everything runs inside .venv.
PYTHON ?= python3.11
VENV   := .venv
PY     := $(VENV)/bin/python
# Local commands run in development mode unless told otherwise (production sets DEBUG=0 and SECRET_KEY).
export DEBUG ?= 1
PIP    := $(VENV)/bin/pip
# pip reads the local wheel store for torch==2.13.0 (CPU build); see README.
STAMP_RUN := $(VENV)/.installed-runtime
STAMP_DEV := $(VENV)/.installed-dev

.PHONY: demo test lint fmt migrations-check bench install install-dev clean-var serve worker

$(PY):
	$(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip

$(STAMP_RUN): pyproject.toml | $(PY)
	$(PIP) install -q -e .
	touch $@

$(STAMP_DEV): pyproject.toml | $(PY)
	$(PIP) install -q -e '.[dev]'
	touch $(STAMP_RUN) $@

install: $(STAMP_RUN)
install-dev: $(STAMP_DEV)

## make demo: install, migrate the embedded SQLite database, seed the demo, serve on :8000 with one worker.
demo: $(STAMP_RUN)
	$(PY) manage.py migrate --no-input
	$(PY) manage.py seed_demo
	$(PY) manage.py run_demo

## make test: the whole suite (PostgreSQL when DATABASE_URL points at one, SQLite otherwise).
test: $(STAMP_DEV)
	$(PY) -m pytest $(PYTEST_ARGS)

lint: $(STAMP_DEV)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy .

fmt: $(STAMP_DEV)
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

migrations-check: $(STAMP_DEV)
	$(PY) manage.py makemigrations --check --dry-run

bench: $(STAMP_DEV)
	@for f in benchmarks/bench_*.py; do echo "== $$f"; $(PY) $$f || exit 1; done

serve: $(STAMP_RUN)
	$(PY) manage.py runserver 127.0.0.1:8000

worker: $(STAMP_RUN)
	$(VENV)/bin/celery -A counterpoint worker -Q celery,scoring,analysis,io -c 1 -l info

clean-var:
	rm -rf var/

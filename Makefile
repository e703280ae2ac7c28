# Two commands matter on a fresh clone (see README):
#   make demo   runs the main job on the embedded defaults
#   make test   runs every test (starts LocalStack itself when needed)
# Both create the project's virtual environment on first use.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install demo test test-faults bench stop clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
	  { echo "make: Python 3.11 or newer is needed (set PYTHON=...)"; exit 2; }
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(PY) -m worker demo

test: $(STAMP)
	$(PY) -m pytest

test-faults: $(STAMP)
	$(PY) -m pytest -m faults

bench: $(STAMP)
	$(PY) bench/run_all.py

# Stop what the demo and the tests may leave running: the embedded
# PostgreSQL (its data stays in ~/.cache/ven-worker/pgdata) and a LocalStack
# that localstack/stack.py started.
stop: $(STAMP)
	$(PY) -m worker.db.embedded stop
	$(PY) localstack/stack.py down

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis

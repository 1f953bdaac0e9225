# revops: two commands do everything.
#   make run    create .venv, install, start the whole stack (Temporal dev server + UI, worker, gateway)
#   make test   install if needed, lint (ruff), type-check (mypy --strict), run the tests (pytest)
#   make bench  run the benchmarks and print their figures
#   make faults the long load and fault tests (a 1,000-send broadcast at a paced rate); CI runs them

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTEST_ARGS ?= -n 3
FAULTS_ARGS ?=
# The dashboard test drives Debian's chromium (never a browser downloaded at run time).
CHROMIUM := /usr/bin/chromium

.PHONY: run test lint typecheck pytest faults bench install clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

$(CHROMIUM):
	@if [ "$$(id -u)" = 0 ]; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver; \
	else \
		echo "the dashboard test needs Debian's chromium: sudo apt-get install chromium chromium-driver"; \
	fi

install: $(STAMP) $(CHROMIUM)

run: $(STAMP)
	$(BIN)/revops dev

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy .

pytest: $(STAMP) $(CHROMIUM)
	$(BIN)/python -m pytest $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests: that is a failure here"; exit 1; fi; \
	exit $$rc

test: lint typecheck pytest

faults: $(STAMP)
	$(BIN)/python -m pytest -m faults -s -p no:xdist $(FAULTS_ARGS)

bench: $(STAMP)
	@for b in bench/*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache

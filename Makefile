# kpi-ledger: the two commands are `make run` and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PACKAGES := shared services/common services/ingest services/scoring services/reporting services/launcher
SOURCES := shared/src services/common/src services/ingest/src services/scoring/src services/reporting/src \
	services/launcher/src

.PHONY: install run test lint unit integration e2e bench faults clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): $(BIN)/python requirements-dev.txt $(foreach p,$(PACKAGES),$(p)/pyproject.toml)
	$(BIN)/python -m pip install --quiet $(foreach p,$(PACKAGES),-e $(p)) -r requirements-dev.txt
	touch $(STAMP)

install: $(STAMP)

run: install
	$(BIN)/kpi-ledger run

lint: install
	$(BIN)/ruff check $(SOURCES) tests
	$(BIN)/ruff format --check $(SOURCES) services/*/migrations tests
	$(BIN)/mypy $(SOURCES)

# Test files run side by side, one worker per core (at most 4); the tests of a file stay on one worker
# (a file's running system is started once). The tests on PostgreSQL run beside them, in one process
# on one server (with a server per worker, a server was seen to go down in the middle of a run, twice):
# the workers leave a third of the two cores idle, waiting on services. Their report comes last.
POSTGRES_TESTS_LOG := tests/output/postgres-tests.log
test: lint
	@mkdir -p $(dir $(POSTGRES_TESTS_LOG))
	@$(BIN)/pytest -q -p no:cacheprovider -m postgres > $(POSTGRES_TESTS_LOG) 2>&1 & postgres=$$!; \
	trap 'kill $$postgres 2>/dev/null' INT TERM; \
	$(BIN)/pytest -q --numprocesses auto --maxprocesses 4 --dist loadfile -m "not postgres"; files=$$?; \
	wait $$postgres; on_postgres=$$?; \
	echo "--- the tests on PostgreSQL ($(POSTGRES_TESTS_LOG)):"; cat $(POSTGRES_TESTS_LOG); \
	[ $$files -eq 0 ] && [ $$on_postgres -eq 0 ]

unit: install
	$(BIN)/pytest -q tests/unit

integration: install
	$(BIN)/pytest -q tests/integration

e2e: install
	$(BIN)/pytest -q tests/e2e

bench: install
	$(BIN)/python -m tests.bench.run
	$(BIN)/python -m tests.bench.full_year
	$(BIN)/python -m tests.bench.sustained
	$(BIN)/python -m tests.bench.bulk
	$(BIN)/python -m tests.bench.dashboard

faults: install
	$(BIN)/python -m tests.e2e.faults --seeds 10

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache

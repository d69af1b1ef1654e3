# Everything a fresh Linux machine with Python 3.11+ needs: `make test`, `make demo`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: test smoke demo lint generate bench clean

$(BIN)/.installed: pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit("pgkeel needs Python 3.11+, found " + sys.version.split()[0]) if sys.version_info < (3, 11) else None'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

## test: install pgkeel with its test dependencies in .venv and run the whole suite
test: $(BIN)/.installed
	$(BIN)/pytest

## smoke: a quick subset (core API, bulk, types, CLI) for another Python: make smoke PYTHON=python3.13 VENV=.venv-3.13
SMOKE_TESTS ?= tests/test_init.py tests/test_database.py tests/test_types.py tests/test_bulk_copy.py tests/test_cli_copy.py \
	tests/test_events.py tests/test_drivers_placeholders.py tests/test_ops_verdicts.py tests/test_scale_router.py
smoke: $(BIN)/.installed
	$(BIN)/pytest -q $(SMOKE_TESTS)

## demo: the product catalogue service on the embedded server (./.pgkeel): http://127.0.0.1:8000
demo: $(BIN)/.installed
	$(BIN)/python -m examples.catalogue

## lint: formatting, lint, strict typing, and no stale generated sync modules
lint: $(BIN)/.installed
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/mypy src
	$(BIN)/python tools/async_to_sync.py --check

## generate: write the sync modules (database.py...) from their asyncio sources (*_async.py)
generate: $(BIN)/.installed
	$(BIN)/python tools/async_to_sync.py

## bench: every benchmark in bench/, side by side with the raw drivers
bench: $(BIN)/.installed
	for b in bench/[!_]*.py; do $(BIN)/python $$b || exit 1; done

clean:
	-$(BIN)/pgkeel db stop 2>/dev/null
	rm -rf $(VENV) .venv-3.* .pgkeel .pytest_cache .mypy_cache .ruff_cache

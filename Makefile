# The two commands a new user needs: `make serve` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PYTEST_WORKERS ?= 2

.PHONY: serve test check lint typecheck pytest fuzz lock clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Stamps: reinstall only when the pinned requirements or the project metadata change.
$(VENV)/.server-installed: requirements/server.txt pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements/server.txt
	$(BIN)/pip install --quiet --no-deps -e .
	touch $@

$(VENV)/.dev-installed: requirements/dev.txt $(VENV)/.server-installed
	$(BIN)/pip install --quiet -r requirements/dev.txt
	touch $@

serve: $(VENV)/.server-installed
	$(BIN)/interlock serve

test: check pytest

check: lint typecheck

lint: $(VENV)/.dev-installed
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

typecheck: $(VENV)/.dev-installed
	$(BIN)/mypy

pytest: $(VENV)/.dev-installed
	$(BIN)/pytest -n $(PYTEST_WORKERS) --dist loadgroup

# The whole schemathesis run: every operation, many more examples than `make test` uses.
fuzz: $(VENV)/.dev-installed
	INTERLOCK_FUZZ_EXAMPLES=200 $(BIN)/pytest -n $(PYTEST_WORKERS) -m fuzz -p no:randomly tests/server/test_fuzz.py

# Re-pin every dependency after changing pyproject.toml (needs uv in the venv).
lock: $(BIN)/python
	$(BIN)/pip install --quiet uv
	$(BIN)/uv pip compile pyproject.toml --extra server --python-version 3.11 -q -o requirements/server.txt
	$(BIN)/uv pip compile pyproject.toml --extra server --extra dev --python-version 3.11 -q -o requirements/dev.txt

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache

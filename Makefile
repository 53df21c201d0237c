# Every target is idempotent: `make setup` installs once and then only when
# pyproject.toml changes (the stamp file records the last install).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup run test test-slow lint clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,digits]'
	touch $(STAMP)

run: setup
	$(BIN)/cnnlab train

test: setup
	$(BIN)/python -m pytest -q -m "not slow"

# Tests marked slow (minutes each on 2 cores); .ci/run calls this after `make test`.
test-slow: setup
	$(BIN)/python -m pytest -q -m slow; status=$$?; [ $$status -eq 0 ] || [ $$status -eq 5 ]

lint: setup
	$(BIN)/ruff check cnnlab tests $(wildcard benchmarks)

clean:
	rm -rf $(VENV) runs .pytest_cache .hypothesis

# streamrank: `make demo` and `make test` are the two commands in README.md.
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
PYTHON ?= python3

.PHONY: venv demo test lint typecheck unit functional model integration kafka-up kafka-down schemas clean

# The venv is (re)built when the pins change; every package version comes from constraints.txt.
$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -c constraints.txt -e '.[train,dev]'
	touch $(STAMP)

venv: $(STAMP)

demo: venv
	$(BIN)/streamrank demo

test: venv lint typecheck
	$(BIN)/pytest -ra

# The rules that matter (docs/architecture.md): ruff incl. the aiokafka ban outside the
# connection factory, the import layers (pyproject [tool.importlinter]), module size.
lint: venv
	$(BIN)/ruff check contracts state scoring streams evaluation tests scripts
	$(BIN)/lint-imports --no-cache
	$(BIN)/python scripts/module_size.py
	$(BIN)/streamrank schemas --check

typecheck: venv
	$(BIN)/mypy

# Tests by cost (tests/conftest.py marks each by its folder); `make test` runs them all.
unit: venv
	$(BIN)/pytest -ra -m unit

functional: venv
	$(BIN)/pytest -ra -m functional

model: venv
	$(BIN)/pytest -ra -m model

integration: venv
	$(BIN)/pytest -ra -m integration

kafka-up: venv
	$(BIN)/streamrank kafka up

kafka-down: venv
	$(BIN)/streamrank kafka down

schemas: venv
	$(BIN)/streamrank schemas

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache

# Tack: every command that is run twice has a target here.
# `make demo` and `make test` work on a fresh machine: they install what they need.

PYTHON  ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
PYTEST_ARGS ?=

.PHONY: help install system-deps demo test lint fmt typecheck bench clean

help:
	@echo "make demo       gateway + embedded broker + backend simulator + 20 terminals, end to end"
	@echo "make test       install what is needed (Mosquitto included) and run the test suite"
	@echo "make lint       ruff and mypy"
	@echo "make fmt        format with ruff"
	@echo "make bench      durable ingest benchmark vs raw MQTT (writes bench/results.json)"

# uv comes from PyPI when it is not already on the machine (`pip install uv`).
UV = $$(command -v uv || echo "$(PYTHON) -m uv")

# The venv is (re)built from the lock file whenever the lock or the project file changes.
$(BIN)/tack: pyproject.toml uv.lock
	@command -v uv >/dev/null 2>&1 || $(PYTHON) -m uv --version >/dev/null 2>&1 \
		|| $(PYTHON) -m pip install --quiet uv
	$(UV) sync --frozen
	@touch $@

install: $(BIN)/tack

system-deps:
	@scripts/ensure-system-deps

demo: install
	$(BIN)/tack demo

test: install system-deps
	$(BIN)/pytest $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

typecheck: install
	$(BIN)/mypy

fmt: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: install system-deps
	$(BIN)/python -m bench.ingest

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .tack-demo

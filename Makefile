# Tack: every command that is run twice has a target here.
# `make demo` and `make test` work on a fresh machine: they install what they need.

PYTHON  ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
PYTEST_ARGS ?=

.PHONY: help install system-deps demo test lint fmt typecheck bench clean firmware firmware-typecheck screenshots screenshots-admin

help:
	@echo "make demo       gateway + embedded broker + backend simulator + 20 terminals, end to end"
	@echo "make test       install what is needed (Mosquitto included) and run the test suite"
	@echo "make lint       ruff and mypy"
	@echo "make fmt        format with ruff"
	@echo "make bench      ingest, firmware, face, down-sync and catch-up benchmarks (writes bench/*.json and bench/*.md)"
	@echo "make firmware   glyph subset + every firmware file compiled with mpy-cross (firmware/build/)"
	@echo "make screenshots the firmware's screens as PNGs for docs/firmware.md (docs/images/)"
	@echo "make screenshots-admin the admin web UI as PNGs for docs/admin.md (needs /usr/bin/chromium)"

# uv comes from PyPI when it is not already on the machine (`pip install uv`).
UV = $$(command -v uv || echo "$(PYTHON) -m uv")

# The venv is (re)built from the lock file whenever the lock or the project file changes.
# The `face` extra (dlib-bin, face-recognition, OpenCV) is part of it: the face tests need it.
$(BIN)/tack: pyproject.toml uv.lock
	@command -v uv >/dev/null 2>&1 || $(PYTHON) -m uv --version >/dev/null 2>&1 \
		|| $(PYTHON) -m pip install --quiet uv
	$(UV) sync --frozen --extra face
	@touch $@

install: $(BIN)/tack

system-deps:
	@scripts/ensure-system-deps

demo: install
	$(BIN)/tack demo

test: install system-deps
	$(BIN)/pytest $(PYTEST_ARGS)

lint: install firmware-typecheck
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# MicroPython's own stubs (pinned in the lock's firmware-stubs group) replace the standard
# library's, so they live apart from the venv, in .typings/.
TYPINGS := .typings/micropython
$(TYPINGS)/.stamp: uv.lock | $(BIN)/tack
	rm -rf $(TYPINGS) && mkdir -p $(TYPINGS)
	$(UV) export --frozen --only-group firmware-stubs --no-hashes --no-emit-project -o $(TYPINGS)/requirements.txt -q
	$(UV) pip install --quiet --no-deps --target $(TYPINGS) -r $(TYPINGS)/requirements.txt
	@touch $@

firmware-typecheck: $(TYPINGS)/.stamp
	$(BIN)/mypy --config-file firmware/mypy.ini

screenshots: install system-deps
	$(BIN)/python -m simulators.screenshots --out docs/images

screenshots-admin: install
	$(BIN)/python -m simulators.admin_screenshots --out docs/images

firmware: install system-deps
	$(BIN)/python firmware/tools/build_font.py
	$(BIN)/python firmware/tools/compile.py

typecheck: install
	$(BIN)/mypy

fmt: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: install system-deps
	$(BIN)/python -m bench.ingest
	$(BIN)/python -m bench.firmware
	$(BIN)/python -m bench.face
	$(BIN)/python -m bench.face_punch
	$(BIN)/python -m bench.downsync
	$(BIN)/python -m bench.bridge_catchup

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .tack-demo .typings firmware/build

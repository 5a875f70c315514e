# napari-ddip: `make demo` sets everything up and runs the demo; `make test` sets up and tests.
# The virtual environment is made once (the stamp file records it; editing pyproject.toml
# re-runs the install). torch is installed first and pinned so pip takes the CPU build.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.napari-ddip-installed
TORCH := torch==2.13.0

.PHONY: venv demo test lint

venv: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install $(TORCH)
	$(BIN)/python -m pip install -e '.[test]'
	touch $@

demo: $(STAMP)
	$(BIN)/napari-ddip demo --out out/demo --overwrite

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# pytest's exit status 5 (no tests collected) fails the target like any other failure.
test: lint
	$(BIN)/python -m pytest

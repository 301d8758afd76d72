# quantdesk: the commands the README tells people to run.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

# vectorbt compiles numba kernels on first use; a project-local cache makes every
# later process (tests, notebooks, demo) start warm.
export NUMBA_CACHE_DIR := $(CURDIR)/.cache/numba
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: install demo test lint format bench clean

install: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@mkdir -p $(NUMBA_CACHE_DIR)
	@touch $@

demo: $(STAMP)
	$(BIN)/quantdesk data synth --seed 7
	$(BIN)/quantdesk data list --exchange synthetic --market spot
	@echo
	@echo "Demo outputs:"
	@echo "  market data: $(CURDIR)/data/synthetic/"

test: $(STAMP)
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check platform strategies tests benchmarks
	$(BIN)/ruff format --check platform strategies tests benchmarks

format: $(STAMP)
	$(BIN)/ruff format platform strategies tests benchmarks
	$(BIN)/ruff check --fix platform strategies tests benchmarks

bench: $(STAMP)
	$(BIN)/python -m benchmarks

clean:
	rm -rf $(VENV) .cache .pytest_cache .ruff_cache

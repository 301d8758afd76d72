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

.PHONY: install demo test lint format bench clean chromium

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
	@echo "  backtest report of sma_cross on synthetic BTC/USDT 1h:"
	@$(BIN)/quantdesk report backtest -p strategy sma_cross -p symbols BTC/USDT \
		-p timeframe 1h -p exchange synthetic

test: $(STAMP) chromium
	$(BIN)/python -m pytest

# Browser tests drive headless Chromium at /usr/bin/chromium: install it when missing
# (Debian/Ubuntu, non-interactive: CI has no stdin).
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo -n)
chromium:
	@test -x /usr/bin/chromium || { \
		command -v apt-get >/dev/null || { echo "install Chromium at /usr/bin/chromium" >&2; exit 1; }; \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get update -q && \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium </dev/null; }

lint: $(STAMP)
	$(BIN)/ruff check platform strategies tests benchmarks
	$(BIN)/ruff format --check platform strategies tests benchmarks
	$(BIN)/python -m pytest -q -p no:cacheprovider tests/test_layers.py

format: $(STAMP)
	$(BIN)/ruff format platform strategies tests benchmarks
	$(BIN)/ruff check --fix platform strategies tests benchmarks

bench: $(STAMP)
	$(BIN)/python -m benchmarks

clean:
	rm -rf $(VENV) .cache .pytest_cache .ruff_cache

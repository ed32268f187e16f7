# Two commands on a fresh machine: `make serve` and `make test` (see README.md).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
CHROMIUM := /usr/bin/chromium

.PHONY: serve test lint bench chaos soak clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[embedded,loadtest,dev]'
	touch $(STAMP)

# Extra flags for serve, e.g. `make serve SERVE_FLAGS=--exempt-loopback` for a load test.
SERVE_FLAGS ?=

serve: $(STAMP)
	$(BIN)/pillarpayout serve $(SERVE_FLAGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# The browser tests drive Debian's chromium; Playwright never downloads a browser here.
$(CHROMIUM):
	DEBIAN_FRONTEND=noninteractive apt-get update -q
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium

test: lint $(CHROMIUM)
	$(BIN)/pytest

chaos: $(STAMP)
	$(BIN)/pytest -m chaos

soak: $(STAMP)
	$(BIN)/python -m loadtest.soak

bench: $(STAMP)
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache

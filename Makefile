# Two commands on a fresh machine: `make serve` and `make test` (see README.md).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
CHROMIUM := /usr/bin/chromium

.PHONY: serve test test-external debian-servers lint bench chaos soak clean

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

# Debian's own PostgreSQL and Redis for the external run (tests/external.py), installed
# like chromium: only when missing.
debian-servers:
	@if ! test -x /usr/bin/redis-server || ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then \
		DEBIAN_FRONTEND=noninteractive apt-get update -q && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql redis-server; \
	fi

# The whole suite on the embedded servers, then the `external` tests (storage, flush,
# recovery, some wire tests) against Debian's postgresql and redis-server on their own ports.
test: lint $(CHROMIUM) debian-servers
	$(BIN)/pytest
	$(BIN)/python -m tests.external

test-external: $(STAMP) debian-servers
	$(BIN)/python -m tests.external

chaos: $(STAMP)
	$(BIN)/pytest -m chaos

soak: $(STAMP)
	$(BIN)/python -m loadtest.soak

bench: $(STAMP)
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache

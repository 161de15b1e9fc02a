# Two commands for a newcomer: `make run` and `make test`. Each creates .venv and
# installs the project (editable, with its dev tools) the first time, or again
# whenever pyproject.toml changes. `make test` also installs node-wot (the WoT reference
# implementation, pinned in tests/interop/nodewot/package-lock.json) for the interop
# tests, and the system packages some tests need (see system-packages) when missing.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
PYTEST_ARGS ?=
ARGS ?=  # flags for `make run` / `make demo`, e.g. make run ARGS="--http-port 9444"
NODEWOT := tests/interop/nodewot
NODEWOT_STAMP := $(NODEWOT)/node_modules/.installed-stamp
NODE_MAJOR_MIN := 18

.PHONY: run test lint format bench soak demo install node system-packages clean

run: $(STAMP)
	$(BIN)/wothub serve $(ARGS)

test: $(STAMP) $(NODEWOT_STAMP) system-packages
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports
	$(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# Every bench/[!_]*.py with --json; the table goes to the top of docs/performance.md.
bench: $(STAMP)
	$(BIN)/python bench/_report.py

# The 10-minute soak (bench/soak.py; not part of `make bench`): 1,000 devices and 1,000
# SSE consumers on a hub of its own, a sample every 20 s, a summary at the end. Flags in
# SOAK_ARGS, e.g. make soak SOAK_ARGS="--duration 60".
SOAK_ARGS ?=
soak: $(STAMP)
	$(BIN)/python bench/soak.py $(SOAK_ARGS)

# Simulated devices on the hub `make run` started (in another terminal).
demo: $(STAMP)
	$(BIN)/wothub demo $(ARGS)

install: $(STAMP) $(NODEWOT_STAMP) system-packages

# node-wot for tests/interop, exactly as locked; again when the lockfile changes.
$(NODEWOT_STAMP): $(NODEWOT)/package-lock.json | node
	cd $(NODEWOT) && npm ci --no-audit --no-fund
	@touch $@

# Debian packages the tests and benchmarks use, installed when missing, with one
# apt-get update and one apt-get install: Node.js and npm (node-wot interop tests),
# chromium (the dashboard's browser tests; Playwright drives the system's binary and
# never downloads one), mosquitto and its clients (MQTT tests, the benchmark baseline),
# curl and openssl (tests that use them as a person would). A test whose tool is missing
# fails, naming the package (tests/requirements.py).
# As root or with passwordless sudo only; otherwise it says what is missing.
SYSTEM_PACKAGES := node:nodejs npm:npm chromium:chromium mosquitto:mosquitto \
	mosquitto_pub:mosquitto-clients curl:curl openssl:openssl

system-packages:
	@missing=""; for pair in $(SYSTEM_PACKAGES); do cmd=$${pair%%:*}; pkg=$${pair#*:}; \
	  command -v $$cmd >/dev/null 2>&1 || [ -x /usr/sbin/$$cmd ] || missing="$$missing $$pkg"; \
	done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; \
	  elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then SUDO=sudo; \
	  else echo "missing system packages:$$missing; installing them needs root" >&2; exit 0; fi; \
	  echo "installing$$missing (apt-get)"; \
	  $$SUDO apt-get update && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y $$missing \
	    || exit 1; \
	fi

# node-wot needs a recent Node.js.
node: system-packages
	@node -e 'process.exit(+process.versions.node.split(".")[0] >= $(NODE_MAJOR_MIN) ? 0 : 1)' \
	  || { echo "node-wot needs Node.js >= $(NODE_MAJOR_MIN); found $$(node --version)" >&2; exit 1; }

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $@

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache *.egg-info $(NODEWOT)/node_modules

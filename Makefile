# Two commands on a fresh machine with Python 3.11: `make run` and `make test`.
# Installs come from the lock files in requirements/ (exact versions with hashes), so a fresh
# clone installs what CI tested; `make lock` refreshes them (README, "Upgrading dependencies").
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PYTEST_ARGS ?=
# pytest-xdist workers: the suite waits on servers and child processes about half of the time,
# so two workers keep `make test` under 10 minutes on 2 cores. TEST_WORKERS=0 runs in one process.
TEST_WORKERS ?= 2
PYTEST := $(BIN)/python -m pytest -n $(TEST_WORKERS) --dist worksteal
LOCK   := requirements
UV_VERSION := 0.13.9
# Only what a lock names, each file checked against its hash; the project itself without
# its dependencies and without a build environment of its own (setuptools is in the lock).
PIP_LOCKED := $(BIN)/python -m pip install --quiet --require-hashes --no-deps -r
PIP_SELF   := $(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .

.PHONY: run test test-all install install-test bench bench-smoke clean lock

# The venv is remade when a lock changes; a Python older than 3.11 is refused.
$(BIN)/.installed: $(LOCK)/run.txt pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "protocol-gateway needs Python 3.11 or newer; found " + sys.version.split()[0] + " (set PYTHON=python3.11)")'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP_LOCKED) $(LOCK)/run.txt
	$(PIP_SELF)
	@touch $@

$(BIN)/.installed-test: $(BIN)/.installed $(LOCK)/test.txt
	$(PIP_LOCKED) $(LOCK)/test.txt
	@touch $@

$(BIN)/.installed-bench: $(BIN)/.installed-test $(LOCK)/bench.txt
	$(PIP_LOCKED) $(LOCK)/bench.txt
	@touch $@

# The console's browser tests: Debian's chromium (apt, as root or through sudo, when missing; never
# `playwright install`, which downloads browsers from elsewhere) and axe-core from its npm lock.
BROWSER_DIR := tests/browser
$(BROWSER_DIR)/node_modules/.installed: $(BROWSER_DIR)/package-lock.json
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium; }
	npm ci --prefix $(BROWSER_DIR) --no-audit --no-fund --silent
	@touch $@

install: $(BIN)/.installed
install-test: $(BIN)/.installed-test $(BROWSER_DIR)/node_modules/.installed

run: $(BIN)/.installed
	$(BIN)/protocol-gateway run

# A throwaway PostgreSQL (free port, removed on exit) unless GATEWAY_TEST_DATABASE_URL is set.
test: $(BIN)/.installed-test $(BROWSER_DIR)/node_modules/.installed
	scripts/with-postgres.sh $(PYTEST) $(PYTEST_ARGS)

# Everything, the slow cases too: the bench extra (Apprise, for the peer smoke test) and an MTA.
test-all: $(BIN)/.installed-bench $(BROWSER_DIR)/node_modules/.installed install-mta
	scripts/with-postgres.sh $(PYTEST) -m '' $(PYTEST_ARGS)

# A real MTA for the slow bounce test (tests/test_bounces_postfix.py): Debian's postfix, left
# unconfigured and not started (the test runs its own instance from a temporary folder). As root.
.PHONY: install-mta
install-mta:
	@command -v postfix >/dev/null 2>&1 || { \
	  apt-get update -qq && \
	  echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends postfix; }

clean:
	rm -rf $(VENV) $(VENV)-lock var build *.egg-info $(BROWSER_DIR)/node_modules

# Refresh the locks from pyproject.toml's ranges, keeping every pin that still fits;
# UPGRADE=1 moves everything to the newest allowed, UPGRADE=babel moves one package.
# Universal (every platform and Python >= 3.11), with the hashes of every file.
UPGRADE ?=
UV_UPGRADE := $(if $(filter 1,$(UPGRADE)),--upgrade,$(if $(UPGRADE),--upgrade-package $(UPGRADE),))
UV_COMPILE = $(VENV)-lock/bin/uv pip compile pyproject.toml $(LOCK)/build.in --universal --python-version 3.11 \
	--generate-hashes --quiet $(UV_UPGRADE)
lock:
	@test -x $(VENV)-lock/bin/uv || { $(PYTHON) -m venv $(VENV)-lock && $(VENV)-lock/bin/python -m pip install --quiet uv==$(UV_VERSION); }
	$(UV_COMPILE) -o $(LOCK)/run.txt
	$(UV_COMPILE) --extra test -o $(LOCK)/test.txt
	$(UV_COMPILE) --extra test --extra bench -o $(LOCK)/bench.txt

# Benchmarks (bench/README.md); figures go to bench/results/. e.g. BENCH_ARGS="--clients 1,10,50 --pg URL"
bench: $(BIN)/.installed-bench
	$(BIN)/python -m bench $(BENCH_ARGS)

bench-smoke: $(BIN)/.installed-test
	$(BIN)/python -m bench --smoke

# The soak (bench/soak.py): a steady stream of events against the daemon, by hand, not in `make test`.
# e.g. SOAK_ARGS="--minutes 30 --rate 50" or SOAK_ARGS="--pg postgresql+asyncpg://..."; report in bench/results/.
.PHONY: soak
soak: $(BIN)/.installed-test
	$(BIN)/python -m bench.soak $(SOAK_ARGS)

# Two commands on a fresh machine with Python 3.11: `make run` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PYTEST_ARGS ?=

.PHONY: run test test-all install install-test bench bench-smoke clean

# The venv is remade when pyproject.toml changes; a Python older than 3.11 is refused.
$(BIN)/.installed: pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "protocol-gateway needs Python 3.11 or newer; found " + sys.version.split()[0] + " (set PYTHON=python3.11)")'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e .
	@touch $@

$(BIN)/.installed-test: $(BIN)/.installed
	$(BIN)/python -m pip install --quiet -e '.[test]'
	@touch $@

$(BIN)/.installed-bench: $(BIN)/.installed-test
	$(BIN)/python -m pip install --quiet -e '.[test,bench]'
	@touch $@

install: $(BIN)/.installed
install-test: $(BIN)/.installed-test

run: $(BIN)/.installed
	$(BIN)/protocol-gateway run

# A throwaway PostgreSQL (free port, removed on exit) unless GATEWAY_TEST_DATABASE_URL is set.
test: $(BIN)/.installed-test
	scripts/with-postgres.sh $(BIN)/python -m pytest $(PYTEST_ARGS)

test-all: $(BIN)/.installed-test
	scripts/with-postgres.sh $(BIN)/python -m pytest -m '' $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) var build *.egg-info

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

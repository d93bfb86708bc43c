# opsbook — two commands do all the set-up on a fresh Debian machine:
#   make run    install into .venv and run the local-host suite (the main job)
#   make test   install everything the tests need (Debian peers too, as root) and run them all
VENV ?= .venv
BIN := $(VENV)/bin
SUITE ?= runbooks/examples/local.yaml
FORMAT ?= table

.PHONY: run test install install-test peers lint typecheck unit bench docs clean

install:
	@scripts/bootstrap-venv.sh $(VENV)

install-test:
	@scripts/bootstrap-venv.sh $(VENV) test

peers:
	@scripts/install-test-peers.sh

run: install
	@# 0 OK, 1 WARNING, 2 CRITICAL are reports about this host; only 3 (bad usage, internal error) fails make.
	$(BIN)/opsbook run $(SUITE) --format $(FORMAT) || [ $$? -le 2 ]

lint: install-test
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .

typecheck: install-test
	$(BIN)/mypy

test: install-test peers
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/python -m pytest -q -p no:cacheprovider

unit: install-test
	$(BIN)/python -m pytest -q -p no:cacheprovider tests/runbooks tests/cli

docs: install
	$(BIN)/python -m opsbook.cli.reference docs

bench: install-test peers
	@# Every benchmark runs and prints its ratio; a missed target fails `make bench` at the end.
	@failed=""; for b in benchmarks/bench_*.py; do echo "== $$b"; $(BIN)/python $$b || failed="$$failed $$b"; done; \
	 if [ -n "$$failed" ]; then echo "targets missed or failed:$$failed"; exit 1; fi

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build dist *.egg-info

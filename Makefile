# trialwatch — every target does its own set-up (virtualenv, install, dev stack).
# The two commands a newcomer needs: `make demo` and `make test`.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
STACK  := $(PYTHON) devstack/devstack.py
PYTEST_ARGS ?=

.DEFAULT_GOAL := help
.PHONY: help install demo test test-unit test-integration tools bench lint fmt up status down clean-stack train clean

help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-17s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "trialwatch needs Python 3.11+; set PYTHON=python3.11")'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	@touch $(STAMP)

install: $(STAMP) ## create/update the virtualenv and install trialwatch with test deps

demo: $(STAMP) ## the main job: train if needed, start Kafka+Redis+worker, simulate, show alerts live
	$(STACK) run -- $(BIN)/trialwatch demo $(DEMO_ARGS)

test: $(STAMP) tools ## all tests (unit + integration on a real Kafka broker and Redis)
	$(STACK) run -- $(BIN)/python -m pytest $(PYTEST_ARGS)

test-unit: $(STAMP) tools ## unit tests only (no broker needed)
	$(BIN)/python -m pytest -m "not integration" $(PYTEST_ARGS)

tools: ## tools the tests call: promtool, chromium + chromedriver (Debian's packages when missing)
	@$(STACK) tool promtool >/dev/null
	@$(STACK) tool chromium >/dev/null

test-integration: $(STAMP) ## integration tests only
	$(STACK) run -- $(BIN)/python -m pytest -m integration $(PYTEST_ARGS)

bench: $(STAMP) ## benchmarks (codec, simulator, scorer, stream pipeline); results in bench-results/
	$(STACK) run -- $(BIN)/python -m bench $(BENCH_ARGS)

train: $(STAMP) ## train the quick model into artifacts/
	$(BIN)/trialwatch train --profile quick

lint: $(STAMP) ## ruff lint + format check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

fmt: $(STAMP) ## ruff autofix + format
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

up: ## start the dev stack (Kafka on 127.0.0.1:9092, Redis on 127.0.0.1:6379); SECURE=1: SASL_SSL + TLS
ifdef SECURE
up: $(STAMP)
	@$(BIN)/python devstack/devstack.py up --secure
else
	@$(STACK) up
endif

status: ## show what the dev stack runs
	@$(STACK) status

down: ## stop the dev stack (SECURE=1: the secured one)
ifdef SECURE
	@$(BIN)/python devstack/devstack.py down --secure
else
	@$(STACK) down
endif

clean-stack: ## stop the dev stack and delete its data (keeps the jars)
	@$(STACK) clean

clean: clean-stack ## remove the virtualenv, artifacts and caches
	rm -rf $(VENV) artifacts bench-results .pytest_cache .ruff_cache .hypothesis

# make run   - set everything up and run the gateway locally (simulator, Azurite, broker, app);
#              the app runs on the dev server, or under Core Tools with `make run HOST=func`
# make test  - set everything up and run the test suite
# make bench - run the benchmarks and write docs/benchmarks.md
# make lint  - ruff (lint and format check) and mypy (shared/ and function_app.py), as CI runs them
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
DEPS   := $(VENV)/.deps-installed
LI_VENV := .venv-llamaindex
LI_DEPS := $(LI_VENV)/.deps-installed
AZURITE := node_modules/.bin/azurite
# What serves the app under `make run`: devserver (default) or func (Core Tools' func start).
# Set here, not with ?=, so a shell's own HOST variable (zsh sets one) never leaks in.
HOST   := devserver

.PHONY: run test lint bench deps clean

deps: $(DEPS) $(LI_DEPS) $(AZURITE)

$(DEPS): requirements.txt requirements-dev.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@# The pip that venv bundles (23.x) trips over its own backtracking on this dependency set
	@# (InconsistentCandidate on opentelemetry-sdk); a current pip resolves it.
	$(PY) -m pip install --quiet --disable-pip-version-check --upgrade 'pip>=25'
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	@touch $@

# LlamaIndex's OpenAI integration pins openai<3 while the app runs on openai 3.x, so its test
# clients get their own virtualenv (tests/frontdoor/test_llamaindex.py runs them in a subprocess).
$(LI_DEPS): requirements-llamaindex.txt
	@test -x $(LI_VENV)/bin/python || $(PYTHON) -m venv $(LI_VENV)
	$(LI_VENV)/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-llamaindex.txt
	@touch $@

$(AZURITE): package.json
	npm install --no-audit --no-fund --loglevel=error
	@touch $@

test: deps
	$(PY) -m pytest

lint: deps
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

run: deps
	$(PY) scripts/run_local.py --host $(HOST)

bench: deps
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-bench.txt
	$(PY) -m bench

clean:
	rm -rf $(VENV) $(LI_VENV) node_modules .azurite .run .pytest_cache

# --- infra checks (tests/infra, issue 17): checkov lives in its own virtualenv, apart from the
# app's (.venv), because it pins many packages of its own. `make deps`/`make test` build it.
INFRA_VENV := .venv-infra
INFRA_DEPS := $(INFRA_VENV)/.deps-installed

deps: $(INFRA_DEPS)

$(INFRA_DEPS): requirements-infra.txt
	@test -x $(INFRA_VENV)/bin/python || $(PYTHON) -m venv $(INFRA_VENV)
	$(INFRA_VENV)/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-infra.txt
	@touch $@

.PHONY: clean-infra
clean: clean-infra
clean-infra:
	rm -rf $(INFRA_VENV)

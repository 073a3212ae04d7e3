# make run   - set everything up and run the gateway locally (simulator, Azurite, broker, app);
#              the app runs on the dev server, or under Core Tools with `make run HOST=func`
# make test  - set everything up and run the test suite
# make bench - run the benchmarks and write docs/benchmarks.md
# make lint  - ruff (lint and format check) and mypy (shared/ and function_app.py), as CI runs them
# make lock  - re-resolve requirements.in / requirements-dev.in into the locks requirements.txt
#              (deployed) and requirements-dev.txt (make deps), newest versions in range;
#              `make lock LOCK_UPGRADE=` applies edits to the .in files and moves nothing else
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

.PHONY: run test lint bench deps clean lock

deps: $(DEPS) $(LI_DEPS) $(AZURITE)

$(DEPS): requirements.txt requirements-dev.txt
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11) and "Python 3.11 or newer is needed (PYTHON=$(PYTHON) is " + sys.version.split()[0] + ")")'
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@# The pip that venv bundles (23.x) is older than the locks' format needs; a current one.
	$(PY) -m pip install --quiet --disable-pip-version-check --upgrade 'pip>=25'
	@# The dev lock: the app's exact pins (requirements.txt, what deploys) plus the tools, hashed.
	$(PY) -m pip install --quiet --disable-pip-version-check --require-hashes -r requirements-dev.txt
	@touch $@

# The locks, from the .in files: uv's resolver, universal (one lock for every supported Python,
# with markers where a version differs: azure-functions 1.x below 3.13, 2.x from it), hashed.
# uv lives in its own virtualenv, pinned, so every refresh uses the same resolver.
LOCK_VENV    := .venv-lock
UV           := $(LOCK_VENV)/bin/uv
UV_VERSION   := 0.13.10
LOCK_UPGRADE ?= --upgrade
LOCK_FLAGS    = --quiet --universal --python-version 3.11 --generate-hashes $(LOCK_UPGRADE) \
                --custom-compile-command 'make lock'

$(UV):
	@test -x $(LOCK_VENV)/bin/python || $(PYTHON) -m venv $(LOCK_VENV)
	$(LOCK_VENV)/bin/python -m pip install --quiet --disable-pip-version-check 'uv==$(UV_VERSION)'

lock: $(UV)
	$(UV) pip compile $(LOCK_FLAGS) requirements.in -o requirements.txt
	$(UV) pip compile $(LOCK_FLAGS) requirements-dev.in -o requirements-dev.txt

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
	$(PY) -m bench --all

clean:
	rm -rf $(VENV) $(LI_VENV) $(LOCK_VENV) node_modules .azurite .run .pytest_cache

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

# --- host double (funchost/, tests/host): the app driven through azure-functions-runtime, the
# Python worker's runtime for Python 3.13+, in its own virtualenv. `make deps`/`make test` build
# it. Python 3.13 comes from pyenv or the PATH (the first that runs); HOST_PYTHON=... overrides.
HOST_VENV := .venv-host
HOST_DEPS := $(HOST_VENV)/.deps-installed
HOST_PYTHON ?= $(shell for p in "$$(ls -d "$$(pyenv root 2>/dev/null || echo $$HOME/.pyenv)"/versions/3.13.*/bin/python3.13 2>/dev/null | sort -V | tail -n 1)" "$$(command -v python3.13)"; do [ -n "$$p" ] && "$$p" -c 'import sys; assert sys.version_info[:2] == (3, 13)' 2>/dev/null && { echo "$$p"; break; }; done)

deps: $(HOST_DEPS)

$(HOST_DEPS): requirements-host.txt requirements.txt
	@if [ ! -x $(HOST_VENV)/bin/python ]; then \
	  if [ -z "$(HOST_PYTHON)" ]; then \
	    echo "make: the host double needs Python 3.13 (python3.13 on the PATH, or pyenv install 3.13); or set HOST_PYTHON=/path/to/python3.13" >&2; \
	    exit 1; \
	  fi; \
	  $(HOST_PYTHON) -m venv $(HOST_VENV); \
	fi
	$(HOST_VENV)/bin/python -m pip install --quiet --disable-pip-version-check --upgrade 'pip>=25'
	$(HOST_VENV)/bin/python -m pip install --quiet --disable-pip-version-check --require-hashes -r requirements.txt
	$(HOST_VENV)/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-host.txt
	@touch $@

.PHONY: clean-host
clean: clean-host
clean-host:
	rm -rf $(HOST_VENV)

# Two entry points do all set-up on a fresh machine: `make run` and `make test`.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
ARGS ?=

.PHONY: setup run test test-fast bench clean

setup: $(VENV)/.installed

# torch first, pinned: on a CPU box pip takes the local CPU wheel; a later range (torch>=2.6)
# is then already satisfied and no multi-GB CUDA build is pulled.
$(VENV)/.installed: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

run: setup
	$(BIN)/archlab run $(ARGS)

test: setup
	$(BIN)/python -m pytest $(ARGS)

test-fast: setup
	$(BIN)/python -m pytest -m "not slow" $(ARGS)

clean:
	rm -rf $(VENV) .archlab .pytest_cache

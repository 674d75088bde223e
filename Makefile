# modelseal: two commands set everything up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip
# Everything the suite needs: test tools, the real peer programs, the frameworks that make samples.
EXTRAS ?= test,torch,onnx,sklearn,xgboost,lightgbm,keras,crypto,crypto-test,registry,registry-test
# Keep the suite inside its 10-minute budget on 2 cores.
PYTEST_ARGS ?= -n 2 --dist loadgroup

.PHONY: demo test bench lint typecheck clean venv system-deps

$(VENV)/.ready-base: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet -e .
	touch $@

$(VENV)/.ready-$(EXTRAS): $(VENV)/.ready-base pyproject.toml
	$(PIP) install --quiet -e ".[$(EXTRAS)]"
	touch $@

venv: $(VENV)/.ready-base

# Debian packages the suite talks to for real (installed only when missing).
SYSTEM_PACKAGES ?=
system-deps:
	@bash scripts/system-deps.sh $(SYSTEM_PACKAGES)

demo: $(VENV)/.ready-base
	PATH="$(abspath $(BIN)):$$PATH" bash demo/demo.sh

test: $(VENV)/.ready-$(EXTRAS) system-deps
	$(BIN)/python -m pytest $(PYTEST_ARGS)

bench: $(VENV)/.ready-$(EXTRAS)
	$(PIP) install --quiet -e ".[bench]"
	$(BIN)/python bench/run_all.py

lint:
	$(MAKE) EXTRAS=dev $(VENV)/.ready-dev
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

typecheck:
	$(MAKE) EXTRAS=dev $(VENV)/.ready-dev
	$(BIN)/mypy

clean:
	rm -rf $(VENV) build dist demo/out bench/out .pytest_cache .mypy_cache .ruff_cache .hypothesis

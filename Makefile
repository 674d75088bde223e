# modelseal: two commands set everything up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip
# Everything the suite needs: test tools, the real peer programs, the frameworks that make samples.
EXTRAS ?= dev,test,scan,torch,onnx,sklearn,xgboost,lightgbm,keras,crypto,crypto-test,registry,registry-test,gate,gate-test,sigstore,serve,serve-test
# Keep the suite inside its 10-minute budget on 2 cores.
PYTEST_ARGS ?= -n 2 --dist loadgroup

.PHONY: demo test check bench lint typecheck imports openapi clean venv system-deps services image image-smoke

$(VENV)/.ready-base: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet -e .
	touch $@

# torch goes in first, alone: `pip install torch==2.13.0` takes the CPU build that lies on this
# machine's disk, which then satisfies every `torch==2.13.0` of the extras. Resolved together with
# all the extras at once, pip has picked the CUDA build from the index instead (5 GB more).
TORCH ?= torch==2.13.0
$(VENV)/.ready-$(EXTRAS): $(VENV)/.ready-base pyproject.toml
	$(PIP) install --quiet "$(TORCH)"
	$(PIP) install --quiet -e ".[$(EXTRAS)]"
	touch $@

venv: $(VENV)/.ready-base

# Debian packages the suite talks to for real (installed only when missing): SoftHSM2 is the
# PKCS#11 token of the Protect tests; Chromium renders the API docs offline in the browser
# tests (driven by Playwright through executable_path; no browser download); Prometheus scrapes
# the inference server and nginx balances its replicas in the Serve tests; age is a peer of
# the crypto benchmark; wrk loads the inference server in the Serve benchmark.
SYSTEM_PACKAGES ?= softhsm2 chromium prometheus nginx
BENCH_PACKAGES ?= softhsm2 age wrk
system-deps:
	@bash scripts/system-deps.sh $(SYSTEM_PACKAGES)

# Services the suite talks to for real: PostgreSQL on 127.0.0.1:5432 (started when it is down).
services:
	@bash scripts/services.sh

# The demo also scans, loads, encrypts and uses the embedded registry.
DEMO_EXTRAS ?= numpy,crypto,registry,gate,serve,lightgbm
$(VENV)/.ready-demo-$(DEMO_EXTRAS): $(VENV)/.ready-base pyproject.toml
	$(PIP) install --quiet -e ".[$(DEMO_EXTRAS)]"
	touch $@

demo: $(VENV)/.ready-demo-$(DEMO_EXTRAS)
	PATH="$(abspath $(BIN)):$$PATH" bash demo/demo.sh

# The static checks, fastest first: lint and format, import layers, the published API document,
# then types (src and tests). `make test` runs them before the suite.
check: $(VENV)/.ready-$(EXTRAS)
	$(BIN)/ruff check src tests bench scripts
	$(BIN)/ruff format --check src tests bench scripts
	$(BIN)/lint-imports
	$(BIN)/python scripts/gen_openapi.py --check
	$(BIN)/python scripts/gen_policy_schema.py --check
	$(BIN)/python scripts/gen_cli_docs.py --check
	$(BIN)/python scripts/gen_scan_rules.py --check
	$(BIN)/mypy

# checkov (the container image definition and the Kubernetes manifests, tests/deploy) clashes
# with modelseal's dependencies (older boto3 and cyclonedx), so it gets a virtualenv of its own.
CHECKOV ?= .tools/checkov
$(CHECKOV)/.ready:
	$(PYTHON) -m venv $(CHECKOV)
	$(CHECKOV)/bin/python -m pip install --quiet "checkov==3.3.30"
	touch $@

test: check system-deps services $(CHECKOV)/.ready
	$(BIN)/python -m pytest $(PYTEST_ARGS)

bench: $(VENV)/.ready-$(EXTRAS) services
	@bash scripts/system-deps.sh $(BENCH_PACKAGES)
	$(PIP) install --quiet -e ".[bench]"
	$(BIN)/python bench/run_all.py

lint: $(VENV)/.ready-$(EXTRAS)
	$(BIN)/ruff check src tests bench scripts
	$(BIN)/ruff format --check src tests bench scripts

typecheck: $(VENV)/.ready-$(EXTRAS)
	$(BIN)/mypy

imports: $(VENV)/.ready-$(EXTRAS)
	$(BIN)/lint-imports

# The inference server's image (deploy/container/Containerfile) built with podman on a local
# Debian base, so no image registry is needed; then run as deploy/k8s runs it and checked. As
# root; not part of `make test`. BUILD_CA_BUNDLE=... behind a TLS-intercepting proxy.
image:
	bash deploy/container/build-local.sh

image-smoke:
	bash deploy/container/smoke.sh

# Regenerate docs/openapi.json after changing an operation.
openapi: $(VENV)/.ready-$(EXTRAS)
	$(BIN)/python scripts/gen_openapi.py

clean:
	rm -rf $(VENV) .tools build dist demo/out bench/out .pytest_cache .mypy_cache .ruff_cache .hypothesis

# The two commands of the README: `make serve` and `make test`. Everything else supports them.
# Each creates .venv/ if missing, installs the pinned dependencies and (re)builds the Rust
# extension whenever a Rust source, manifest or lock file changed.

SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
export VIRTUAL_ENV := $(abspath $(VENV))
export PATH := $(abspath $(BIN)):$(PATH)

RUST_SOURCES := $(shell find core_rs -name '*.rs' -not -path '*/target/*') \
	Cargo.toml Cargo.lock core_rs/Cargo.toml
DEPS_STAMP := $(VENV)/.deps-installed
EXT_STAMP := $(VENV)/.ext-built
# The OCA schemas ship in the `ocpp` package; Rust tests and benches read them from there.
OCPP_SCHEMA_ROOT = $(shell $(BIN)/python -c 'import ocpp, pathlib; print(pathlib.Path(ocpp.__file__).parent)')

.PHONY: help
help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

$(DEPS_STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check "maturin==1.16.0"
	$(BIN)/maturin develop --release --extras dev
	touch $(EXT_STAMP) $@

$(EXT_STAMP): $(RUST_SOURCES) | $(DEPS_STAMP)
	$(BIN)/maturin develop --release --skip-install
	touch $@

.PHONY: install
install: $(DEPS_STAMP) $(EXT_STAMP) ## create .venv, install pinned dependencies, build the extension

.PHONY: serve
serve: install ## run the CSMS with embedded NATS and ClickHouse
	$(BIN)/csms serve

.PHONY: format
format: install ## rewrite Python and Rust sources in the house style
	$(BIN)/ruff format csms streams bench tests
	$(BIN)/ruff check --fix csms streams bench tests
	cargo fmt --all

.PHONY: lint
lint: install ## ruff, mypy, stubtest, import contracts, cargo fmt, clippy
	$(BIN)/ruff format --check csms streams bench tests
	$(BIN)/ruff check csms streams bench tests
	$(BIN)/mypy
	$(BIN)/python -m mypy.stubtest csms._core --allowlist core_rs/stubtest-allowlist.txt
	$(BIN)/lint-imports
	$(BIN)/python -m tests.fixtures.generate --check
	cargo fmt --all --check
	cargo clippy --all-targets --no-default-features -- -D warnings
	cargo clippy --all-targets --all-features -- -D warnings

.PHONY: test-rust
test-rust: install ## Rust unit, conformance and property tests (no Python needed)
	OCPP_SCHEMA_ROOT=$(OCPP_SCHEMA_ROOT) cargo test --no-default-features --profile ci

.PHONY: test-python
test-python: install ## pytest
	$(BIN)/pytest

.PHONY: fuzz
fuzz: install ## bounded fuzz run of the frame decoder (FUZZ_SECONDS, default 60)
	OCPP_SCHEMA_ROOT=$(OCPP_SCHEMA_ROOT) FUZZ_SECONDS=$${FUZZ_SECONDS:-60} \
		cargo test --no-default-features --profile ci --test fuzz_decode -- --ignored --nocapture

.PHONY: test
test: lint test-rust test-python fuzz ## everything CI runs

.PHONY: bench
bench: bench-micro install ## every benchmark beside its references, one run (long; SIZE=--smoke|--full)
	$(BIN)/csms bench all $(SIZE)

.PHONY: bench-micro
bench-micro: install ## micro benchmarks: Rust (criterion) and Python, beside the ocpp package and msgspec
	OCPP_SCHEMA_ROOT=$(OCPP_SCHEMA_ROOT) cargo bench --no-default-features --bench parse_validate
	$(BIN)/python -m bench.micro

.PHONY: bench-load
bench-load: install ## load benchmark: csms vs the ocpp-package reference vs a bare picows echo (ARGS=--quick)
	$(BIN)/python -m bench.load $(ARGS)

.PHONY: faults
faults: install ## fault battery (docs/durability.md): 200 stations, 20 seeds alternating 1 node / 3-node R3, canary every 5th (SEEDS, FAULTS_DURATION, FAULTS_OUT)
	$(BIN)/python -m tests.faults --suite --stations 200 --duration $${FAULTS_DURATION:-30} \
		--seeds $${SEEDS:-1-20} --alternate --out $${FAULTS_OUT:-.csms/faults}

.PHONY: fixtures
fixtures: install ## regenerate the conformance corpus
	$(BIN)/python -m tests.fixtures.generate

.PHONY: clean
clean: ## remove build outputs and the virtualenv
	rm -rf $(VENV) target csms/_core*.so

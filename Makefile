# gleaner: two commands for a fresh machine.
#   make demo   set up, build, and open the TUI on the demo dataset
#   make test   set up and run every test
# Heavy things live outside the clone, in $(CACHE): the cargo target dir, the Python
# venv used by benchmarks, demo and bench workspaces. Cargo rebuilds what changed.

CACHE ?= $(HOME)/.cache/gleaner
export CARGO_TARGET_DIR ?= $(CACHE)/target
CARGO ?= cargo
BIN := $(CARGO_TARGET_DIR)/debug/gleaner
DEMO_WS := $(CACHE)/demo.gleaner

.PHONY: demo test setup build bench fmt clean-cache

setup:
	@command -v $(CARGO) >/dev/null || { echo "cargo not found: install Rust from https://rustup.rs"; exit 1; }
	@command -v cc >/dev/null || { echo "installing a C compiler (needed by bundled SQLite and zstd)"; apt-get update -qq && apt-get install -y -qq build-essential; }
	@$(CARGO) fetch --locked >/dev/null

build: setup
	$(CARGO) build --locked --bin gleaner

demo: build
	@$(BIN) import assets/demo/demo.jsonl -w $(DEMO_WS) --force >/dev/null
	$(BIN) open $(DEMO_WS)

test: setup
	$(CARGO) fmt --check
	@if $(CARGO) nextest --version >/dev/null 2>&1; then \
		$(CARGO) nextest run --locked --no-fail-fast; \
	else \
		$(CARGO) test --locked --no-fail-fast; \
	fi

bench: setup
	bash benches/run.sh

fmt:
	$(CARGO) fmt

clean-cache:
	rm -rf $(CACHE)

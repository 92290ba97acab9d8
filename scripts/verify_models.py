#!/usr/bin/env python3
"""Checks gleaner's exported ONNX models against the PyTorch reference fixtures.

Needs only numpy, onnxruntime and tokenizers (the models venv of scripts/setup-models.sh has
them; `VERIFY=1 scripts/setup-models.sh` runs this).

  minilm:   the 15 texts of minilm_reference.json -> tokenizer.json (truncation 256, special
            tokens added, no padding) -> last_hidden_state -> attention-masked mean -> L2
            normalize; max |diff| to the reference embeddings must be < 1e-4.
  smollm2:  perplexities and IFD of smollm2_ifd_reference.json (its "definition": answer tokens
            scored after template(instruction) and after '### Response:\\n', no BOS added);
            relative error must be < 0.5 %.
  nli-plumbing (if exported): runs and gives [batch, 3] logits.
Exits non-zero when a check fails.
"""
import argparse, json, os, pathlib, sys

import numpy as np
import onnxruntime as ort
from tokenizers import Tokenizer

REPO = pathlib.Path(__file__).resolve().parent.parent


def find_fixtures(arg):
    cands = [arg, os.environ.get("GLEANER_FIXTURES"), REPO / "shared" / "fixtures",
             REPO.parent / "shared" / "fixtures", REPO / "tests" / "fixtures"]
    for c in cands:
        if c and (pathlib.Path(c) / "minilm_reference.json").exists():
            return pathlib.Path(c)
    sys.exit("verify: no fixtures dir with minilm_reference.json (use --fixtures or GLEANER_FIXTURES)")


def session(path):
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def describe(name, sess):
    for x in sess.get_inputs():
        print(f"  {name} input  {x.name} {x.shape} {x.type}")
    for x in sess.get_outputs():
        print(f"  {name} output {x.name} {x.shape} {x.type}")


def verify_minilm(mdir, fixtures):
    ref = json.loads((fixtures / "minilm_reference.json").read_text())
    tok = Tokenizer.from_file(str(mdir / "tokenizer.json"))
    tok.no_padding()
    tok.enable_truncation(256)
    sess = session(mdir / "model.onnx")
    describe("minilm", sess)
    names = {x.name for x in sess.get_inputs()}
    worst, tok_mismatch = 0.0, 0
    for item in ref["items"]:
        enc = tok.encode(item["text"], add_special_tokens=True)
        ids = np.array([enc.ids], dtype=np.int64)
        mask = np.array([enc.attention_mask], dtype=np.int64)
        feed = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in names:
            feed["token_type_ids"] = np.zeros_like(ids)
        hidden = sess.run(["last_hidden_state"], feed)[0].astype(np.float64)
        m = mask[..., None].astype(np.float64)
        emb = (hidden * m).sum(1) / np.clip(m.sum(1), 1e-9, None)
        emb = emb / np.clip(np.linalg.norm(emb, axis=-1, keepdims=True), 1e-12, None)
        worst = max(worst, float(np.abs(emb[0] - np.asarray(item["embedding"])).max()))
        if "n_tokens" in item and item["n_tokens"] != len(enc.ids):
            tok_mismatch += 1
    ok = worst < 1e-4 and tok_mismatch == 0
    print(f"minilm: {len(ref['items'])} texts, max |emb - ref| = {worst:.3e} (limit 1e-4), "
          f"token-count mismatches {tok_mismatch} -> {'OK' if ok else 'FAIL'}")
    return ok


def verify_smollm2(mdir, fixtures):
    ref = json.loads((fixtures / "smollm2_ifd_reference.json").read_text())
    tok = Tokenizer.from_file(str(mdir / "tokenizer.json"))
    tok.no_padding()
    tok.no_truncation()
    sess = session(mdir / "model.onnx")
    describe("smollm2", sess)
    names = {x.name for x in sess.get_inputs()}
    enc = lambda t: tok.encode(t, add_special_tokens=False).ids

    def ppl(ctx, ans):
        ids = np.array([ctx + ans], dtype=np.int64)
        n = ids.shape[1]
        feed = {"input_ids": ids, "attention_mask": np.ones_like(ids)}
        if "position_ids" in names:
            feed["position_ids"] = np.arange(n, dtype=np.int64)[None]
        logits = sess.run(["logits"], feed)[0][0].astype(np.float64)
        mx = logits.max(-1, keepdims=True)
        logp = logits - mx - np.log(np.exp(logits - mx).sum(-1, keepdims=True))
        nll = [-logp[t - 1, ids[0, t]] for t in range(len(ctx), n)]
        return float(np.exp(np.mean(nll)))

    worst, count_mismatch = 0.0, 0
    for item in ref["items"]:
        prompt = item["prompt_template"].format(instruction=item["instruction"])
        ans = enc(item["response"])
        if "answer_tokens" in item and item["answer_tokens"] != len(ans):
            count_mismatch += 1
        p_cond = ppl(enc(prompt), ans)
        p_alone = ppl(enc("### Response:\n"), ans)
        ifd = p_cond / p_alone
        errs = (abs(p_cond / item["ppl_answer_given_prompt"] - 1),
                abs(p_alone / item["ppl_answer_alone_after_response_marker"] - 1),
                abs(ifd / item["ifd"] - 1))
        worst = max(worst, *errs)
        print(f"  smollm2 ppl_cond {p_cond:.4f} (ref {item['ppl_answer_given_prompt']:.4f})  "
              f"ppl_alone {p_alone:.4f} (ref {item['ppl_answer_alone_after_response_marker']:.4f})  "
              f"ifd {ifd:.5f} (ref {item['ifd']:.5f})")
    ok = worst < 0.005 and count_mismatch == 0
    print(f"smollm2: {len(ref['items'])} items, max relative error {worst:.3e} (limit 5e-3), "
          f"answer-token mismatches {count_mismatch} -> {'OK' if ok else 'FAIL'}")
    return ok


def verify_nli(mdir):
    tok = Tokenizer.from_file(str(mdir / "tokenizer.json"))
    tok.no_padding()
    tok.enable_truncation(256)
    sess = session(mdir / "model.onnx")
    describe("nli-plumbing", sess)
    enc = tok.encode("A man is eating food.", "A man is eating.", add_special_tokens=True)
    ids = np.array([enc.ids], dtype=np.int64)
    feed = {"input_ids": ids, "attention_mask": np.array([enc.attention_mask], dtype=np.int64)}
    if "token_type_ids" in {x.name for x in sess.get_inputs()}:
        feed["token_type_ids"] = np.array([enc.type_ids], dtype=np.int64)
    logits = sess.run(["logits"], feed)[0]
    ok = logits.shape == (1, 3) and bool(np.isfinite(logits).all())
    print(f"nli-plumbing: logits {logits.shape} {np.round(logits[0], 4).tolist()} -> {'OK' if ok else 'FAIL'}")
    return ok


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", default=os.environ.get("GLEANER_MODELS"), required=False)
    ap.add_argument("--fixtures")
    a = ap.parse_args()
    if not a.models:
        sys.exit("verify: --models or GLEANER_MODELS needed")
    models = pathlib.Path(a.models)
    fixtures = find_fixtures(a.fixtures)
    print(f"verify: onnxruntime {ort.__version__}, models {models}, fixtures {fixtures}")
    ok = verify_minilm(models / "minilm", fixtures)
    ok &= verify_smollm2(models / "smollm2", fixtures)
    if (models / "nli-plumbing" / "model.onnx").exists():
        ok &= verify_nli(models / "nli-plumbing")
    print("verify: " + ("all OK" if ok else "FAILED"))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()

"""The book's trained files through the export, checked by ONNX Runtime.

Usage::

    python benchmarks/results_export_book.py --book PATH/TO/deep-learning-from-scratch-2

with the Penn Treebank files in ``$TIMELAYERS_DATA`` (or ``../shared/datasets/ptb``).
The book's repository is read, never copied: its ``ch06/Rnnlm.pkl`` and
``ch08/AttentionSeq2seq.pkl`` (with ``dataset/date.txt``) are imported into run
folders (``timelayers import-book-weights ... --run-folder``), exported
(``timelayers export``), and then

- **Rnnlm**: the test perplexity of PTB computed in ONNX Runtime, 10 streams of
  35 steps with the state carried from window to window, as the book's
  ``eval_perplexity`` does (the book prints 136.08 for this file), against ours
  (``timelayers eval``);
- **AttentionSeq2seq**: greedy answers to the first 1,000 test questions of
  ``date.txt`` (reversed, as the book trains it) from the exported encoder and
  decoder-step graphs, against ours, answer by answer.

Everything runs in a temporary folder; the figures are printed.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import onnxruntime as ort

import timelayers as tl
from timelayers.runs import recipes

HERE = Path(__file__).resolve().parent


def timelayers(*argv, cwd):
    proc = subprocess.run([sys.executable, "-m", "timelayers", *map(str, argv)], cwd=cwd,
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"timelayers {' '.join(map(str, argv))}: {proc.stderr.strip()}")
    return proc.stdout


def session(path):
    options = ort.SessionOptions()
    options.intra_op_num_threads = 2
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def onnx_perplexity(path, ids, streams=10, time_size=35):
    """Test perplexity of ``ids`` (1-D) from the exported language model at ``path``:
    ``streams`` rows read in parallel, windows of ``time_size``, state carried."""
    sess = session(path)
    state = {i.name: np.zeros((streams, i.shape[1]), np.float32) for i in sess.get_inputs()[1:]}
    names = [o.name for o in sess.get_outputs()]
    rows = (len(ids) - 1) // streams
    xs = ids[:streams * rows].reshape(streams, rows)
    ts = ids[1:streams * rows + 1].reshape(streams, rows)
    total, count = 0.0, 0
    for start in range(0, rows - time_size + 1, time_size):
        x, t = xs[:, start:start + time_size], ts[:, start:start + time_size]
        out = dict(zip(names, sess.run(None, {"ids": x.astype(np.int64), **state})))
        state = {k.removesuffix(".next"): v for k, v in out.items() if k != "logits"}
        logits = out["logits"].astype(np.float64)                  # (N, T, V)
        logits -= logits.max(axis=-1, keepdims=True)
        logp = logits - np.log(np.exp(logits).sum(axis=-1, keepdims=True))
        total -= np.take_along_axis(logp, t[..., None], axis=-1).sum()
        count += t.size
    return float(np.exp(total / count))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--book", required=True, help="a checkout of the book's repository")
    ap.add_argument("--questions", type=int, default=1000)
    args = ap.parse_args(argv)
    book = Path(args.book)
    sys.path.insert(0, str(HERE.parent / "examples"))
    import onnx_generate

    with tempfile.TemporaryDirectory() as tmp:
        # Rnnlm
        timelayers("import-book-weights", "rnnlm", book / "ch06" / "Rnnlm.pkl", "rnnlm",
                   "--run-folder", cwd=tmp)
        ours = timelayers("eval", "rnnlm", cwd=tmp).strip()
        timelayers("export", "rnnlm", "rnnlm.onnx", "--format", "onnx", cwd=tmp)
        test_ids, _ = tl.datasets.load_ptb("test")
        ppl = onnx_perplexity(Path(tmp) / "rnnlm.onnx", np.asarray(test_ids))
        print(f"Rnnlm.pkl: ours {ours}; ONNX Runtime perplexity {ppl:.2f} (the book: 136.08)")

        # AttentionSeq2seq
        data = book / "dataset" / "date.txt"
        timelayers("import-book-weights", "attention", book / "ch08" / "AttentionSeq2seq.pkl",
                   "attention", "--run-folder", "--data", data, cwd=tmp)
        print("AttentionSeq2seq.pkl:", timelayers("eval", "attention", cwd=tmp).strip())
        timelayers("export", "attention", "attention-onnx", "--format", "onnx", cwd=tmp)
        run = recipes.load_run(Path(tmp) / "attention")
        lines = data.read_text(encoding="utf-8").splitlines()
        questions = [line.split("_")[0] for line in lines[:args.questions]]
        onnx_answers = onnx_generate.answer(Path(tmp) / "attention-onnx", questions)
        our_answers = recipes.answer(run, questions)
        same = sum(a.strip() == b.strip() for a, b in zip(onnx_answers, our_answers))
        print(f"greedy answers, first {len(questions)} questions of date.txt: "
              f"{same}/{len(questions)} equal between ONNX Runtime and ours")
        print(json.dumps({"rnnlm_onnx_perplexity": ppl, "attention_equal": same,
                          "attention_questions": len(questions)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())

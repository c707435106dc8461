"""Inference side by side, in one run: ours, PyTorch eager (``to_torch``) and ONNX
Runtime (``to_onnx``), on the CPU with the same number of threads (2 by default).

- greedy generation of 1,000 tokens at batch 1 (one token a call, the state
  carried) for Rnnlm (V=10000, D=H=100) and BetterRnnlm (V=10000, D=H=650);
- greedy answers to 5,000 date questions (29 characters, 10 answer steps) with
  AttentionSeq2seq (the recipe's sizes: D=16, H=256), in batches of 1,000;
- beside it, the bare products of its encoder (a reference, no layers): the 29
  steps' ``[x, 1, h] @ [Wx; b; Wh]`` of each batch, ``(1000, 273) @ (273, 1024)``,
  ours as the answers make them (NumPy's BLAS, one block of rows a thread) against
  ``torch.mm`` (MKL, its own threads). Their ratio is what the BLAS alone gives
  a job that is mostly these products.

The weights are random (the speed does not depend on them); each runtime's tokens
must equal ours, which the script checks before it prints. The three runtimes run
in turns, ``--repeat`` rounds (the order shifted every round), so that a slow
spell of a shared machine falls on all of them: the times printed are each one's
best round, the ratios the median of the rounds' ratios, with its 95% interval
in parentheses (from 6 rounds on) and their range in brackets.
``--quick``: 200 tokens, 1,000 questions, one round; ``--tasks seq2seq`` (or
``lm``): only those rows.

    .venv/bin/python benchmarks/bench_inference.py [--quick] [--threads 2] [--tasks lm,seq2seq]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

import timelayers  # noqa: F401  (before NumPy: it shortens OpenBLAS's idle spin, see README)
import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _timing import median_interval  # noqa: E402


def set_threads(n):
    from threadpoolctl import threadpool_limits

    limiter = threadpool_limits(limits=n, user_api="blas")
    try:
        from timelayers import threads
    except ImportError:
        from timelayers import parallel as threads
    threads.set_num_threads(n)
    import torch

    torch.set_num_threads(n)
    return limiter


def shaken(model, seed=1, scale=0.05):
    rng = np.random.default_rng(seed)
    for p in model.params:
        p[...] += rng.normal(0, scale, p.shape).astype(p.dtype)
    return model.eval()


# Before each run: PyTorch's OpenMP threads spin for 200 ms after their last work
# (KMP_BLOCKTIME) and ONNX Runtime's pool threads spin too; a run that started at
# once would share the cores with them.
PAUSE = 0.3


def in_turns(repeat, runs):
    """Run each of ``runs`` (name -> callable) ``repeat`` times, in turns, the order
    shifted by one every round (a slow spell of a shared machine then falls on all of
    them); returns name -> (list of times, last result)."""
    names = list(runs)
    times, results = {n: [] for n in names}, {}
    for k in range(repeat):
        for name in names[k % len(names):] + names[:k % len(names)]:
            time.sleep(PAUSE)
            t0 = time.perf_counter()
            results[name] = runs[name]()
            times[name].append(time.perf_counter() - t0)
    return {n: (times[n], results[n]) for n in names}


def ratio(timed, other):
    """The median over the rounds of ours / ``other``, with its 95% interval
    (``_timing.median_interval``, from 6 rounds on) and the range."""
    r = np.array(timed["ours"][0]) / np.array(timed[other][0])
    interval = median_interval(r)
    within = f" ({interval[0]:.2f}-{interval[1]:.2f})" if interval else ""
    return f"{np.median(r):.2f}{within} [{r.min():.2f}-{r.max():.2f}]"


def ort_session(path, threads):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


# -- language models: 1 token a call -------------------------------------------------------
def generate_ours(model, start, n):
    model.reset_state()
    ids, word = [], np.array([[start]])
    for _ in range(n):
        word = model.predict(word)[:, -1].argmax(axis=1)[:, None]
        ids.append(int(word[0, 0]))
    return ids


def generate_torch(module, start, n):
    import torch

    ids, word, state = [], torch.tensor([[start]]), None
    with torch.inference_mode():
        for _ in range(n):
            logits, state = module(word, state)
            word = logits[:, -1].argmax(dim=1, keepdim=True)
            ids.append(int(word[0, 0]))
    return ids


def generate_ort(sess, start, n):
    names = [o.name for o in sess.get_outputs()]
    state = {i.name: np.zeros((1, i.shape[1]), np.float32) for i in sess.get_inputs()[1:]}
    ids, word = [], np.array([[start]])
    for _ in range(n):
        out = sess.run(None, {"ids": word, **state})
        state = {k.removesuffix(".next"): v for k, v in zip(names[1:], out[1:])}
        word = out[0][:, -1].argmax(axis=1)[:, None]
        ids.append(int(word[0, 0]))
    return ids


# -- seq2seq: batched greedy answers -------------------------------------------------------
def answer_ours(model, questions, start, length, batch):
    return np.concatenate([model.generate(questions[i:i + batch], start, length)
                           for i in range(0, len(questions), batch)])


def answer_torch(module, questions, start, length, batch):
    import torch

    with torch.inference_mode():
        return np.concatenate([module.generate(torch.from_numpy(questions[i:i + batch]), start,
                                               length).numpy()
                               for i in range(0, len(questions), batch)])


def answer_ort(encoder, decoder, questions, start, length, batch):
    enc_names = [o.name for o in encoder.get_outputs()]
    dec_inputs = [i.name for i in decoder.get_inputs() if i.name != "ids"]
    names = [o.name for o in decoder.get_outputs()]
    out = []
    for i in range(0, len(questions), batch):
        enc = dict(zip(enc_names, encoder.run(None, {"questions": questions[i:i + batch]})))
        feeds = {k: enc[k] for k in dec_inputs}
        step = np.full(len(enc["h"]), start, dtype=np.int64)
        rows = []
        for _ in range(length):
            res = dict(zip(names, decoder.run(None, {"ids": step, **feeds})))
            feeds.update({k.removesuffix(".next"): v for k, v in res.items()
                          if k.endswith(".next")})
            step = res["logits"].argmax(axis=1)
            rows.append(step)
        out.append(np.stack(rows, axis=1))
    return np.concatenate(out)


def encoder_products_ours(xh, W, steps):
    """The encoder's per-step products as ``decoding`` makes them: a block of rows
    a thread (``threads.run_parallel``), ``steps`` products each."""
    from timelayers.threads import even_blocks, get_num_threads, run_parallel

    def block(rows):
        x = xh[rows]
        out = np.empty((x.shape[0], W.shape[1]), W.dtype)
        for _ in range(steps):
            np.matmul(x, W, out=out)

    run_parallel([partial(block, rows) for rows in even_blocks(len(xh), get_num_threads())])


def encoder_products_torch(xh, W, steps):
    import torch

    out = torch.empty(xh.shape[0], W.shape[1])
    for _ in range(steps):
        torch.mm(xh, W, out=out)


def date_questions(n, seed=0):
    from timelayers.datasets import make_dates

    lines = make_dates(n, np.random.default_rng(seed))
    questions = [line.split("_")[0] for line in lines]
    chars = sorted(set("".join(lines)) | {" ", "_"})
    width = max(map(len, questions))
    ids = {c: i for i, c in enumerate(chars)}
    return np.array([[ids[c] for c in q.ljust(width)] for q in questions]), len(chars), ids["_"]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--tasks", default="lm,seq2seq",
                        help="which rows, comma-separated: lm (the two language models), seq2seq")
    args = parser.parse_args(argv)
    tasks = set(args.tasks.split(","))
    if not tasks or tasks - {"lm", "seq2seq"}:
        parser.error(f"argument --tasks: expected a comma-separated list of lm and seq2seq, "
                     f"got {args.tasks!r}")
    tokens, n_questions, repeat = (200, 1000, 1) if args.quick else (1000, 5000, args.repeat)
    _limiter = set_threads(args.threads)  # noqa: F841 (kept for the whole run)

    import torch  # noqa: F401

    from timelayers.export import to_onnx, to_torch
    from timelayers.models import AttentionSeq2seq, BetterRnnlm, Rnnlm

    rows = []
    tmp = Path(tempfile.mkdtemp(prefix="bench_inference_"))
    lms = [("Rnnlm", lambda: Rnnlm(10000, 100, 100, rng=0)),
           ("BetterRnnlm", lambda: BetterRnnlm(10000, 650, 650, rng=0))]
    for name, make in lms if "lm" in tasks else []:
        model = shaken(make())
        module = to_torch(model).eval()
        (path,) = to_onnx(model, tmp / f"{name}.onnx", force=True)
        sess = ort_session(path, args.threads)
        timed = in_turns(repeat, {"ours": lambda: generate_ours(model, 7, tokens),
                                  "torch": lambda: generate_torch(module, 7, tokens),
                                  "ort": lambda: generate_ort(sess, 7, tokens)})
        ours = timed["ours"][1]
        assert timed["torch"][1] == ours and timed["ort"][1] == ours, f"{name}: the tokens differ"
        rows.append((f"{name}: greedy {tokens} tokens, batch 1", timed, "ms/token", 1000 / tokens))

    agreement = ["the language models' tokens: all equal"] if "lm" in tasks else []
    if "seq2seq" in tasks:
        questions, V, start = date_questions(n_questions)
        D, H = 16, 256
        model = shaken(AttentionSeq2seq(V, D, H, rng=0), scale=0.3)
        module = to_torch(model).eval()
        enc_path, dec_path = to_onnx(model, tmp / "attention", force=True)
        encoder, decoder = ort_session(enc_path, args.threads), ort_session(dec_path, args.threads)
        batch = 1000
        timed = in_turns(repeat, {
            "ours": lambda: answer_ours(model, questions, start, 10, batch),
            "torch": lambda: answer_torch(module, questions, start, 10, batch),
            "ort": lambda: answer_ort(encoder, decoder, questions, start, 10, batch)})
        ours = timed["ours"][1]
        agree_torch = float((timed["torch"][1] == ours).all(axis=1).mean())
        agree_ort = float((timed["ort"][1] == ours).all(axis=1).mean())
        agreement.insert(0, f"AttentionSeq2seq answers equal to ours: PyTorch "
                            f"{agree_torch:.2%}, ONNX Runtime {agree_ort:.2%}")
        rows.append((f"AttentionSeq2seq: {n_questions} date questions, batches of {batch}", timed,
                     "s", 1.0))
        rng = np.random.default_rng(0)
        K = D + 1 + H
        xh = rng.standard_normal((batch, K), dtype=np.float32)
        W = rng.standard_normal((K, 4 * H), dtype=np.float32)
        steps = questions.shape[1] * (n_questions // batch)
        xh_t, W_t = torch.from_numpy(xh), torch.from_numpy(W)
        timed = in_turns(repeat, {"ours": lambda: encoder_products_ours(xh, W, steps),
                                  "torch": lambda: encoder_products_torch(xh_t, W_t, steps)})
        rows.append((f"reference: its encoder's bare products, {steps} x ({batch}, {K}) @ "
                     f"({K}, {4 * H})", timed, "s", 1.0))

    print(f"threads: {args.threads}; {repeat} rounds, the runtimes in turns; times: the best "
          f"round; ratios: the median of the rounds' (its 95% interval in parentheses, their "
          f"range in brackets); torch "
          f"{torch.__version__}, onnxruntime {__import__('onnxruntime').__version__}")
    print()
    print("| task | unit | ours | PyTorch eager | ONNX Runtime | ours / PyTorch | ours / ORT |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for task, timed, unit, scale in rows:
        best = {k: f"{min(t) * scale:.3f}" for k, (t, _) in timed.items()}
        vs_ort = ratio(timed, "ort") if "ort" in timed else "-"
        print(f"| {task} | {unit} | {best['ours']} | {best['torch']} | {best.get('ort', '-')} | "
              f"{ratio(timed, 'torch')} | {vs_ort} |")
    print()
    print("; ".join(agreement))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

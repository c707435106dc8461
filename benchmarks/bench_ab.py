"""Two versions of timelayers, one training step each, interleaved in one run.

Usage::

    git worktree add /tmp/timelayers-before <commit>
    python benchmarks/bench_ab.py /tmp/timelayers-before/src/timelayers src/timelayers
    python benchmarks/bench_ab.py A B --models better --repeats 31

Each source tree is loaded as a package of its own (``timelayers_a``,
``timelayers_b``) in this process, the same model is built in both from the same
seed, and their steps (forward, backward, clip, update, as in
``bench_models.py``) run in turn on the same batches: A, B, A, B, ... each timed
one after ``--lead-in`` untimed ones of its own. Reported: the medians and the
ratio B / A, with the spread of the per-round ratios (so that a change within
the machine's noise reads as one).

``--models answer`` times greedy answers to 1,000 date questions at once with
AttentionSeq2seq instead of a training step (``model.generate``); ``--models
accuracy`` the same questions in the batches of 128 that the trainers' validation
uses (``metrics.sequence_accuracy``).

``--parts`` splits each timed step into its parts, every layer's forward and
backward (``Model.named_layers``, timed by wrapping their methods), the
clipping and the update, and reports the same figures for each part, so that a
difference between A and B is found where it is.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import sys

os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "22")  # as `import timelayers` sets it

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _timing import PartTimes, interleaved_times, table  # noqa: E402

CASES = ("rnnlm", "better", "attention")


def _timelayers_modules():
    return {k: v for k, v in sys.modules.items() if k == "timelayers" or k.startswith("timelayers.")}


def load_package(path, name):
    """The package whose ``__init__.py`` is in ``path``, imported as ``name``.

    While it loads, ``timelayers`` names it too, so that its absolute imports
    (``from timelayers.x import y``) resolve inside it; the installed package's
    modules are put back afterwards."""
    path = os.path.abspath(path)
    saved = _timelayers_modules()
    for key in saved:
        del sys.modules[key]
    spec = importlib.util.spec_from_file_location(name, os.path.join(path, "__init__.py"),
                                                  submodule_search_locations=[path])
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = sys.modules["timelayers"] = module
    try:
        spec.loader.exec_module(module)
    finally:
        for key in _timelayers_modules():
            del sys.modules[key]
        sys.modules.update(saved)
    return module


def batches(name, rng, n=4):
    if name in ("answer", "accuracy"):  # 1,000 date questions and their answers
        from timelayers.datasets import load_dates

        (x, t), _, vocab = load_dates(2000, seed=1984)
        return [(np.ascontiguousarray(x[:1000, ::-1]), t[:1000])], len(vocab)
    if name == "attention":
        from timelayers.datasets import load_dates

        (x, t), _, vocab = load_dates(2000, seed=1984)
        return [(np.ascontiguousarray(x[i * 128:(i + 1) * 128, ::-1]), t[i * 128:(i + 1) * 128])
                for i in range(n)], len(vocab)
    return [(rng.integers(0, 10000, (20, 35)).astype(np.int32),
             rng.integers(0, 10000, (20, 35)).astype(np.int32)) for _ in range(n)], 10000


def make_step(pkg, name, data, V, parts=None):
    """One training step of model ``name`` built with package ``pkg``. With a
    :class:`PartTimes` ``parts``, each call adds its parts' times to it."""
    m, optim = pkg.models, pkg.optim
    if name == "rnnlm":
        model, opt, clip = m.Rnnlm(V, 100, 100, rng=0), optim.SGD(lr=20.0), 0.25
    elif name == "better":
        model = m.BetterRnnlm(V, 650, 650, dropout_ratio=0.5, num_layers=2, rng=0)
        opt, clip = optim.SGD(lr=20.0), 0.25
    else:
        model, opt, clip = m.AttentionSeq2seq(V, 16, 256, rng=0), optim.Adam(lr=1e-3), 5.0
    if name == "answer":
        questions, answers = data[0]
        return lambda: model.generate(questions, answers[:, 0], answers.shape[1] - 1)
    if name == "accuracy":
        questions, answers = data[0]
        return lambda: pkg.metrics.sequence_accuracy(model, questions, answers)
    model.train()
    count = [0]
    clip_grads, update = optim.clip_grads, opt.update
    if parts is not None:
        parts.wrap_model(model)
        clip_grads = parts.wrap(clip_grads, "clip_grads")
        update = parts.wrap(update, "update")

    def step():
        xs, ts = data[count[0] % len(data)]
        count[0] += 1
        if parts is not None:
            parts.begin()
        model.forward(xs, ts)
        model.backward()
        clip_grads(model.grads, clip)
        update(model.params, model.grads)
        if parts is not None:
            parts.end()

    return step


def _ratio_row(label, a, b):
    ratios = sorted(tb / ta for ta, tb in zip(a, b))
    q = len(ratios) // 4
    return [label, f"{statistics.median(a) * 1e3:.2f}", f"{statistics.median(b) * 1e3:.2f}",
            f"{statistics.median(b) / statistics.median(a):.3f}",
            f"{ratios[q]:.3f} .. {ratios[-1 - q]:.3f}"]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("a", help="source folder of version A (the folder of its __init__.py)")
    ap.add_argument("b", help="source folder of version B")
    ap.add_argument("--models", default=",".join(CASES))
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--lead-in", type=int, default=1)
    ap.add_argument("--parts", action="store_true",
                    help="also time each layer's forward and backward, the clipping and update")
    args = ap.parse_args(argv)
    a = load_package(args.a, "timelayers_a")
    b = load_package(args.b, "timelayers_b")
    print(f"A: {args.a}\nB: {args.b}\n{os.cpu_count()} CPUs; median of {args.repeats} "
          f"interleaved steps after {args.warmup} warm-up, each after {args.lead_in} untimed "
          f"step(s) of its own")
    headers = ["model", "A ms", "B ms", "B / A (medians)", "B / A per round (middle half)"]
    rows = []
    for name in [c.strip() for c in args.models.split(",") if c.strip()]:
        data, V = batches(name, np.random.default_rng(0))
        parts = ({"A": PartTimes(), "B": PartTimes()} if args.parts
                 else {"A": None, "B": None})
        times = interleaved_times({k: make_step(pkg, name, data, V, parts[k])
                                   for k, pkg in (("A", a), ("B", b))},
                                  args.repeats, args.warmup, args.lead_in)
        rows.append(_ratio_row(name, times["A"], times["B"]))
        print(table(rows[-1:], headers).splitlines()[-1], flush=True)
        if args.parts and name not in ("answer", "accuracy"):  # (not split into parts)
            # the timed calls among all calls: after the warm-up, each after its lead-in
            timed = [args.warmup + r * (args.lead_in + 1) + args.lead_in
                     for r in range(args.repeats)]
            a_steps, b_steps = parts["A"].steps, parts["B"].steps
            part_rows = [_ratio_row(f"{name} {key}", [a_steps[i][key][0] for i in timed],
                                    [b_steps[i][key][0] for i in timed])
                         for key in a_steps[0] if key in b_steps[0]]
            print(table(part_rows, ["part"] + headers[1:]), flush=True)
    print()
    print(table(rows, headers))


if __name__ == "__main__":
    main()

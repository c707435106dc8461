"""One full training step of timelayers' models against the same models in PyTorch.

Usage::

    python benchmarks/bench_models.py                      # every model, all cores
    python benchmarks/bench_models.py --threads 2 --repeats 21
    python benchmarks/bench_models.py --models rnnlm,better --quick
    python benchmarks/bench_models.py --profile better     # cProfile of our step only
    python benchmarks/bench_models.py --native-rnn         # torch with oneDNN off as well

A training step is, for ours::

    loss = model.forward(xs, ts); model.backward()
    clip_grads(model.grads, max_grad); optimizer.update(model.params, model.grads)

and for the same model in PyTorch, started from our initial weights: the module
the library's converter makes, ``timelayers.export.to_torch(model)``::

    opt.zero_grad(); loss = loss_of(xs, ts); loss.backward()
    clip_grad_norm_(module.parameters(), max_grad); opt.step()

where ``loss_of`` is ``module.loss(xs, ts)``, except for the recurrent language
models, which carry their state as ours do (truncated BPTT): ``loss, state =
module.loss(xs, ts, state)``, the state then detached; the TransformerLM reads
every batch on its own, as ours does in training (``loss, _ = module.loss(xs,
ts)``, no context).

Both run the same batches (random ids, drawn once), float32, dropout on, with
the same thread count; the steps are interleaved (ours, torch, ours, torch, ...)
so that load from other processes hits both alike, each timed step right after
``--lead-in`` untimed steps of its own library (see ``interleave``), and the
medians over ``--repeats`` rounds after ``--warmup`` rounds are reported, with
their ratio.

With ``--native-rnn`` torch also runs each step with oneDNN off
(``torch.backends.mkldnn.flags(enabled=False)``), timed in the same rounds: its
``nn.LSTM`` then makes one BLAS product per step, as ours does, instead of
running oneDNN's RNN primitive, which packs the weights once per sequence and
fuses the gate arithmetic. Its affine products stay on MKL.

Cases (the sizes of the book):

==============  ====================================================================
rnnlm           Rnnlm, V=10000, D=H=100, N=20, T=35, SGD(lr=20), clip 0.25
better          BetterRnnlm, V=10000, D=H=650, 2 LSTM layers, dropout 0.5, tied,
                N=20, T=35, SGD(lr=20), clip 0.25
attention       AttentionSeq2seq on dates (V=59, Tq=29, 1+Ta=11), D=16, H=256,
                N=128, Adam(lr=1e-3), clip 5
cbow            CBOW with negative sampling, V=10000, hidden 100, window 5, k=5,
                N=100, Adam(lr=1e-3): steps per second, and the speed-up of our
                vectorised UnigramSampler over sampling negatives row by row
transformer     TransformerLM (beyond the book) with the sizes of its recipe:
                V=10000, D=256, 4 heads, 2 blocks, feed-forward 1024, tanh GELU,
                dropout 0.2, tied, N=32, T=64, AdamW(lr=1e-3, weight decay 0.01),
                clip 1; torch's side is nn.TransformerEncoderLayer(norm_first=True,
                batch_first=True) with a causal mask (``to_torch``'s
                ``TransformerLanguageModel``)
==============  ====================================================================

GFLOP/s
-------
Only matrix products are counted (the elementwise operations add a few percent
to the count at these sizes, though far more to the time), forward and
backward; with ``M = N * T`` rows:

- LSTM layer ``D -> H``: forward ``x Wx`` and ``h Wh``, backward ``dWx``,
  ``dx``, ``dWh``, ``dh``: ``3 * 2 M 4H (D + H)``.
- Affine ``H -> V``: ``out``, ``dW``, ``dx``: ``3 * 2 M H V``.
- Dot attention, ``Td`` decoder and ``Te`` encoder steps: scores and context
  forward, four products backward: ``6 * 2 N Td Te H``.
- Transformer block, model size ``D``, feed-forward ``F``, ``T`` positions: the
  four attention projections and the two feed-forward affines, ``3 * 2 M D (4D +
  2F)``, and the scores and weighted sums of every head over all ``T x T`` pairs
  (the causal mask's zeros are computed too), ``3 * 2 * 2 N T T D``.

The step's rate is that count divided by the step's median time; the ceiling
is the rate of a bare 2000 x 2000 float32 matrix product (NumPy's BLAS and
torch's, timed in the same run).

Threads
-------
``--threads N`` sets NumPy's BLAS threads (through ``threadpoolctl`` when it is
installed; otherwise through ``OPENBLAS_NUM_THREADS`` / ``OMP_NUM_THREADS`` /
``MKL_NUM_THREADS``, which this script sets before NumPy is imported), the
threads timelayers uses for large elementwise passes
(``timelayers.threads.set_num_threads``) and ``torch.set_num_threads(N)``.
Without it every library uses all the cores this process may run on.

Peak memory
-----------
``tracemalloc`` (NumPy reports its array allocations to it) around one of our
steps, after a traced warm-up step: the most memory held at once during the
step by arrays the training loop allocated -- the caches of the forward pass
and the temporaries of the backward pass, not the params or the optimizer's
state.
"""

from __future__ import annotations

import argparse
from functools import partial
import os
import statistics
import sys
import tracemalloc

# NumPy's BLAS reads its thread count when it is loaded: apply --threads before
# numpy is imported (threadpoolctl, when installed, also sets it afterwards).
if __name__ == "__main__" and "--threads" in sys.argv[:-1]:
    _n = sys.argv[sys.argv.index("--threads") + 1]
    for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[_var] = _n

# timelayers before NumPy, as its users get it: it shortens OpenBLAS's idle spin
# (OPENBLAS_THREAD_TIMEOUT, see timelayers/__init__.py) only when imported first.
import timelayers as tl  # noqa: E402
import numpy as np  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _results import cpu_model  # noqa: E402
from _timing import interleaved_times  # noqa: E402
from timelayers.export import to_torch  # noqa: E402  (imports torch only when called)
from timelayers.models import (CBOW, AttentionSeq2seq, BetterRnnlm, Rnnlm,  # noqa: E402
                               TransformerLM)
from timelayers.optim import SGD, Adam, AdamW, clip_grads  # noqa: E402

CASES = ("rnnlm", "better", "attention", "cbow", "transformer")


# ----------------------------------------------------------------------------- machine

def blas_info() -> str:
    try:
        from threadpoolctl import threadpool_info

        libs = [f"{i['internal_api']} {i.get('version')} ({i['num_threads']} threads)"
                for i in threadpool_info() if i.get("user_api") == "blas"]
        if libs:
            return ", ".join(libs)
    except ImportError:
        pass
    try:
        cfg = np.show_config(mode="dicts")
        b = cfg["Build Dependencies"]["blas"]
        return f"{b['name']} {b.get('version')}"
    except Exception:  # older NumPy without mode="dicts"
        return "unknown (install threadpoolctl)"


def _tl_threads():
    return tl.threads.get_num_threads()


def set_threads(n):
    """Apply ``--threads``: BLAS (threadpoolctl if present), timelayers, torch."""
    limiter = None
    try:
        from threadpoolctl import threadpool_limits

        limiter = threadpool_limits(limits=n, user_api="blas")
    except ImportError:
        pass  # the environment variables set before numpy's import do it
    tl.threads.set_num_threads(n)
    try:
        import torch

        torch.set_num_threads(n)
    except ImportError:
        pass
    return limiter


# ----------------------------------------------------------------------------- timing

LEAD_IN = 1  # untimed steps before each timed one, see interleave()
GAP = 0.0    # seconds of sleep before each timed step, see interleave()


def interleave(fns: dict, repeats: int, warmup: int, lead_in: int = LEAD_IN,
               gap: float = GAP) -> dict:
    """Per-call wall times of each function, run in turn (a, b, a, b, ...), each
    timed call after ``lead_in`` untimed ones of its own (see
    ``_timing.interleaved_times``)."""
    return interleaved_times(fns, repeats, warmup, lead_in, gap)


def matmul_ceiling(repeats, torch):
    """GFLOP/s of a bare (2000, 2000) @ (2000, 2000) float32 product."""
    n = 2000
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    out = np.empty((n, n), np.float32)
    fns = {"numpy": lambda: np.matmul(a, b, out=out)}
    if torch is not None:
        ta, tb, tout = torch.from_numpy(a), torch.from_numpy(b), torch.empty(n, n)
        fns["torch"] = lambda: torch.matmul(ta, tb, out=tout)
    times = interleave(fns, repeats, 2)
    return {k: 2 * n ** 3 / statistics.median(v) / 1e9 for k, v in times.items()}


def peak_memory(step) -> int:
    """Bytes held at most during one ``step()`` by arrays allocated in the steps."""
    tracemalloc.start()
    try:
        step()  # traced, so that the caches it leaves are counted when freed
        tracemalloc.reset_peak()
        step()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


# ----------------------------------------------------------------------------- FLOPs

def lstm_flops(M, D, H):
    return 3 * 2 * M * 4 * H * (D + H)


def affine_flops(M, H, V):
    return 3 * 2 * M * H * V


def attention_flops(N, Td, Te, H):
    return 6 * 2 * N * Td * Te * H


def transformer_block_flops(N, T, D, F):
    return 3 * 2 * N * T * D * (4 * D + 2 * F) + 3 * 2 * 2 * N * T * T * D


# ----------------------------------------------------------------------------- cases

class Case:
    """Our model, the same model in torch (``self.twin``: ``to_torch(model)``),
    their optimizers, the batches, the FLOP count."""

    name = ""
    max_grad = None
    n_batches = 4

    def __init__(self, torch):
        self.torch = torch
        self.rng = np.random.default_rng(0)
        self.model = self.make_model()
        self.optimizer = self.make_optimizer()
        self.batches = [self.make_batch() for _ in range(self.n_batches)]
        self.i_ours = self.i_torch = 0
        self.twin = self.topt = self.tstate = None
        if torch is not None:
            self.twin = self.make_twin()
            self.sanity = self.check_same_loss()
            self.twin.train()
            self.topt = self.make_torch_optimizer()
            self.tbatches = [tuple(torch.from_numpy(a.astype(np.int64)) for a in b)
                             for b in self.batches]
        self.model.train()
        self.model.reset_state()

    def step_ours(self):
        xs, ts = self.batches[self.i_ours % self.n_batches]
        self.i_ours += 1
        m = self.model
        loss = m.forward(xs, ts)
        m.backward()
        if self.max_grad is not None:
            clip_grads(m.grads, self.max_grad)
        self.optimizer.update(m.params, m.grads)
        return loss

    def step_torch(self):
        xs, ts = self.tbatches[self.i_torch % self.n_batches]
        self.i_torch += 1
        self.topt.zero_grad(set_to_none=True)
        loss = self.torch_loss(xs, ts)
        loss.backward()
        if self.max_grad is not None:
            self.torch.nn.utils.clip_grad_norm_(self.twin.parameters(), self.max_grad)
        self.topt.step()
        return loss

    def torch_loss(self, xs, ts):
        """The torch model's mean cross entropy of one batch (id tensors)."""
        return self.twin.loss(xs, ts)

    def check_same_loss(self):
        """Relative difference of one forward loss, dropout off, from the same
        weights and state."""
        self.model.eval()
        self.model.reset_state()
        self.twin.eval()
        self.tstate = None
        xs, ts = self.batches[0]
        ours = self.model.forward(xs, ts)
        with self.torch.no_grad():
            theirs = float(self.torch_loss(*(self.torch.from_numpy(a.astype(np.int64))
                                             for a in (xs, ts))))
        self.model.reset_state()
        self.tstate = None
        return abs(ours - theirs) / abs(theirs)


class RnnlmCase(Case):
    name = "Rnnlm"
    max_grad = 0.25
    N, T, V, D, H = 20, 35, 10000, 100, 100

    def make_model(self):
        return Rnnlm(self.V, self.D, self.H, rng=0)

    def make_optimizer(self):
        return SGD(lr=20.0)

    def make_batch(self):
        return (self.rng.integers(0, self.V, (self.N, self.T)).astype(np.int32),
                self.rng.integers(0, self.V, (self.N, self.T)).astype(np.int32))

    def make_twin(self):
        return to_torch(self.model)

    def torch_loss(self, xs, ts):
        """Stateful, as ours: each batch starts from the state the last one left,
        detached (truncated BPTT)."""
        loss, state = self.twin.loss(xs, ts, self.tstate)
        self.tstate = tuple(s.detach() for s in state)
        return loss

    def make_torch_optimizer(self):
        return self.torch.optim.SGD(self.twin.parameters(), lr=20.0)

    def flops(self):
        M = self.N * self.T
        return lstm_flops(M, self.D, self.H) + affine_flops(M, self.H, self.V)


class BetterRnnlmCase(RnnlmCase):
    name = "BetterRnnlm"
    D = H = 650

    def make_model(self):
        return BetterRnnlm(self.V, self.D, self.H, dropout_ratio=0.5, num_layers=2, rng=0)

    def flops(self):
        M = self.N * self.T
        return (lstm_flops(M, self.D, self.H) + lstm_flops(M, self.H, self.H)
                + affine_flops(M, self.H, self.V))


class AttentionCase(Case):
    name = "AttentionSeq2seq"
    max_grad = 5.0
    N, D, H = 128, 16, 256

    def __init__(self, torch):
        from timelayers.datasets import load_dates

        (x, t), _, vocab = load_dates(2000, seed=1984)
        self.data, self.V = (x, t), len(vocab)
        self.Tq, self.Ta1 = x.shape[1], t.shape[1]
        self.offset = 0
        super().__init__(torch)

    def make_model(self):
        return AttentionSeq2seq(self.V, self.D, self.H, rng=0)

    def make_optimizer(self):
        return Adam(lr=1e-3)

    def make_batch(self):
        x, t = self.data
        s = slice(self.offset, self.offset + self.N)
        self.offset += self.N
        return np.ascontiguousarray(x[s, ::-1]), t[s]  # reversed questions, as the recipe

    def make_twin(self):
        return to_torch(self.model)

    def make_torch_optimizer(self):
        return self.torch.optim.Adam(self.twin.parameters(), lr=1e-3, eps=1e-7)

    def flops(self):
        N, Tq, Ta = self.N, self.Tq, self.Ta1 - 1
        return (lstm_flops(N * Tq, self.D, self.H) + lstm_flops(N * Ta, self.D, self.H)
                + attention_flops(N, Ta, Tq, self.H) + affine_flops(N * Ta, 2 * self.H, self.V))


class TransformerCase(Case):
    name = "TransformerLM"
    max_grad = 1.0
    N, T, V, D, heads, layers, F = 32, 64, 10000, 256, 4, 2, 1024

    def make_model(self):
        return TransformerLM(self.V, self.D, self.heads, self.layers, self.F, max_len=self.T,
                             dropout=0.2, rng=0)

    def make_optimizer(self):
        return AdamW(lr=1e-3, weight_decay=0.01)

    make_batch = RnnlmCase.make_batch  # random ids (N, T), inputs and targets

    def make_twin(self):
        return to_torch(self.model)

    def torch_loss(self, xs, ts):
        """Every batch on its own, as ours in training (no context carried)."""
        loss, _ = self.twin.loss(xs, ts)
        return loss

    def make_torch_optimizer(self):
        return self.torch.optim.AdamW(self.twin.parameters(), lr=1e-3, eps=1e-7,
                                      weight_decay=0.01)

    def flops(self):
        return (self.layers * transformer_block_flops(self.N, self.T, self.D, self.F)
                + affine_flops(self.N * self.T, self.D, self.V))


CASE_CLASSES = {"rnnlm": RnnlmCase, "better": BetterRnnlmCase, "attention": AttentionCase,
                "transformer": TransformerCase}
"""The cases that time one training step against the same model in torch (cbow has its own)."""


class RowByRowSampler:
    """The reference sampler: one ``rng.choice(V, k, replace=False,
    p=p_without_target)`` per row (the book's CPU loop)."""

    def __init__(self, word_p, sample_size, rng):
        self.word_p, self.sample_size, self.rng = word_p, sample_size, rng

    def get_negative_sample(self, target):
        V, k = self.word_p.size, self.sample_size
        out = np.empty((target.size, k), dtype=np.int64)
        for n, t in enumerate(target):
            p = self.word_p.copy()
            p[t] = 0
            p /= p.sum()
            out[n] = self.rng.choice(V, k, replace=False, p=p)
        return out


def cbow_case(repeats, warmup, lead_in=LEAD_IN, gap=GAP):
    """Steps per second of CBOW, with our sampler and with the row-by-row one."""
    V, H, window, N, k = 10000, 100, 5, 100, 5
    rng = np.random.default_rng(0)
    counts = (1e6 / np.arange(1, V + 1)).astype(np.int64) + 1  # Zipf, like PTB
    corpus = rng.choice(V, 200_000, p=counts / counts.sum())
    C = 2 * window
    n_batches = 8
    batches = []
    for _ in range(n_batches):
        pos = rng.integers(window, corpus.size - window, N)
        ctx = np.stack([corpus[pos + o] for o in range(-window, window + 1) if o != 0], axis=1)
        batches.append((ctx.astype(np.int32), corpus[pos].astype(np.int32)))
    assert batches[0][0].shape == (N, C)

    def make():
        model = CBOW(V, H, window, counts=counts, sample_size=k, rng=0)
        opt = Adam(lr=1e-3)
        state = {"i": 0}

        def step():
            ctx, tgt = batches[state["i"] % n_batches]
            state["i"] += 1
            model.forward(ctx, tgt)
            model.backward()
            opt.update(model.params, model.grads)

        return model, step

    ours, step_ours = make()
    ref, step_ref = make()
    ref.ns_loss.sampler = RowByRowSampler(ref.ns_loss.sampler.word_p, k,
                                          np.random.default_rng(1))
    times = interleave({"vectorised": step_ours, "row by row": step_ref}, repeats, warmup,
                       lead_in, gap)
    targets = batches[0][1]
    stimes = interleave({"vectorised": lambda: ours.ns_loss.sampler.get_negative_sample(targets),
                         "row by row": lambda: ref.ns_loss.sampler.get_negative_sample(targets)},
                        repeats, warmup, lead_in, gap)
    med = {k_: statistics.median(v) for k_, v in times.items()}
    smed = {k_: statistics.median(v) for k_, v in stimes.items()}
    return {"step_s": med, "sampler_s": smed, "peak": peak_memory(step_ours),
            "sampler": ours.ns_loss.sampler.method}


# ----------------------------------------------------------------------------- main

def profile(case_name, torch, steps=10):
    import cProfile
    import pstats

    case = CASE_CLASSES[case_name](None)
    for _ in range(2):
        case.step_ours()
    pr = cProfile.Profile()
    pr.enable()
    for _ in range(steps):
        case.step_ours()
    pr.disable()
    pstats.Stats(pr).sort_stats("tottime").print_stats(25)


def without_onednn(torch, step):
    """``step()`` with oneDNN off: torch's LSTM then runs its own per-step
    products (on MKL's BLAS) and gate kernels instead of oneDNN's RNN primitive."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # a TF32 notice about Intel GPUs
        with torch.backends.mkldnn.flags(enabled=False):
            return step()


def fmt_ms(s):
    return f"{s * 1e3:.1f}"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default=",".join(CASES),
                    help=f"comma-separated subset of {','.join(CASES)}")
    ap.add_argument("--threads", type=int, default=None,
                    help="BLAS, timelayers and torch threads (default: all available cores)")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--quick", action="store_true", help="--warmup 1 --repeats 5")
    ap.add_argument("--no-torch", action="store_true", help="time ours only")
    ap.add_argument("--lead-in", type=int, default=LEAD_IN,
                    help="untimed steps of the same model before each timed one, so that the "
                         "other library's idle-spinning threads are gone (default %(default)s)")
    ap.add_argument("--gap", type=float, default=GAP,
                    help="seconds of sleep before each timed step (default %(default)s)")
    ap.add_argument("--native-rnn", action="store_true",
                    help="also time torch with oneDNN off (torch.backends.mkldnn), so that its "
                         "LSTM runs per-step BLAS products as ours does")
    ap.add_argument("--profile", choices=list(CASE_CLASSES),
                    help="cProfile our step of one model and exit")
    args = ap.parse_args(argv)
    if args.quick:
        args.warmup, args.repeats = 1, 5
    cases = [c.strip() for c in args.models.split(",") if c.strip()]
    unknown = set(cases) - set(CASES)
    if unknown:
        ap.error(f"unknown models {sorted(unknown)}; choose from {CASES}")

    torch = None
    if not args.no_torch:
        try:
            import torch
        except ImportError:
            print("torch is not installed: timing ours only")
    threads = args.threads
    if threads is not None:
        _limiter = set_threads(threads)  # noqa: F841 (kept alive for the run)
    if args.profile:
        profile(args.profile, torch)
        return None

    nproc = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(f"machine: {nproc} cores, {cpu_model()}")
    print(f"numpy {np.__version__} (BLAS: {blas_info()}), "
          f"torch {torch.__version__ if torch else '-'}"
          f"{f' ({torch.get_num_threads()} threads)' if torch else ''}, "
          f"timelayers {tl.__version__} ({_tl_threads()} threads)")
    print(f"OPENBLAS_THREAD_TIMEOUT={os.environ.get('OPENBLAS_THREAD_TIMEOUT', '(unset: 28)')}")
    print(f"threads: {threads if threads is not None else 'default'}; "
          f"median of {args.repeats} interleaved steps after {args.warmup} warm-up, "
          f"each after {args.lead_in} untimed step(s) of its own"
          + (f" and {args.gap:g} s of sleep" if args.gap else ""))
    ceiling = matmul_ceiling(max(5, args.repeats // 2), torch)
    print("bare 2000x2000 float32 matmul: "
          + ", ".join(f"{k} {v:.0f} GFLOP/s" for k, v in ceiling.items()))
    print()

    rows, results = [], {"ceiling": ceiling}
    for name in cases:
        if name == "cbow":
            continue
        case = CASE_CLASSES[name](torch)
        fns = {"ours": case.step_ours}
        if torch is not None:
            fns["torch"] = case.step_torch
            if args.native_rnn:
                fns["torch, oneDNN off"] = partial(without_onednn, torch, case.step_torch)
        times = interleave(fns, args.repeats, args.warmup, args.lead_in, args.gap)
        med = {k: statistics.median(v) for k, v in times.items()}
        peak = peak_memory(case.step_ours)
        gflop = case.flops() / 1e9
        r = {"ours_s": med["ours"], "peak_bytes": peak, "gflop": gflop,
             "min_ours_s": min(times["ours"])}
        row = [case.name, fmt_ms(med["ours"])]
        if torch is not None:
            r.update(torch_s=med["torch"], ratio=med["ours"] / med["torch"],
                     min_ratio=min(times["ours"]) / min(times["torch"]),
                     loss_rel_diff=case.sanity)
            row += [fmt_ms(med["torch"]), f"{r['ratio']:.2f}", f"{r['min_ratio']:.2f}"]
        else:
            row += ["-", "-", "-"]
        if args.native_rnn:
            native = med.get("torch, oneDNN off")
            r["native_torch_s"] = native
            row += [fmt_ms(native), f"{med['ours'] / native:.2f}"] if native else ["-", "-"]
        row += [f"{peak / 2 ** 20:.0f}", f"{gflop:.2f}", f"{gflop / med['ours']:.0f}",
                f"{gflop / med['torch']:.0f}" if torch is not None else "-"]
        rows.append(row)
        results[name] = r
        if torch is not None and case.sanity > 1e-5:
            print(f"WARNING: {case.name}: ours and torch's forward losses differ by "
                  f"{case.sanity:.1e} (relative): the torch model is not the same model")
        del case

    if rows:
        headers = ["model", "ours ms", "torch ms", "ours/torch (median)", "(min)"]
        if args.native_rnn:
            headers += ["torch, oneDNN off, ms", "ours/that (median)"]
        headers += ["our peak MiB", "GFLOP/step", "ours GFLOP/s", "torch GFLOP/s"]
        print("| " + " | ".join(headers) + " |")
        print("|" + "---|" * len(headers))
        for row in rows:
            print("| " + " | ".join(row) + " |")
        if torch is not None:
            print("forward loss, ours vs torch (dropout off, relative difference): "
                  + ", ".join(f"{n} {results[n]['loss_rel_diff']:.1e}"
                              for n in cases if n in results))
        print()

    if "cbow" in cases:
        c = cbow_case(args.repeats, args.warmup, args.lead_in, args.gap)
        v, rr = c["step_s"]["vectorised"], c["step_s"]["row by row"]
        sv, sr = c["sampler_s"]["vectorised"], c["sampler_s"]["row by row"]
        print(f"CBOW (V=10000, hidden 100, window 5, N=100, k=5, Adam), sampler {c['sampler']!r}:")
        print(f"  ours: {1 / v:.0f} steps/s ({v * 1e3:.2f} ms/step, peak {c['peak'] / 2 ** 20:.1f} MiB)")
        print(f"  with the row-by-row sampler: {1 / rr:.0f} steps/s -> speed-up {rr / v:.1f}x")
        print(f"  sampler alone: {sv * 1e6:.0f} us vs {sr * 1e6:.0f} us row by row "
              f"-> speed-up {sr / sv:.0f}x")
        results["cbow"] = c
    return results


if __name__ == "__main__":
    main()

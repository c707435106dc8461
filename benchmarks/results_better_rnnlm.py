"""BetterRnnlm (two LSTM layers of 650, dropout 0.5, tied weights; SGD lr 20, clip
0.25, batch 20, time size 35) for one epoch of PTB, next to the same model in
PyTorch trained on the same batches from the same initial weights; validation
perplexity of both, and the time per epoch of each (so the cost of the book's 40
epochs can be estimated).

    python benchmarks/results_better_rnnlm.py [--quick] [--iters N] [--dropout 0] [--seed 1]
    python benchmarks/results_better_rnnlm.py --dropout 0 --dtype float64 --iters 25
    python benchmarks/results_better_rnnlm.py --dropout 0 --twin nudged [--twin nudged-down]

With ``--dropout 0`` both sides compute the same function, so what is left between
them is the implementation (and float32 summation order); with dropout on, each
``--seed`` draws other initial weights and other masks on both sides. A run with
the defaults writes ``better_rnnlm.json``; others add their dropout and seed to the
name (``better_rnnlm_dropout0_seed0.json``), and ``--dtype float64`` adds its dtype.

``--twin nudged`` puts our own model in PyTorch's place, started from the same
weights moved up (or, ``nudged-down``, down) by one unit in the last place
(``np.nextafter``) and trained on the
same batches (the same dropout masks): the gap between the two is what the
recipe's own rounding makes of one epoch, the floor under any comparison of two
implementations in that dtype (``..._nudged.json``).
Recorded too: the largest relative difference of the two sides' per-step losses
over the first 10, 100 and all steps (with float64 and dropout off it stays near
the float64 rounding for as long as the trajectories do).
"""

import math
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _results import argument_parser, save_result, use_shared_ptb  # noqa: E402

import timelayers as tl  # noqa: E402
from timelayers.export import to_torch  # noqa: E402  (imports torch only when called)


def batches(corpus, batch_size, time_size, iters):
    """The truncated-BPTT batches RnnlmTrainer makes: N streams at even offsets."""
    xs, ts = corpus[:-1], corpus[1:]
    jump = len(xs) // batch_size
    offsets = np.arange(batch_size)[:, None] * jump
    for i in range(iters):
        pos = (offsets + i * time_size + np.arange(time_size)[None, :]) % len(xs)
        yield xs[pos], ts[pos]


def _ids(torch, a):
    return torch.from_numpy(np.asarray(a, dtype=np.int64))


def torch_perplexity(torch, tmodel, corpus, batch_size=10, time_size=35):
    """Perplexity of ``tmodel`` (``to_torch``'s module) over ``corpus``, the state
    carried from window to window as ``tl.perplexity`` does."""
    tmodel.eval()
    losses, state = [], None
    with torch.no_grad():
        for x, t in batches(corpus, batch_size, time_size, (len(corpus) - 1) // (batch_size * time_size)):
            loss, state = tmodel.loss(_ids(torch, x), _ids(torch, t), state)
            losses.append(float(loss))
    tmodel.train()
    return math.exp(np.mean(losses))


class torch_twin:
    """PyTorch's BetterRnnlm from ``model``'s weights (``timelayers.export.to_torch``),
    trained as ours is: stateful, each batch starting from the last one's state,
    detached."""

    def __init__(self, torch, model):
        self.torch, self.model = torch, to_torch(model)
        self.opt = torch.optim.SGD(self.model.parameters(), lr=20.0)
        self.state = None

    def step(self, x, t) -> float:
        self.opt.zero_grad()
        loss, state = self.model.loss(_ids(self.torch, x), _ids(self.torch, t), self.state)
        self.state = tuple(s.detach() for s in state)
        loss.backward()
        self.torch.nn.utils.clip_grad_norm_(self.model.parameters(), 0.25)
        self.opt.step()
        return loss.item()

    def perplexity(self, valid) -> float:
        return torch_perplexity(self.torch, self.model, valid)


class nudged_twin:
    """Our BetterRnnlm built from the same seed, every weight then moved by one
    unit in the last place towards ``direction`` (``np.inf`` or ``-np.inf``),
    trained as ours is."""

    def __init__(self, vocab_size, dropout, seed, dtype, direction=np.inf):
        self.model = tl.models.BetterRnnlm(vocab_size, 650, 650, dropout, rng=seed, dtype=dtype)
        for p in self.model.params:
            p[...] = np.nextafter(p, direction)
        self.opt = tl.SGD(lr=20.0)
        self.model.reset_state()

    def step(self, x, t) -> float:
        loss = self.model.forward(x, t)
        self.model.backward()
        tl.clip_grads(self.model.grads, 0.25)
        self.opt.update(self.model.params, self.model.grads)
        return loss

    def perplexity(self, valid) -> float:
        return tl.perplexity(self.model, valid, batch_size=10, time_size=35)


def main():
    parser = argument_parser(__doc__)
    parser.add_argument("--iters", type=int, help="iterations (default: one epoch)")
    parser.add_argument("--dropout", type=float, default=0.5, help="dropout ratio of both sides")
    parser.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    parser.add_argument("--twin", choices=["torch", "nudged", "nudged-down"], default="torch",
                        help="the other side: PyTorch's model (default) or ours nudged by one "
                             "ulp up (or down)")
    args = parser.parse_args()
    import torch

    use_shared_ptb()
    corpus, vocab = tl.datasets.load_ptb("train")
    valid, _ = tl.datasets.load_ptb("valid")
    N, T = 20, 35
    iters = args.iters or (60 if args.quick else (len(corpus) - 1) // (N * T))
    if args.quick:
        valid = valid[:3501]
    torch.manual_seed(args.seed)
    model = tl.models.BetterRnnlm(len(vocab), 650, 650, args.dropout, rng=args.seed,
                                  dtype=args.dtype)
    twin = (torch_twin(torch, model) if args.twin == "torch"
            else nudged_twin(len(vocab), args.dropout, args.seed, args.dtype,
                             -np.inf if args.twin == "nudged-down" else np.inf))
    opt = tl.SGD(lr=20.0)

    ours_s = torch_s = 0.0
    ours_losses, torch_losses = [], []
    model.reset_state()
    for x, t in batches(corpus, N, T, iters):  # interleaved: same batch for both
        t0 = time.perf_counter()
        ours_losses.append(model.forward(x, t))
        model.backward()
        tl.clip_grads(model.grads, 0.25)
        opt.update(model.params, model.grads)
        t1 = time.perf_counter()
        torch_losses.append(twin.step(x, t))
        t2 = time.perf_counter()
        ours_s += t1 - t0
        torch_s += t2 - t1
    ours_val = tl.perplexity(model, valid, batch_size=10, time_size=T)
    torch_val = twin.perplexity(valid)
    epoch_iters = (len(corpus) - 1) // (N * T)
    gaps = np.abs(np.subtract(ours_losses, torch_losses, dtype=np.float64)) / np.abs(torch_losses)
    result = {"model": "BetterRnnlm", "dropout": args.dropout, "seed": args.seed, "iterations": iters, "epoch_iterations": epoch_iters,
              "val_perplexity_ours": ours_val, f"val_perplexity_{args.twin}": torch_val,
              "relative_difference": abs(ours_val - torch_val) / torch_val,
              "dtype": args.dtype,
              "step_loss_max_relative_difference": {
                  **{f"first {k}": float(gaps[:k].max()) for k in (10, 100) if k < len(gaps)},
                  f"all {len(gaps)}": float(gaps.max())},
              "train_perplexity_last_100_ours": math.exp(np.mean(ours_losses[-100:])),
              f"train_perplexity_last_100_{args.twin}": math.exp(np.mean(torch_losses[-100:])),
              "seconds_ours": ours_s, f"seconds_{args.twin}": torch_s,
              "estimated_hours_for_40_epochs_ours": ours_s / iters * epoch_iters * 40 / 3600,
              "target": "validation perplexities within 3% of each other after one epoch"}
    default_run = args.dropout == 0.5 and args.seed == 0 and args.dtype == "float32"
    name = "better_rnnlm" if default_run else f"better_rnnlm_dropout{args.dropout:g}_seed{args.seed}"
    if args.dtype != "float32":
        name += f"_{args.dtype}"
    if args.twin != "torch":
        name += f"_{args.twin}"
        result["twin"] = (f"ours, every initial weight moved {'down' if 'down' in args.twin else 'up'}"
                          f" by one ulp (np.nextafter)")
    path = save_result(name, result, quick=args.quick)
    print(f"val perplexity ours {ours_val:.2f}, {args.twin} {torch_val:.2f} "
          f"({result['relative_difference']:.1%} apart); {ours_s:.0f} s vs {torch_s:.0f} s; "
          f"wrote {path}")


if __name__ == "__main__":
    main()

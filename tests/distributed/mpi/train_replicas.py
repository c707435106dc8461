"""Train a tiny model for a few steps and save its parameters: alone (one process,
the plain trainer) or under ``mpiexec -n K`` (the trainer made data-parallel).
Run by tests/test_distributed.py; not a test module itself.

    python train_replicas.py MODEL OUT.npz [--dropout R] [--fail-at ITERATION] [--gpu]

MODEL: rnnlm, better-rnnlm, seq2seq or cbow. OUT.npz (written by rank 0): the
parameters by name, and ``next_draws`` (K,): the next draw of every rank's model
generator after training.
"""

import argparse
import sys

import numpy as np

from timelayers import metrics, models, optim
from timelayers.backend import to_cpu, to_gpu
from timelayers.distributed import mpi_world, parallelize
from timelayers.training import RnnlmTrainer, Trainer

V, SEED = 23, 7


def corpus(length=401):
    return np.random.default_rng(1).integers(0, V, size=length).astype(np.int32)


def build(name, dropout, to_device=lambda a: a):
    """(model, trainer, fit arguments) of a run of ``name``; ``to_device`` moves
    the data's arrays (the model is moved by the caller)."""
    if name in ("rnnlm", "better-rnnlm"):
        if name == "rnnlm":
            model = models.Rnnlm(V, 8, 8, rng=SEED)
        else:
            model = models.BetterRnnlm(V, 8, 8, dropout_ratio=dropout, rng=SEED)
        trainer = RnnlmTrainer(model, optim.SGD(lr=1.0), max_grad=0.25, progress=False)
        ids = to_device(corpus())
        valid = to_device(corpus(61))
        fit = dict(xs=ids[:-1], ts=ids[1:], max_epoch=2, batch_size=4, time_size=5,
                   eval_fn=lambda m: {"val_perplexity": metrics.perplexity(m, valid, 2, 5)})
        return model, trainer, fit
    rng = np.random.default_rng(2)
    if name == "seq2seq":
        model = models.Seq2seq(V, 6, 8, rng=SEED)
        x = rng.integers(0, V, size=(40, 7)).astype(np.int32)
        t = rng.integers(0, V, size=(40, 5)).astype(np.int32)
        batch = 5  # not divisible by 2: 3 rows and 2 rows
    elif name == "cbow":
        ids = corpus()
        model = models.CBOW(V, 8, window_size=2, corpus=ids, rng=SEED)
        sample_size = model.ns_loss.sampler.sample_size
        # the negatives of a row depend on its target only, not on a random stream
        # that the ranks would draw from differently than one process
        model.ns_loss.sampler.get_negative_sample = (
            lambda target: (target[:, None].astype(np.int64) + np.arange(1, sample_size + 1)) % V)
        from timelayers.text import create_contexts_target

        x, t = create_contexts_target(ids, 2)
        batch = 8
    else:
        sys.exit(f"unknown model {name!r}")
    trainer = Trainer(model, optim.Adam(lr=0.01), max_grad=1.0, rng=SEED + 1, progress=False)
    return model, trainer, dict(x=to_device(x), t=to_device(t), max_epoch=2, batch_size=batch)


class FailAt:
    """Callback: raise on rank 1 at the given iteration of the first epoch."""

    def __init__(self, rank, iteration):
        self.rank, self.iteration = rank, iteration

    def __call__(self, trainer, event, info):
        if event == "iteration_end" and self.rank == 1 and info["iteration"] == self.iteration:
            raise RuntimeError(f"rank 1 fails on purpose at iteration {self.iteration}")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("model")
    parser.add_argument("out")
    parser.add_argument("--dropout", type=float, default=0.0)
    parser.add_argument("--fail-at", type=int)
    parser.add_argument("--gpu", action="store_true", help="model and data on CuPy arrays")
    args = parser.parse_args()
    comm = mpi_world()
    model, trainer, fit = build(args.model, args.dropout, to_gpu if args.gpu else lambda a: a)
    if args.gpu:
        model.to_gpu()
    if comm is not None:
        from timelayers.distributed import abort_on_error

        with abort_on_error(comm):
            parallelize(trainer, comm, seed=SEED)
            if args.fail_at:
                trainer.callbacks.append(FailAt(comm.Get_rank(), args.fail_at))
            trainer.fit(**fit)
            draws = comm.allgather(float(model.rng.random()) if hasattr(model, "rng") else 0.0)
        if comm.Get_rank() != 0:
            return
        print("collectives:", type(trainer.model.collectives).__name__)
    else:
        trainer.fit(**fit)
        draws = [float(model.rng.random()) if hasattr(model, "rng") else 0.0]
    np.savez(args.out, next_draws=np.array(draws), loss=np.array(trainer.history["loss"]),
             **dict(zip(model.param_names, map(to_cpu, model.params))))


if __name__ == "__main__":
    main()

"""Epochs to accuracy: the book's own code against ours, same recipe, same data file.

Two of the book's recipes, each trained by the book's code (its ``common/``,
``ch07/`` and ``ch08/`` modules, imported from a checkout given by ``--book``; nothing
of it is copied here) and by ours, with several seeds:

- ``dates``: ``ch08/train.py``: AttentionSeq2seq on ``dataset/date.txt``, questions
  reversed, wordvec 16, hidden 256, batch 128, Adam lr 0.001, max_grad 5.0; test
  accuracy after every epoch (default 1-4);
- ``addition``: ``ch07/train_seq2seq.py`` with PeekySeq2seq and reversed questions on
  ``dataset/addition.txt``, wordvec 16, hidden 128, same optimiser, 25 epochs; the
  table shows epochs 10, 15, 20, 25 and pools 21-25. The book's learning rate is
  constant, so ours is too here (our ``peeky`` recipe adds a ReduceOnPlateau
  schedule, left out).

Every epoch's test accuracy is measured (no random draw depends on it) and kept.

The book's side loads the data with its ``dataset/sequence.py`` (a shuffle seeded with
1984, the last 10% the test split), then seeds NumPy's global generator with the run's
seed before building the model (initialisation and the per-epoch shuffles draw from
it; seed -1 does not, as the book's script, whose draws then follow the 1984 shuffle:
a book run only, reported as "unseeded"), and counts a test question right the book's
way (``eval_seq2seq``, one question at a time). Our side is the recipe as ``timelayers
train attention|peeky --data FILE --seed S`` builds it (``runs.recipes.load_data`` and
``build_model``, the trainer seeded with ``seed + 1``, the recipe's options), measured
on its own test split (the file split 90/10 after a shuffle seeded with the run's
seed) with ``sequence_accuracy``. ``--ours-valid`` chooses the validation hold-out
(``on``: the last 5% of the training lines, the recipes' default; ``off``: trained on
all of them, ``eval_valid=False``). ``--ours-lr`` changes our Adam's learning rate from
the book's 0.001 (its runs are kept apart: ``-lr<value>`` in their names and rows);
``--ours-plateau`` keeps our recipe's ReduceOnPlateau schedule (``peeky``: the rate
halved when the validation accuracy stalls; needs the hold-out), ``-plateau``;
``--ours-cosine`` decays the rate from its start to 0 along half a cosine over the
run's iterations (``WarmupCosine`` with no warm-up), ``-cosine``.

Each run is one subprocess (``nice -n 10``, one BLAS/OpenMP/timelayers thread), one at
a time, started only while ``/tmp/timelayers-quiet`` does not exist (another process
may be timing benchmarks). Every run writes
``docs/results/learning_speed/<task>-<code>[-all-lines]-seed<S>.json`` (``-unseeded``
for seed -1; accuracy, loss and seconds per epoch, the book's 20-step loss means) and
a log under ``logs/``; a run whose file exists is not repeated (``--force`` repeats
it). The tables are printed (Markdown) from whatever files exist, with the first step whose
20-step mean loss is below 0.5 and 0.05 (when the loss leaves its plateau), and
written to ``docs/results/learning_speed.json``. Runs are deterministic: a repeated
run gave the same numbers, in both codes.

    python benchmarks/results_learning_speed.py --book /tmp/dlfs2 [--tasks dates addition]
        [--seeds 1 2 3] [--codes book ours] [--ours-valid on|off] [--force] [--table-only]
    # the rows of docs/RESULTS.md: the above, then
    python benchmarks/results_learning_speed.py --book /tmp/dlfs2 --codes ours --ours-valid off
    python benchmarks/results_learning_speed.py --book /tmp/dlfs2 --tasks dates --codes book \
        --seeds -1
    # the change that reaches 99.9% after epoch 3 for every seed: twice the rate
    python benchmarks/results_learning_speed.py --book /tmp/dlfs2 --tasks dates --codes ours \
        --ours-valid off --ours-lr 0.002 --epochs 3
"""

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _results import RESULTS, machine  # noqa: E402

OUT = RESULTS / "learning_speed"
QUIET_FLAG = Path("/tmp/timelayers-quiet")
THREADS_ENV = {"OPENBLAS_NUM_THREADS": "1", "TIMELAYERS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1",
               "MKL_NUM_THREADS": "1", "MPLBACKEND": "Agg"}

TASKS = {
    # file, book model (module, class), our recipe, hidden, epochs, epochs in the table,
    # the last epochs whose accuracies are pooled (every epoch is measured and kept)
    "dates": dict(file="date.txt", module="attention_seq2seq", cls="AttentionSeq2seq",
                  recipe="attention", hidden=256, epochs=4, report=[1, 2, 3, 4], last=[3, 4]),
    "addition": dict(file="addition.txt", module="peeky_seq2seq", cls="PeekySeq2seq",
                     recipe="peeky", hidden=128, epochs=25, report=[10, 15, 20, 25],
                     last=[21, 22, 23, 24, 25]),
}
WORDVEC, BATCH, LR, MAX_GRAD = 16, 128, 0.001, 5.0
LOSS_INTERVAL = 20  # the book's Trainer keeps the mean loss of every 20 steps
LOSS_MARKS = (0.5, 0.05)  # dates: the loss sits near 1 for an epoch or two, then falls


# -- one run, in a subprocess -------------------------------------------------------------
def run_book(book: Path, task: dict, seed: int, epochs: int, report) -> dict:
    """Train the book's model with the book's Trainer, Adam and data loader."""
    for path in (book / "ch08", book / "ch07", book):  # its modules import each other so
        sys.path.insert(0, str(path))
    from dataset import sequence  # noqa: E402  (the book's)
    from common.optimizer import Adam
    from common.trainer import Trainer
    from common.util import eval_seq2seq
    model_module = __import__(task["module"])

    (x_train, t_train), (x_test, t_test) = sequence.load_data(task["file"])  # seeds 1984
    char_to_id, id_to_char = sequence.get_vocab()
    x_train, x_test = x_train[:, ::-1], x_test[:, ::-1]
    if seed >= 0:  # else as the book's script: the generator as load_data's seed(1984) left it
        np.random.seed(seed)  # initialisation and every epoch's shuffle draw from it
    model = getattr(model_module, task["cls"])(len(char_to_id), WORDVEC, task["hidden"])
    trainer = Trainer(model, Adam(lr=LR))
    record = _record(len(x_train), len(x_test))
    for epoch in range(1, epochs + 1):
        seen = len(trainer.loss_list)
        t0 = time.perf_counter()
        trainer.fit(x_train, t_train, max_epoch=1, batch_size=BATCH, max_grad=MAX_GRAD)
        record["seconds"].append(time.perf_counter() - t0)
        record["loss"].append(float(np.mean(trainer.loss_list[seen:])))  # means of 20 steps
        record["loss_curve"].extend(float(v) for v in trainer.loss_list[seen:])
        if epoch in report:
            t0 = time.perf_counter()
            correct = sum(eval_seq2seq(model, x_test[[i]], t_test[[i]], id_to_char,
                                       False, is_reverse=True) for i in range(len(x_test)))
            record["test_accuracy"].append(correct / len(x_test))
            record["eval_seconds"].append(time.perf_counter() - t0)
        else:
            record["test_accuracy"].append(None)
        _progress("book", epoch, record)
    return record


def run_ours(book: Path, task: dict, seed: int, epochs: int, report, valid: bool,
             lr: float = LR, plateau: bool = False, cosine: bool = False) -> dict:
    """Train our recipe's model as ``timelayers train`` builds it, on the book's file,
    with a constant learning rate (the book's unless ``lr`` is given), the recipe's
    plateau schedule (``plateau``) or its cosine decay from the first step (``cosine``:
    ``warmup=0``, as ``timelayers train ... --warmup 0``)."""
    import timelayers as tl
    from timelayers.runs import recipes

    recipe = recipes.RECIPES[task["recipe"]]
    options = {**recipe.model_args, **recipe.train_args, **recipes.COMMON_OPTIONS,
               "epochs": epochs, "eval_valid": valid, "lr": lr}
    if not plateau:
        options.pop("plateau_factor", None)  # the book's constant rate
    if cosine:
        options["warmup"] = 0                # the recipe's cosine decay from the first step
    assert options["reverse"] and recipe.train_args.get("lr", LR) == LR
    assert options["batch_size"] == BATCH
    assert options["max_grad"] == MAX_GRAD and options["optimizer"] == "Adam"
    assert options["hidden_size"] == task["hidden"] and options["wordvec_size"] == WORDVEC
    data = recipes.load_data(recipe, str((book / "dataset" / task["file"]).resolve()), options,
                             seed)
    model = recipes.build_model(recipe, options, data, np.random.default_rng(seed))
    (x, t), extra = recipe.task.fit_inputs(options, data)
    optimizer = tl.Adam(lr=lr)
    schedule = recipes.build_schedule(options, optimizer, len(x) // BATCH, recipe.task)
    assert (schedule is not None) == (plateau or cosine)
    trainer = tl.Trainer(model, optimizer, max_grad=MAX_GRAD, schedule=schedule,
                         callbacks=[tl.schedules.step_each_iteration],
                         rng=np.random.default_rng(seed + 1), progress=False)
    x_test, t_test = data.test
    record = _record(len(x), len(x_test))
    record["validation_lines"] = 0 if data.valid is data.test else len(data.valid[0])

    window = []

    def on_epoch(trainer, event, info):
        if event == "epoch_start":
            window.clear()
        if event == "iteration_end":  # the book's loss_list: a mean at every 20th step
            window.append(float(info["loss"]))  # (0-based 0, 20, ...), reset each epoch
            if (info["iteration"] - 1) % LOSS_INTERVAL == 0:
                record["loss_curve"].append(float(np.mean(window)))
                window.clear()
        if event != "epoch_end":
            return
        record["seconds"].append(info["seconds"])  # training only
        record.setdefault("lr_at_epoch_end", []).append(float(trainer.optimizer.lr))
        record["loss"].append(info["loss"])
        if info["epoch"] in report:
            t0 = time.perf_counter()
            record["test_accuracy"].append(tl.sequence_accuracy(trainer.model, x_test, t_test))
            record["eval_seconds"].append(time.perf_counter() - t0)
        else:
            record["test_accuracy"].append(None)
        _progress("ours", info["epoch"], record)

    trainer.callbacks.append(on_epoch)
    trainer.fit(x, t, max_epoch=epochs, batch_size=BATCH,
                eval_fn=recipe.task.validation(options, data) if valid else None, **extra)
    if valid:
        record["validation_accuracy"] = trainer.history["val_accuracy"]
    return record


def _record(train_lines, test_lines):
    return {"train_lines": train_lines, "test_lines": test_lines, "test_accuracy": [],
            "loss": [], "seconds": [], "eval_seconds": [], "loss_curve": [],
            "loss_curve_interval": LOSS_INTERVAL}


def _progress(code, epoch, record):
    acc = record["test_accuracy"][-1]
    print(f"{code} epoch {epoch}: loss {record['loss'][-1]:.4f}, "
          f"{record['seconds'][-1]:.1f} s" + ("" if acc is None else f", test {acc:.4%}"),
          flush=True)


def worker(args):
    task = dict(TASKS[args.task])
    epochs = args.epochs or task["epochs"]
    report = list(range(1, epochs + 1))  # every epoch measured (no draw depends on it)
    book = Path(args.book).resolve()
    t0 = time.perf_counter()
    if args.code == "book":
        record = run_book(book, task, args.seed, epochs, report)
    else:
        record = run_ours(book, task, args.seed, epochs, report, args.ours_valid == "on",
                          args.ours_lr or LR, args.ours_plateau, args.ours_cosine)
    record.update(task=args.task, code=args.code, seed=args.seed, epochs=epochs,
                  reported_epochs=report, wall_seconds=time.perf_counter() - t0,
                  machine=machine(), load_average_after=os.getloadavg())
    if args.code == "ours":
        record["validation_holdout"] = args.ours_valid
        record["lr"] = args.ours_lr or LR
        record["plateau"] = bool(args.ours_plateau)
        record["cosine"] = bool(args.ours_cosine)
    Path(args.output).write_text(json.dumps(record, indent=1, default=float) + "\n")


# -- the driver ----------------------------------------------------------------------------
def run_path(task, code, seed, valid="on", lr=None, plateau=False, cosine=False):
    suffix = "-all-lines" if code == "ours" and valid == "off" else ""
    suffix += f"-lr{lr:g}" if code == "ours" and lr and lr != LR else ""
    suffix += "-plateau" if code == "ours" and plateau else ""
    suffix += "-cosine" if code == "ours" and cosine else ""
    return OUT / (f"{task}-{code}{suffix}-"
                  + (f"seed{seed}.json" if seed >= 0 else "unseeded.json"))


def wait_until_quiet():
    waited = 0
    while QUIET_FLAG.exists():
        if waited % 60 == 0:
            print(f"  {QUIET_FLAG} exists: waiting", flush=True)
        time.sleep(10)
        waited += 10


def launch(args, task, code, seed, path):
    wait_until_quiet()
    env = {**os.environ, **THREADS_ENV}
    command = ["nice", "-n", "10", sys.executable, str(Path(__file__).resolve()), "--worker",
               "--book", args.book, "--task", task, "--code", code, "--seed", str(seed),
               "--ours-valid", args.ours_valid, "--output", str(path)]
    if args.ours_lr:
        command += ["--ours-lr", str(args.ours_lr)]
    if args.ours_plateau:
        command += ["--ours-plateau"]
    if args.ours_cosine:
        command += ["--ours-cosine"]
    if args.epochs:
        command += ["--epochs", str(args.epochs)]
    print(f"{task} {code} seed {seed} ...", flush=True)
    log = OUT / "logs" / (path.stem + ".log")
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "w") as out:
        subprocess.run(command, env=env, stdout=out, stderr=subprocess.STDOUT, check=True)
    print("  " + log.read_text().strip().splitlines()[-1], flush=True)


def summarise(records, epochs):
    """Mean, min and max test accuracy at each reported epoch over the seeds."""
    rows = {}
    for e in epochs:
        accs = [r["test_accuracy"][e - 1] for r in records
                if len(r["test_accuracy"]) >= e and r["test_accuracy"][e - 1] is not None]
        if accs:
            rows[e] = {"mean": float(np.mean(accs)), "min": min(accs), "max": max(accs),
                       "seeds": len(accs), "each": accs}
    return rows


def steps_to_loss(record, below):
    """The first training step whose 20-step mean loss (the book's ``loss_list``:
    steps 1, 21, 41, ... of each epoch) is below ``below``, or None."""
    per_epoch = record["train_lines"] // BATCH
    points = -(-per_epoch // LOSS_INTERVAL)  # entries a epoch
    for i, value in enumerate(record.get("loss_curve") or []):
        if value < below:
            epoch, j = divmod(i, points)
            return epoch * per_epoch + j * LOSS_INTERVAL + 1
    return None


def tables(args):
    summary = {}
    lines = []
    for task in args.tasks:
        epochs = (TASKS[task]["report"] if task == "addition"
                  else list(range(1, (args.epochs or 4) + 1)))
        last = TASKS[task]["last"]  # every accuracy of these epochs: their mean, the lowest
        codes = {"book": [], "ours": [], "ours-all-lines": []}
        for path in sorted(OUT.glob(f"{task}-*.json")):
            record = json.loads(path.read_text())
            name = record["code"] + ("-all-lines" if record.get("validation_holdout") == "off"
                                     else "") + (" (unseeded)" if record["seed"] < 0 else "")
            if record.get("lr", LR) != LR:
                name += f", lr {record['lr']:g}"
            if record.get("plateau"):
                name += ", plateau schedule"
            if record.get("cosine"):
                name += ", cosine decay"
            codes.setdefault(name, [])
            codes[name].append(record)
        summary[task] = {}
        lines.append(f"\n{task}: test accuracy, mean [min, max] over seeds (seeds)")
        lines.append("| code | " + " | ".join(f"epoch {e}" for e in epochs)
                     + f" | epochs {last[0]}-{last[-1]}, each | lowest of those"
                       " | s/epoch (train) | s/eval |")
        lines.append("|---" * (len(epochs) + 5) + "|")
        marks = []
        for name, records in codes.items():
            if not records:
                continue
            rows = summarise(records, epochs)
            sec = float(np.mean([s for r in records for s in r["seconds"]]))
            ev = float(np.mean([s for r in records for s in r["eval_seconds"]] or [0]))
            summary[task][name] = {"epochs": rows, "seconds_per_epoch": sec,
                                   "seconds_per_evaluation": ev,
                                   "seeds": [r["seed"] for r in records],
                                   "train_lines": records[0]["train_lines"],
                                   "loss": {r["seed"]: r["loss"] for r in records}}
            cells = [f"{rows[e]['mean']:.2%} [{rows[e]['min']:.2%}, {rows[e]['max']:.2%}] "
                     f"({rows[e]['seeds']})" if e in rows else "-" for e in epochs]
            late = summarise(records, last)
            every = [a for e in late.values() for a in e["each"]]
            late_cell = (f"{np.mean(every):.2%} ({len(every)})" if every else "-")
            low_cell = f"{min(every):.2%}" if every else "-"
            summary[task][name]["last_epochs"] = {"epochs": last, "mean": float(np.mean(every))
                                                  if every else None,
                                                  "lowest": min(every) if every else None}
            lines.append(f"| {name} | " + " | ".join(cells) + f" | {late_cell} | {low_cell}"
                         f" | {sec:.0f} | {ev:.1f} |")
            steps = {str(below): {} for below in LOSS_MARKS}
            for r in records:
                for below in LOSS_MARKS if r.get("loss_curve") else ():
                    n = steps_to_loss(r, below)
                    steps[str(below)][r["seed"]] = None if n is None else {
                        "steps": n, "epochs": n / (r["train_lines"] // BATCH)}
            summary[task][name]["steps_to_loss_below"] = steps
            marks.append(f"| {name} | " + " | ".join(
                ", ".join(f"s{seed}: {v['steps']} ({v['epochs']:.2f})" if v else f"s{seed}: -"
                          for seed, v in steps[str(b)].items()) or "-"
                for b in LOSS_MARKS) + " |")
        lines.append(f"\n{task}: first step (epochs) whose 20-step mean training loss is below")
        lines.append("| code | " + " | ".join(str(b) for b in LOSS_MARKS) + " |")
        lines.append("|---" * (len(LOSS_MARKS) + 1) + "|")
        lines.extend(marks)
    print("\n".join(lines))
    result = {"tasks": summary, "machine": machine(), "command": "python " + " ".join(sys.argv)}
    (RESULTS / "learning_speed.json").write_text(json.dumps(result, indent=1, default=float) + "\n")


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--book", required=True,
                        help="a checkout of oreilly-japan/deep-learning-from-scratch-2")
    parser.add_argument("--tasks", nargs="+", choices=list(TASKS), default=list(TASKS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[1, 2, 3])
    parser.add_argument("--codes", nargs="+", choices=["book", "ours"], default=["book", "ours"])
    parser.add_argument("--ours-valid", choices=["on", "off"], default="on",
                        help="ours: hold out the last 5%% of the training lines (on, the "
                             "recipes' default) or train on all of them (off)")
    parser.add_argument("--ours-lr", type=float,
                        help="ours: Adam's learning rate instead of the book's 0.001")
    parser.add_argument("--ours-plateau", action="store_true",
                        help="ours: keep the recipe's ReduceOnPlateau schedule (peeky)")
    parser.add_argument("--ours-cosine", action="store_true",
                        help="ours: the rate decays to 0 along half a cosine over the run")
    parser.add_argument("--epochs", type=int, help="instead of the task's (4 dates, 25 addition)")
    parser.add_argument("--force", action="store_true", help="repeat runs whose file exists")
    parser.add_argument("--table-only", action="store_true")
    # one run (what the driver starts)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--task", choices=list(TASKS), help=argparse.SUPPRESS)
    parser.add_argument("--code", choices=["book", "ours"], help=argparse.SUPPRESS)
    parser.add_argument("--seed", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--output", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.ours_plateau and args.ours_valid == "off":
        parser.error("--ours-plateau needs the validation hold-out (--ours-valid on)")
    if args.ours_plateau and args.ours_cosine:
        parser.error("--ours-plateau and --ours-cosine are two schedules: choose one")
    book = Path(args.book)
    if not (book / "ch08" / "train.py").exists() or not (book / "dataset" / "sequence.py").exists():
        parser.error(f"--book {args.book!r} is not a checkout of the book's code "
                     f"(no ch08/train.py, dataset/sequence.py)")
    if args.worker:
        return worker(args)
    OUT.mkdir(parents=True, exist_ok=True)
    if not args.table_only:
        for task in args.tasks:
            for seed in args.seeds:  # the codes alternate, so a partial result compares
                for code in args.codes:
                    if seed < 0 and code == "ours":  # -1: the book's script as it is
                        continue
                    path = run_path(task, code, seed, args.ours_valid, args.ours_lr,
                                    args.ours_plateau, args.ours_cosine)
                    if path.exists() and not args.force:
                        continue
                    launch(args, task, code, seed, path)
    tables(args)


if __name__ == "__main__":
    main()

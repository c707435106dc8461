"""TransformerSeq2seq (beyond the book) with its recipe (`timelayers train
transformer-seq2seq`: D 64, 4 heads, 2 + 2 blocks, feed-forward 256, dropout 0.1,
AdamW lr 2e-3 with weight decay 0.01, 100 warm-up iterations then a cosine to 0 at
the last one, batch 128, clip 1, questions not reversed) on generated dates (target
>= 99.9% test accuracy) and on generated addition, against Peeky + reversed input
(docs/results/seq2seq_addition.json, or trained here with --with-peeky); an
attention map of one head.

    python benchmarks/results_transformer_seq2seq.py [--quick] [--dates-epochs N]
        [--addition-epochs N] [--with-peeky]

Writes transformer_seq2seq_dates.json/.png, transformer_seq2seq_addition.json/.png
and transformer_seq2seq_map.png (head 0 of the last decoder block's cross-attention,
for the first test date).
"""

import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _results import RESULTS, argument_parser, save_result  # noqa: E402

import timelayers as tl  # noqa: E402
from timelayers.datasets import load_addition, load_dates, reverse_questions  # noqa: E402
from timelayers.runs.recipes import RECIPES  # noqa: E402
from timelayers.schedules import WarmupCosine, step_each_iteration  # noqa: E402

RECIPE = RECIPES["transformer-seq2seq"]
OPTIONS = {**RECIPE.model_args, **RECIPE.train_args}
MAP_HEAD, MAP_LAYER = 0, -1


def train(model, x_train, t_train, x_test, t_test, epochs, seed, schedule_options=None):
    """Train ``model`` with the recipe's optimizer, schedule (when
    ``schedule_options`` has ``warmup``), clip and batch size; the test accuracy
    after each epoch is in the history."""
    options = schedule_options or OPTIONS
    batch = options["batch_size"]
    if options["optimizer"] == "AdamW":
        optimizer = tl.optim.AdamW(lr=options["lr"], weight_decay=options["weight_decay"])
    else:
        optimizer = getattr(tl.optim, options["optimizer"])(lr=options["lr"])
    schedule = None
    if options.get("warmup") is not None:
        schedule = WarmupCosine(optimizer, options["warmup"],
                                max(epochs * (len(x_train) // batch), options["warmup"], 1),
                                per="iteration")
    trainer = tl.Trainer(model, optimizer, max_grad=options["max_grad"], rng=seed,
                         schedule=schedule, callbacks=[step_each_iteration])
    t0 = time.perf_counter()
    trainer.fit(x_train, t_train, max_epoch=epochs, batch_size=batch,
                eval_fn=lambda m: {"val_accuracy": tl.sequence_accuracy(m, x_test, t_test)})
    return trainer, time.perf_counter() - t0


def transformer(vocab_size, seed):
    kwargs = {RECIPE.model_arg_names.get(k, k): v for k, v in RECIPE.model_args.items()}
    return tl.models.TransformerSeq2seq(vocab_size, **kwargs, rng=seed)


def summary(name, trainer, seconds, epochs, n, target):
    acc = trainer.history["val_accuracy"]
    return {"model": "TransformerSeq2seq", "data": name, "recipe_options": OPTIONS,
            "epochs": epochs, "examples": n, "test_accuracy": acc,
            "final_test_accuracy": acc[-1], "seconds_per_epoch": trainer.history["seconds"],
            "train_seconds": seconds, "target": target}


def peeky_reference(with_peeky, data, epochs, seed):
    """Peeky + reversed on addition: trained here (``with_peeky``), else the numbers
    of docs/results/seq2seq_addition.json."""
    if not with_peeky:
        path = RESULTS / "seq2seq_addition.json"
        if not path.exists():
            return {"note": f"{path} is absent: run results_seq2seq_addition.py or --with-peeky"}
        saved = json.loads(path.read_text())
        return {"source": str(path.relative_to(RESULTS.parents[1])), "epochs": saved["epochs"],
                **saved["variants"]["peeky+reversed"]}
    (x_train, t_train), (x_test, t_test), vocab = data
    model = tl.models.PeekySeq2seq(len(vocab), 16, 128, rng=seed)
    book = dict(optimizer="Adam", lr=0.001, max_grad=5.0, batch_size=128)
    trainer, seconds = train(model, reverse_questions(x_train), t_train,
                             reverse_questions(x_test), t_test, epochs, seed, book)
    acc = trainer.history["val_accuracy"]
    return {"source": "trained in this run", "epochs": epochs, "test_accuracy": acc,
            "final_test_accuracy": acc[-1], "train_seconds": seconds}


def main():
    parser = argument_parser(__doc__)
    parser.add_argument("--dates-epochs", type=int, default=OPTIONS["epochs"])
    parser.add_argument("--addition-epochs", type=int, default=25,
                        help="default 25, the book's epochs for Peeky + reversed")
    parser.add_argument("--with-peeky", action="store_true",
                        help="train Peeky + reversed on addition here, for as many epochs")
    args = parser.parse_args()
    n = 3000 if args.quick else OPTIONS["examples"]
    dates_epochs, addition_epochs = (1, 1) if args.quick else (args.dates_epochs,
                                                                args.addition_epochs)
    folder = RESULTS / "quick" if args.quick else RESULTS
    folder.mkdir(parents=True, exist_ok=True)

    (x_train, t_train), (x_test, t_test), vocab = load_dates(n=n)
    model = transformer(len(vocab), args.seed)
    trainer, seconds = train(model, x_train, t_train, x_test, t_test, dates_epochs, args.seed)
    dates = summary("dates", trainer, seconds, dates_epochs, n, ">= 99.9% test accuracy")
    ids, weights = model.attention_map(x_test[:1], int(t_test[0, 0]), t_test.shape[1] - 1,
                                       layer=MAP_LAYER, head=MAP_HEAD)
    what = f"head {MAP_HEAD} of the last decoder block's cross-attention"
    tl.plot.plot_attention(weights[0], vocab.decode(x_test[0]), vocab.decode(ids[0]),
                           folder / "transformer_seq2seq_map.png",
                           title=f"TransformerSeq2seq on dates: {what}")
    dates["attention_map"] = {"file": "transformer_seq2seq_map.png", "shows": what,
                              "question": "".join(vocab.decode(x_test[0])).strip(),
                              "answer": "".join(vocab.decode(ids[0])).strip()}
    path = save_result("transformer_seq2seq_dates", dates, trainer.history, quick=args.quick)
    print(f"dates: test accuracy per epoch {dates['test_accuracy']}, {seconds:.0f} s; "
          f"wrote {path}")

    data = load_addition(n=n)
    (x_train, t_train), (x_test, t_test), vocab = data
    model = transformer(len(vocab), args.seed)
    trainer, seconds = train(model, x_train, t_train, x_test, t_test, addition_epochs,
                             args.seed)
    addition = summary("addition", trainer, seconds, addition_epochs, n,
                       "Peeky + reversed's test accuracy after as many epochs")
    addition["peeky_reversed"] = peeky_reference(args.with_peeky, data, addition_epochs,
                                                 args.seed)
    path = save_result("transformer_seq2seq_addition", addition, trainer.history,
                       quick=args.quick)
    peeky = addition["peeky_reversed"].get("final_test_accuracy")
    print(f"addition: final test accuracy {addition['final_test_accuracy']:.4f} in "
          f"{seconds:.0f} s (Peeky + reversed: {peeky}); wrote {path}")


if __name__ == "__main__":
    main()

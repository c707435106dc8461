"""`timelayers train transformer-lm / transformer-seq2seq` on tiny files: the run
folder, eval and generate, the warm-up + cosine schedule counted in iterations, and
resuming it (the schedule's state comes back with the checkpoint)."""

import json

import pytest

from timelayers.runs import recipes
from timelayers.cli import main
from timelayers.optim import SGD
from timelayers.schedules import WarmupCosine
from timelayers.training import Trainer
from support.cli import run

TINY_LM = ["--d-model", 16, "--heads", 2, "--layers", 1, "--ff-size", 32, "--batch-size", 4,
           "--time-size", 5, "--warmup", 3]
TINY_S2S = ["--d-model", 16, "--heads", 2, "--encoder-layers", 1, "--decoder-layers", 1,
            "--ff-size", 32, "--batch-size", 32, "--warmup", 5]


def history(run_dir):
    return json.loads((run_dir / "history.json").read_text())


class StopAfterFirstEpoch:
    def __call__(self, trainer, event, info):
        if event == "epoch_end":
            trainer.stop_training = True


def test_transformer_lm_trains_evaluates_and_generates(tmp_path, corpus_file, capsys):
    out_dir = tmp_path / "lm"
    code, out, err = run(capsys, "train", "transformer-lm", "--data", corpus_file, *TINY_LM,
                         "--epochs", 2, "--out", out_dir)
    assert code == 0, err
    for name in ["run.json", "model.safetensors", "checkpoint.safetensors", "history.json",
                 "metrics.json", "learning_curve.png"]:
        assert (out_dir / name).exists(), name
    h = history(out_dir)
    assert h["val_perplexity"][1] < h["val_perplexity"][0] < 40  # 12 words: it learns
    info = json.loads((out_dir / "run.json").read_text())
    assert info["options"]["time_size"] == 5 and info["options"]["optimizer"] == "AdamW"
    run_ = recipes.load_run(out_dir)
    assert run_.model.config.max_len == 5  # the model reads windows of time_size
    assert run_.model.config.dropout == info["options"]["dropout_ratio"]

    code, out, err = run(capsys, "eval", out_dir)
    assert code == 0 and float(out.split()[1]) == pytest.approx(h["val_perplexity"][1], rel=1e-4)

    argv = ["generate", out_dir, "--start", "the", "--length", 12, "--seed", 1]
    code, out, err = run(capsys, *argv)
    assert code == 0, err
    words = out.replace(".\n", " <eos> ").split()  # each <eos> is printed as a line break
    assert words[0] == "the" and len(words) == 13, out
    assert run(capsys, *argv)[1] == out


def test_warmup_then_cosine_per_iteration(tmp_path, corpus_file):
    result = recipes.train("transformer-lm", tmp_path / "lm", data=corpus_file, progress=False,
                           overrides=dict(d_model=16, num_heads=2, num_layers=1, ff_size=32,
                                          batch_size=4, time_size=5, warmup=3, epochs=2,
                                          lr=0.01))
    ids, _ = recipes.read_text_corpus(corpus_file)
    per_epoch = (int(len(ids) * 0.9) - 1) // (4 * 5)  # the training split's windows
    lrs = result.history["lr"]  # the rate each epoch started with
    assert lrs[0] == pytest.approx(0.01 / 3)  # step 1 of the warm-up
    expected = WarmupCosine(SGD(lr=0.01), 3, 2 * per_epoch).lr_at(per_epoch + 1)
    assert lrs[1] == pytest.approx(expected)


@pytest.mark.parametrize("model,data,options", [
    ("transformer-lm", "corpus_file", dict(d_model=16, num_heads=2, num_layers=1, ff_size=32,
                                           batch_size=4, time_size=5, warmup=3)),
    ("transformer-seq2seq", "addition_file", dict(d_model=16, num_heads=2, encoder_layers=1,
                                                  decoder_layers=1, ff_size=32, batch_size=32,
                                                  warmup=5))])
def test_resume_restores_the_schedule(tmp_path, capsys, request, model, data, options):
    path = request.getfixturevalue(data)
    overrides = dict(options, epochs=2)
    whole = recipes.train(model, tmp_path / "whole", data=path, overrides=overrides,
                          progress=False)
    recipes.train(model, tmp_path / "cut", data=path, overrides=overrides, progress=False,
                  callbacks=[StopAfterFirstEpoch()])
    assert history(tmp_path / "cut")["epoch"] == [1]
    code, _, err = run(capsys, "train", model, "--resume", "--out", tmp_path / "cut")
    assert code == 0, err
    resumed = history(tmp_path / "cut")
    assert resumed["loss"] == whole.history["loss"]
    assert resumed["lr"] == whole.history["lr"]


def test_resume_with_more_epochs_stretches_the_cosine(tmp_path, addition_file, capsys):
    out_dir = tmp_path / "s2s"
    args = ["--data", addition_file, *TINY_S2S, "--out", out_dir]
    assert run(capsys, "train", "transformer-seq2seq", *args, "--epochs", 1)[0] == 0
    code, _, err = run(capsys, "train", "transformer-seq2seq", "--resume", "--epochs", 3,
                       "--lr", 0.004, "--out", out_dir)
    assert code == 0, err
    trainer = Trainer.resume(out_dir / "checkpoint.safetensors", progress=False)
    per_epoch = trainer.iteration // 3
    assert (trainer.schedule.total_steps, trainer.schedule.peak_lr) == (3 * per_epoch, 0.004)
    assert history(out_dir)["lr"][1] > 0  # the 1-epoch cosine had reached 0
    info = json.loads((out_dir / "run.json").read_text())
    assert info["resumed"][0]["changed"] == {"epochs": [1, 3], "lr": [0.002, 0.004]}
    # the same lr again is no change (compared with the schedule's peak, not the current rate)
    code, _, err = run(capsys, "train", "transformer-seq2seq", "--resume", "--epochs", 4,
                       "--lr", 0.004, "--out", out_dir)
    assert code == 0, err
    info = json.loads((out_dir / "run.json").read_text())
    assert info["resumed"][1]["changed"] == {"epochs": [3, 4]}


def test_transformer_seq2seq_answers_and_draws_one_head(tmp_path, addition_file, capsys):
    out_dir = tmp_path / "s2s"
    code, out, err = run(capsys, "train", "transformer-seq2seq", "--data", addition_file,
                         *TINY_S2S, "--epochs", 1, "--out", out_dir)
    assert code == 0, err
    assert "accuracy" in out and (out_dir / "attention.png").exists()
    code, out, err = run(capsys, "generate", out_dir, "16+75", "2+3", "--beam", 2)
    assert code == 0, err
    assert [line.split("\t")[0] for line in out.strip().split("\n")] == ["16+75", "2+3"]
    code, out, err = run(capsys, "eval", out_dir)
    assert code == 0 and out.startswith("accuracy"), err


@pytest.mark.parametrize("argv,message", [
    (["train", "transformer-lm", "--hidden", "8"], "--hidden does not apply to transformer-lm"),
    (["train", "transformer-lm", "--max-len", "8"], "--max-len does not apply"),
    (["train", "rnnlm", "--warmup", "8"], "--warmup does not apply to rnnlm"),
    (["train", "transformer-seq2seq", "--max-len", "4", "--data", "{addition}"],
     "longer than the model's max_len 4: give max_len >= 7"),
    (["train", "transformer-seq2seq", "--d-model", "10", "--heads", "4", "--data", "{addition}"],
     "recipe 'transformer-seq2seq': MultiHeadAttention: argument 'num_heads' expected a positive "
     "int dividing D=10, got 4"),
])
def test_transformer_option_errors(tmp_path, addition_file, capsys, argv, message):
    argv = [a.replace("{addition}", str(addition_file)) for a in argv]
    code, _, err = run(capsys, *argv, "--out", tmp_path / "run")
    assert code == 2 and message in err, err
    assert "Traceback" not in err


def test_negative_warmup_is_refused(capsys):
    with pytest.raises(SystemExit):
        main(["train", "transformer-lm", "--warmup", "-1"])
    assert "expected a non-negative int" in capsys.readouterr().err

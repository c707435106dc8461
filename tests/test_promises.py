"""What the library promises about run folders, the files it writes and the inputs it
reads (README, "What the library promises"), tried as a careful user and as someone
who plants files would: links, a second writer, another run's checkpoint, endless
inputs, numbers that overflow, long lines, environment variables."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from timelayers.cli import main
from support.cli import TEXT, TINY_LM, run


def strict_json(path):
    """``path`` read as RFC 8259 JSON: ``Infinity`` and ``NaN`` are refused."""
    def refuse(name):
        raise ValueError(f"{path}: {name} is not JSON")

    return json.loads(path.read_text(encoding="utf-8"), parse_constant=refuse)


# -- every file through one writer; links replaced, never followed ---------------------------
def test_a_link_in_a_run_folder_is_replaced_not_followed_on_resume(lm_run, tmp_path, capsys):
    outside = tmp_path / "outside"
    outside.mkdir()
    for name in ("learning_curve.png", "history.json", "metrics.json"):
        (outside / name).write_text("precious")
        (lm_run / name).unlink()
        (lm_run / name).symlink_to(outside / name)
    code, _, err = run(capsys, "train", "rnnlm", "--resume", "--epochs", 2, "--out", lm_run)
    assert code == 0, err
    for name in ("learning_curve.png", "history.json", "metrics.json"):
        assert (outside / name).read_text() == "precious", name
        assert not (lm_run / name).is_symlink() and (lm_run / name).stat().st_size > 0, name


def test_a_dangling_link_counts_as_a_run_file_and_force_removes_the_link(tmp_path, corpus_file,
                                                                         capsys):
    out_dir = tmp_path / "run"
    out_dir.mkdir()
    target = tmp_path / "elsewhere" / "picture.png"
    (out_dir / "learning_curve.png").symlink_to(target)
    code, _, err = run(capsys, "train", "rnnlm", "--data", corpus_file, *TINY_LM,
                       "--out", out_dir)
    assert code == 2 and "already holds a run" in err and "learning_curve.png" in err
    code, _, err = run(capsys, "train", "rnnlm", "--data", corpus_file, *TINY_LM,
                       "--out", out_dir, "--force")
    assert code == 0, err
    assert not target.exists() and not target.parent.exists()
    assert not (out_dir / "learning_curve.png").is_symlink()


def test_plots_are_written_atomically_through_a_link(tmp_path):
    pytest.importorskip("matplotlib")
    from timelayers.plot import plot_attention, plot_history

    target = tmp_path / "target.png"
    target.write_bytes(b"precious")
    for name, draw in [("curve.png", lambda p: plot_history({"epoch": [1, 2], "loss": [2, 1]}, p)),
                       ("map.png", lambda p: plot_attention(np.eye(2), "ab", "cd", p))]:
        (tmp_path / name).symlink_to(target)
        draw(tmp_path / name)
        assert target.read_bytes() == b"precious"
        assert not (tmp_path / name).is_symlink()
        assert (tmp_path / name).read_bytes().startswith(b"\x89PNG")


def test_a_full_disk_while_writing_a_plot_names_the_file(tmp_path, monkeypatch):
    pytest.importorskip("matplotlib")
    from timelayers.plot import plot_history

    def full(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    path = tmp_path / "learning_curve.png"
    with pytest.raises(OSError, match="No space left on device") as info:
        plot_history({"epoch": [1], "loss": [1.0]}, path)
    assert str(path) in str(info.value)
    monkeypatch.undo()
    assert list(tmp_path.iterdir()) == []


# -- one writer per run folder -------------------------------------------------------------
HOLD_LOCK = """
import sys, time
from timelayers.runs.folder import RunFolderLock
lock = RunFolderLock(sys.argv[1])
lock.acquire()
print("locked", flush=True)
time.sleep(60)
"""


def _holder(folder):
    """A process holding ``folder``'s lock (started, and locked, when this returns)."""
    proc = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(folder)],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "locked"
    return proc


@pytest.mark.parametrize("how", [["--resume", "--epochs", 2], ["--force"], []])
def test_a_second_writer_is_refused_at_once_naming_the_folder_and_the_holder(lm_run, corpus_file,
                                                                             capsys, how):
    before = {p.name: p.read_bytes() for p in lm_run.iterdir() if p.name != ".timelayers.lock"}
    holder = _holder(lm_run)
    try:
        data = [] if "--resume" in how else ["--data", corpus_file, *TINY_LM]
        code, _, err = run(capsys, "train", "rnnlm", *data, *how, "--out", lm_run)
    finally:
        holder.kill()
        holder.wait()
    assert code == 2, err
    assert (f"run folder '{lm_run}' is being written by another training (process "
            f"{holder.pid})") in err
    assert len(err.strip().splitlines()) == 1
    after = {p.name: p.read_bytes() for p in lm_run.iterdir() if p.name != ".timelayers.lock"}
    assert after == before
    # the holder was killed: its lock is gone with it (the file it leaves locks nothing)
    assert (lm_run / ".timelayers.lock").exists()
    code, _, err = run(capsys, "train", "rnnlm", "--resume", "--epochs", 2, "--out", lm_run)
    assert code == 0, err
    assert not (lm_run / ".timelayers.lock").exists()


def test_two_trainings_in_one_process_take_turns(lm_run, capsys):
    """The lock is released when a training ends, whether it ended well or not."""
    code, _, err = run(capsys, "train", "rnnlm", "--resume", "--epochs", 2, "--hidden", 16,
                       "--out", lm_run)
    assert code == 2 and "hidden_size=16" in err
    for epochs in (2, 3):
        code, _, err = run(capsys, "train", "rnnlm", "--resume", "--epochs", epochs,
                           "--out", lm_run)
        assert code == 0, err


# -- a run's identity ----------------------------------------------------------------------
def test_a_checkpoint_or_model_of_another_run_is_refused(lm_run, tmp_path, corpus_file, capsys):
    other = tmp_path / "other"
    other_text = tmp_path / "other.txt"
    other_text.write_text(TEXT.replace("cat", "cow"))  # same sizes, another vocabulary
    code, _, err = run(capsys, "train", "rnnlm", "--data", other_text, *TINY_LM, "--out", other)
    assert code == 0, err
    ids = {strict_json(d / "run.json")["run_id"] for d in (lm_run, other)}
    assert len(ids) == 2 and all(len(i) == 32 for i in ids)
    for name, argv in [("checkpoint.safetensors", ["train", "rnnlm", "--resume", "--epochs", 2,
                                                   "--out", lm_run]),
                       ("model.safetensors", ["eval", lm_run])]:
        own = (lm_run / name).read_bytes()
        (lm_run / name).write_bytes((other / name).read_bytes())
        code, _, err = run(capsys, *argv)
        assert code == 2, (name, err)
        assert f"'{lm_run / name}' is not of the run in '{lm_run}'" in err
        (lm_run / name).write_bytes(own)
    code, _, err = run(capsys, "eval", lm_run)
    assert code == 0, err


# -- numbers: sampling, JSON ---------------------------------------------------------------
@pytest.mark.parametrize("temperature", [0.0, 1e-310, 5e-324, 1e-7, 1e-6, 1e-3, 1.0, 1e300])
def test_sampling_is_safe_at_every_accepted_temperature(temperature):
    from timelayers.decoding import sample_next

    scores = np.array([-3e38, 1.0, 3e38, 2.0, 3e38 * 0.999], dtype=np.float32)
    rng = np.random.default_rng(0)
    draws = {sample_next(scores, rng, temperature) for _ in range(20)}
    assert draws <= {0, 1, 2, 3, 4}
    if temperature < 1e-3:
        assert draws == {2}


def test_sampling_refuses_when_nothing_is_left_to_draw():
    from timelayers.decoding import sample_next

    with pytest.raises(ValueError, match="no id is left"):
        sample_next(np.array([1.0, np.nan]), np.random.default_rng(0))
    with pytest.raises(ValueError, match="no id is left"):
        sample_next(np.array([1.0, 2.0]), np.random.default_rng(0), skip_ids=[0, 1])


def test_generate_at_a_tiny_temperature_is_greedy(lm_run, capsys):
    outs = set()
    for temperature in (0, 1e-310):
        code, out, err = run(capsys, "generate", lm_run, "--start", "the", "--length", 8,
                             "--temperature", temperature)
        assert code == 0, err
        outs.add(out)
    assert len(outs) == 1


# -- inputs: regular files, limits, short quotes -------------------------------------------
def _cli(*argv, timeout=60):
    """``timelayers argv`` in a subprocess: an input that hangs fails the test, not the run."""
    return subprocess.run([sys.executable, "-m", "timelayers", *map(str, argv)],
                          capture_output=True, text=True, timeout=timeout)


def _socket_file(path):
    import socket

    server = socket.socket(socket.AF_UNIX)
    server.bind(str(path))
    return server


def test_data_that_is_not_a_regular_file_is_refused_before_reading(lm_run, tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    server = _socket_file(tmp_path / "sock")
    try:
        for argv, kind in [(["train", "rnnlm", "--data", "/dev/zero", "--out", tmp_path / "z"],
                            "character device"),
                           (["train", "cbow", "--data", fifo, "--out", tmp_path / "f"], "FIFO"),
                           (["eval", lm_run, "--data", "/dev/urandom"], "character device"),
                           (["eval", lm_run, "--data", tmp_path / "sock"], "socket")]:
            result = _cli(*argv)
            assert result.returncode == 2, result.stderr
            assert f"is a {kind}, not a regular file" in result.stderr
            assert len(result.stderr.strip().splitlines()) == 1
    finally:
        server.close()
    assert not (tmp_path / "z").exists() and not (tmp_path / "f").exists()


def test_a_fifo_in_place_of_a_run_file_is_refused_not_waited_on(lm_run):
    (lm_run / "model.safetensors").unlink()
    os.mkfifo(lm_run / "model.safetensors")
    result = _cli("eval", lm_run)
    assert result.returncode == 2 and "is a FIFO, not a regular file" in result.stderr
    (lm_run / "run.json").unlink()
    os.mkfifo(lm_run / "run.json")
    result = _cli("eval", lm_run)
    assert result.returncode == 2 and "is a FIFO, not a regular file" in result.stderr


def test_inputs_are_read_up_to_a_limit(tmp_path, corpus_file, monkeypatch):
    from timelayers import serialization
    from timelayers.errors import DataError
    from timelayers.runs.recipes import read_text_corpus
    from timelayers.runs.folder import sha256_of

    monkeypatch.setattr(serialization, "INPUT_LIMIT", 1000)
    for read in (read_text_corpus, sha256_of):
        with pytest.raises(DataError, match=f"data file '{corpus_file}' holds more than 1,000 "
                                            f"bytes"):
            read(corpus_file)
    small = tmp_path / "small.txt"
    small.write_text("the cat sat\n")
    assert len(read_text_corpus(small)[0]) == 4


def test_messages_quote_at_most_80_characters_of_a_line(tmp_path, capsys):
    long_line = "1+1" + " " * 200_000 + "_2"
    cases = {
        "first.txt": ["x" * 300_000],  # no separator
        "third.txt": ["1+1_2", "2+2_4", long_line],  # another width
    }
    for name, lines in cases.items():
        path = tmp_path / name
        path.write_text("\n".join(lines) + "\n")
        code, _, err = run(capsys, "train", "seq2seq", "--data", path, "--out", tmp_path / "r")
        assert code == 2
        line = len(lines)
        assert f"line {line}" in err and f"({len(lines[-1]):,} characters)" in err
        assert len(err) < 300, err
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(TEXT)
    code, _, err = run(capsys, "train", "rnnlm", "--data", corpus, *TINY_LM, "--out",
                       tmp_path / "lm")
    assert code == 0, err
    corpus.write_text(TEXT + "y" * 100_000 + "\n")
    code, _, err = run(capsys, "eval", tmp_path / "lm", "--data", corpus)
    assert code == 2 and "(100,000 characters)" in err and len(err) < 400, err


def test_a_run_json_data_path_is_read_only_with_its_hash(lm_run, tmp_path, capsys):
    secret = tmp_path / "secret.txt"
    secret.write_text("password hunter2\n" * 100)
    info = json.loads((lm_run / "run.json").read_text())
    info.update(data=str(secret), data_sha256=None)
    (lm_run / "run.json").write_text(json.dumps(info))
    for argv in (["eval", lm_run], ["train", "rnnlm", "--resume", "--epochs", 2, "--out", lm_run]):
        code, out, err = run(capsys, *argv)
        assert code == 2 and "without its SHA-256" in err, err
        assert "hunter2" not in out + err
    info["data_sha256"] = "0" * 64
    (lm_run / "run.json").write_text(json.dumps(info))
    code, out, err = run(capsys, "eval", lm_run)
    assert code == 2 and "has changed" in err and "hunter2" not in out + err


# -- the environment, checked once at start-up ---------------------------------------------
@pytest.mark.parametrize("variable,value,accepts", [
    ("TIMELAYERS_NUM_THREADS", "0", "a positive integer"),
    ("TIMELAYERS_NUM_THREADS", "-1", "a positive integer"),
    ("TIMELAYERS_NUM_THREADS", "abc", "a positive integer"),
    ("TIMELAYERS_NUM_THREADS", "1.5", "a positive integer"),
    ("TIMELAYERS_DEVICE", "GPU", "cpu"),
    ("TIMELAYERS_DATA", "/no/such/folder", "a folder"),
])
@pytest.mark.parametrize("command", [["similar", "RUN", "cat"], ["demo", "--check-only"]])
def test_a_bad_environment_variable_is_one_line_at_start_up(monkeypatch, capsys, tmp_path,
                                                            variable, value, accepts, command):
    monkeypatch.setenv(variable, value)
    with pytest.raises(SystemExit) as exc:
        main([str(tmp_path) if a == "RUN" else a for a in command])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and len(err.strip().splitlines()) == 1, err
    assert f"error: ${variable} expected {accepts}" in err and repr(value) in err


def test_the_thread_count_variable_accepts_positive_integers_only(monkeypatch):
    from timelayers.errors import OptionError
    from timelayers.threads import num_threads_from_environment

    for good, n in [("3", 3), (" 12 ", 12), ("", None)]:
        monkeypatch.setenv("TIMELAYERS_NUM_THREADS", good)
        assert num_threads_from_environment() == n
    for bad in ("0", "-1", "1.5", "abc", "+2", "²"):
        monkeypatch.setenv("TIMELAYERS_NUM_THREADS", bad)
        with pytest.raises(OptionError, match=r"\$TIMELAYERS_NUM_THREADS expected a positive"):
            num_threads_from_environment()


def test_every_json_written_is_valid_even_when_the_numbers_overflow(tmp_path, corpus_file,
                                                                    capsys):
    out_dir = tmp_path / "lm"
    code, out, err = run(capsys, "train", "rnnlm", "--data", corpus_file, *TINY_LM,
                         "--lr", 1e6, "--out", out_dir)
    assert code == 0, err
    assert "perplexity inf" in out
    written = sorted(out_dir.glob("*.json"))
    assert {p.name for p in written} == {"run.json", "history.json", "metrics.json"}
    for path in written:
        strict_json(path)
    metrics = strict_json(out_dir / "metrics.json")  # overflowed: null, and a note saying so
    assert metrics["perplexity"] is None and metrics["not_finite"] == {"perplexity": "inf"}


def test_write_json_writes_null_with_a_note_for_non_finite_numbers(tmp_path):
    from timelayers.serialization import write_json

    path = tmp_path / "m.json"
    write_json(path, {"a": float("inf"), "b": [1.0, float("nan")], "c": {"d": -float("inf")},
                      "e": np.float64(2.5)})
    assert strict_json(path) == {"a": None, "b": [1.0, None], "c": {"d": None}, "e": 2.5,
                                 "not_finite": {"a": "inf", "b[1]": "nan", "c.d": "-inf"}}


# -- costs named, and a first epoch restarted ---------------------------------------------
def test_generate_refuses_a_length_or_beam_beyond_reason_naming_the_limit(lm_run, tmp_path,
                                                                         capsys):
    code, out, err = run(capsys, "generate", lm_run, "--start", "the", "--length", 1_000_000_000)
    assert code == 2 and "'length' expected at most 100,000" in err and out == ""
    seq = tmp_path / "addition.txt"
    from timelayers.datasets import make_addition, write_sequence

    write_sequence(seq, make_addition(300, np.random.default_rng(0)))
    code, _, err = run(capsys, "train", "seq2seq", "--data", seq, "--epochs", 1, "--hidden", 8,
                       "--batch-size", 32, "--out", tmp_path / "s2s")
    assert code == 0, err
    code, out, err = run(capsys, "generate", tmp_path / "s2s", "1+2", "--beam", 1_000_000)
    assert code == 2 and "'beam' expected at most 1,000" in err and out == ""


def test_a_run_stopped_in_its_first_epoch_restarts_without_force(tmp_path, corpus_file, capsys):
    from timelayers.runs import recipes

    def stop(trainer, event, info):
        if event == "iteration_end":
            raise KeyboardInterrupt

    out_dir = tmp_path / "lm"
    with pytest.raises(KeyboardInterrupt):
        recipes.train("rnnlm", out_dir, data=corpus_file, progress=False, callbacks=[stop],
                      overrides=dict(epochs=1, hidden_size=8, wordvec_size=8, batch_size=2,
                                     time_size=5))
    assert sorted(p.name for p in out_dir.iterdir()) == ["run.json"]
    code, _, err = run(capsys, "train", "rnnlm", "--resume", "--out", out_dir)
    assert code == 2 and "train it again without --resume" in err
    code, _, err = run(capsys, "train", "rnnlm", "--data", corpus_file, *TINY_LM, "--out", out_dir)
    assert code == 0, err
    code, _, err = run(capsys, "train", "rnnlm", "--data", corpus_file, *TINY_LM, "--out", out_dir)
    assert code == 2 and "already holds a run" in err  # one with a checkpoint needs --force

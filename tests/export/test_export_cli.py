"""`timelayers export RUN OUT --format onnx|torch [--force]` on tiny runs trained here
(real text, real dates), and its one-line errors."""

import json
import subprocess
import sys

import numpy as np
import pytest

from timelayers.datasets import make_dates, write_sequence
from support.cli import TEXT, run

# lm_run (a tiny finished rnnlm run folder) and corpus_file come from tests/conftest.py


def test_export_onnx_of_a_run_equals_the_run(lm_run, tmp_path, capsys):
    ort = pytest.importorskip("onnxruntime", reason="onnxruntime is not installed")
    pytest.importorskip("onnx", reason="onnx is not installed")
    from timelayers.export import _load_run

    out = tmp_path / "lm.onnx"
    code, stdout, err = run(capsys, "export", lm_run, out, "--format", "onnx")
    assert code == 0, err
    assert stdout.strip() == f"wrote {out}"
    sess = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    meta = sess.get_modelmeta().custom_metadata_map
    assert json.loads(meta["timelayers.recipe"])["recipe"] == "rnnlm"
    model = _load_run(lm_run).model.eval()
    words = json.loads(meta["timelayers.vocab"])["words"]
    xs = np.array([[words.index(w) for w in "the cat sat on the mat".split()]])
    state = {i.name: np.zeros((1, i.shape[1]), np.float32) for i in sess.get_inputs()[1:]}
    logits = sess.run(None, {"ids": xs, **state})[0]
    np.testing.assert_allclose(logits, model.predict(xs), rtol=1e-5, atol=1e-6)


def test_export_torch_of_a_run(lm_run, tmp_path, capsys):
    pytest.importorskip("torch", reason="torch is not installed")
    from timelayers.export import _load_run, from_torch
    from timelayers.export.torch_modules import load_torch

    code, _, err = run(capsys, "export", lm_run, tmp_path / "lm.pt", "--format", "torch")
    assert code == 0, err
    back = from_torch(load_torch(tmp_path / "lm.pt"))
    model = _load_run(lm_run).model
    assert back.vocab == model.vocab
    for key, value in model.state_dict().items():
        np.testing.assert_array_equal(back.state_dict()[key], value)


TINY_TRANSFORMER = {
    "transformer-lm": ["--epochs", "1", "--batch-size", "4", "--time-size", "5", "--d-model",
                       "16", "--heads", "2", "--layers", "1", "--ff-size", "32", "--warmup", "3",
                       "--no-eval"],
    "transformer-seq2seq": ["--epochs", "1", "--batch-size", "32", "--d-model", "16", "--heads",
                            "2", "--encoder-layers", "1", "--decoder-layers", "1", "--ff-size",
                            "32", "--warmup", "3"],
}


@pytest.mark.parametrize("recipe", list(TINY_TRANSFORMER))
def test_export_torch_of_a_transformer_run(recipe, tmp_path, capsys):
    """The Transformers export with --format torch too: load_torch rebuilds the
    module (the sinusoidal table a buffer outside the state_dict), from_torch gives
    the run's weights back, and the module scores as the run's model."""
    torch = pytest.importorskip("torch", reason="torch is not installed")
    from timelayers.export import _load_run, from_torch
    from timelayers.export.torch_modules import load_torch

    if recipe == "transformer-lm":
        data = tmp_path / "tiny.txt"
        data.write_text(TEXT)
    else:
        data = tmp_path / "dates.txt"
        write_sequence(data, make_dates(200, np.random.default_rng(0)))
    code, _, err = run(capsys, "train", recipe, "--data", data, *TINY_TRANSFORMER[recipe],
                       "--out", tmp_path / "run")
    assert code == 0, err
    code, stdout, err = run(capsys, "export", tmp_path / "run", tmp_path / "run.pt", "--format",
                            "torch")
    assert code == 0, err
    assert stdout.strip() == f"wrote {tmp_path / 'run.pt'}"
    module = load_torch(tmp_path / "run.pt").eval()
    assert not any("position" in key for key in module.state_dict())
    model = _load_run(tmp_path / "run").model.eval()
    back = from_torch(module)
    assert back.vocab == model.vocab and back.config == model.config
    for key, value in model.state_dict().items():
        np.testing.assert_array_equal(back.state_dict()[key], value, err_msg=key)
    xs = np.random.default_rng(1).integers(0, model.config.vocab_size, (2, 5))
    if recipe == "transformer-lm":
        theirs = module(torch.from_numpy(xs))[0]
        ours = model.predict(xs)
    else:
        theirs = module(torch.from_numpy(xs), torch.from_numpy(xs[:, :4]))
        ours = model.decoder.forward(xs[:, :4], model.encoder.forward(xs))
    np.testing.assert_allclose(theirs.detach().numpy(), ours, rtol=1e-5, atol=1e-5)


def test_exported_attention_answers_dates_as_ours_with_onnx_runtime_alone(tmp_path, capsys):
    pytest.importorskip("onnxruntime", reason="onnxruntime is not installed")
    pytest.importorskip("onnx", reason="onnx is not installed")
    from timelayers.export import _load_run

    data = tmp_path / "dates.txt"
    write_sequence(data, make_dates(400, np.random.default_rng(0)))
    code, _, err = run(capsys, "train", "attention", "--data", data, "--epochs", "1",
                       "--hidden", "16", "--out", tmp_path / "att")
    assert code == 0, err
    code, _, err = run(capsys, "export", tmp_path / "att", tmp_path / "att-onnx")
    assert code == 0, err
    sys.path.insert(0, str(__import__("pathlib").Path(__file__).parents[2] / "examples"))
    try:
        import onnx_generate
    finally:
        sys.path.pop(0)
    from timelayers.runs.recipes import answer

    questions = ["JUN 17, 2013", "2/10/93", "tuesday, september 25, 1984"]
    assert onnx_generate.answer(tmp_path / "att-onnx", questions) == \
        answer(_load_run(tmp_path / "att"), questions)


@pytest.mark.parametrize("case", ["not a run", "no model", "unknown format", "exists"])
def test_bad_input_is_a_one_line_error(lm_run, tmp_path, capsys, case):
    out = tmp_path / "out.onnx"
    argv = ["export", lm_run, out]
    if case == "not a run":
        (tmp_path / "empty").mkdir()
        argv[1], message = tmp_path / "empty", "is not a run folder (no run.json)"
    elif case == "no model":
        (lm_run / "model.safetensors").unlink()
        message = "has no model.safetensors"
    elif case == "unknown format":
        argv += ["--format", "tflite"]
        message = "--format expected one of onnx, torch, got 'tflite'"
    else:
        pytest.importorskip("onnx", reason="onnx is not installed")
        out.write_bytes(b"keep")
        message = "exists (replace it with force=True, --force on the command line)"
    code, _, err = run(capsys, *argv)
    assert code == 2
    assert err.count("\n") == 1 and message in err and err.startswith("timelayers export: error:")
    if case == "exists":
        assert out.read_bytes() == b"keep"
        code, _, err = run(capsys, *argv, "--force")
        assert code == 0, err


def test_a_kind_that_cannot_be_exported_is_a_one_line_error(tmp_path, capsys, monkeypatch):
    import timelayers.export as export
    from timelayers.models.mlp import TwoLayerNet

    class FakeRun:
        model = TwoLayerNet(2, 3, 2)

    monkeypatch.setattr(export, "_load_run", lambda run_dir: FakeRun)
    (tmp_path / "run").mkdir()
    code, _, err = run(capsys, "export", tmp_path / "run", tmp_path / "x.onnx")
    assert code == 2 and err.count("\n") == 1
    assert "got a TwoLayerNet (it cannot be exported)" in err


def test_subprocess_error_has_no_traceback(tmp_path):
    res = subprocess.run([sys.executable, "-m", "timelayers", "export", str(tmp_path / "nope"),
                          str(tmp_path / "x.onnx")], capture_output=True, text=True)
    assert res.returncode == 2
    assert res.stderr.count("\n") == 1 and "does not exist" in res.stderr
    assert "Traceback" not in res.stderr

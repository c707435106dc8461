"""Learning curves and attention maps as PNG files; matplotlib imported lazily."""

import json
import subprocess
import sys

import numpy as np
import pytest

from timelayers.plot import plot_attention, plot_history

pytest.importorskip("matplotlib")

PNG = b"\x89PNG\r\n\x1a\n"


def history():
    return {"epoch": [1, 2, 3], "iteration": [10, 20, 30], "loss": [2.0, 1.5, 1.2],
            "perplexity": [7.4, 4.5, 3.3], "lr": [1.0, 1.0, 0.25], "seconds": [1, 1, 1],
            "skipped": [0, 0, 0], "val_perplexity": [8.0, None, 5.0],
            "val_accuracy": [0.1, 0.3, 0.5],
            "interval_epoch": [0.5, 1.0, 1.5, 2.0, 2.5, 3.0],
            "interval_loss": [2.2, 1.9, 1.6, 1.4, 1.3, 1.1]}


def test_plot_history_png(tmp_path):
    out = plot_history(history(), tmp_path / "curves" / "h.png", title="tiny")
    assert out.read_bytes().startswith(PNG)


def test_plot_history_from_json_file(tmp_path):
    path = tmp_path / "h.json"
    path.write_text(json.dumps({"epoch": [1], "loss": [1.0], "lr": [0.1]}))
    assert plot_history(path, tmp_path / "h.png").read_bytes().startswith(PNG)
    with pytest.raises(ValueError, match="no epochs"):
        plot_history({"epoch": []}, tmp_path / "e.png")


def test_trainer_plot(tmp_path):
    from timelayers.optim import SGD
    from timelayers.training import Trainer

    class Const:
        params, grads = [np.zeros(1)], [np.zeros(1)]

        def forward(self, x, t):
            return 1.0

        def backward(self, dout=1):
            pass

    trainer = Trainer(Const(), SGD(), progress=False)
    trainer.fit(np.zeros((4, 1)), np.zeros((4, 1)), max_epoch=2, batch_size=2)
    assert trainer.plot(tmp_path / "t.png").read_bytes().startswith(PNG)


def test_plot_attention_png(tmp_path):
    w = np.random.default_rng(0).dirichlet(np.ones(4), size=3)  # (Tq=3, Ta=4)
    out = plot_attention(w, list("abcd"), ["x", "y", "z"], tmp_path / "a.png")
    assert out.read_bytes().startswith(PNG)
    with pytest.raises(ValueError, match="3 y_labels"):
        plot_attention(w, list("abc"), ["x", "y", "z"], tmp_path / "b.png")
    with pytest.raises(ValueError, match=r"\(Tq, Ta\)"):
        plot_attention(w[0], list("abcd"), ["x"], tmp_path / "b.png")


def test_missing_matplotlib_message(tmp_path, monkeypatch):
    for name in list(sys.modules):
        if name == "matplotlib" or name.startswith("matplotlib."):
            monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import now fails
    with pytest.raises(ImportError, match=r"pip install 'timelayers\[plot\]'"):
        plot_history(history(), tmp_path / "h.png")
    with pytest.raises(ImportError, match="matplotlib"):
        plot_attention(np.eye(2), ["a", "b"], ["c", "d"], tmp_path / "a.png")


def test_importing_the_library_does_not_import_matplotlib():
    code = ("import sys, timelayers, timelayers.plot, timelayers.training, timelayers.metrics; "
            "print('matplotlib' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False"]

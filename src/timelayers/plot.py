"""Learning curves and attention maps as PNG files.

matplotlib is imported only inside these functions (it is the optional extra
``timelayers[plot]``), and only its object-oriented API is used to write files:
no pyplot, no global backend change, no window. Only :func:`plot_history` without a
path (the book's ``trainer.plot()``) goes through pyplot, to show the figure.
"""

from __future__ import annotations

import io
import json
import math
from pathlib import Path

import numpy as np

from .backend import to_cpu
from .serialization import atomic_write

__all__ = ["plot_history", "plot_attention"]


def _matplotlib():
    """matplotlib's figure, Agg canvas and pyplot modules (imported on first use:
    plotting is an optional extra)."""
    try:
        import matplotlib.backends.backend_agg as agg
        import matplotlib.figure as figure
        import matplotlib.pyplot as pyplot
    except ImportError as exc:
        raise ImportError("plotting needs matplotlib, which is not installed: "
                          "pip install 'timelayers[plot]'") from exc
    return figure, agg, pyplot


def _figure(figsize, shown=False):
    figure, agg, pyplot = _matplotlib()
    if shown:  # a figure pyplot manages, so that show() draws it
        return pyplot.figure(figsize=figsize)
    fig = figure.Figure(figsize=figsize)
    agg.FigureCanvasAgg(fig)
    return fig


def _save(fig, path):
    """Render ``fig`` to PNG bytes, then write them with :func:`atomic_write` (a link
    at ``path`` is replaced, never followed)."""
    path = Path(path)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    atomic_write(path, buffer.getvalue())
    return path


def _series(history, key):
    values = history.get(key) or []
    return [math.nan if v is None else float(v) for v in values]


def plot_history(history, path=None, title=None, ylim=None):
    """Draw a training history (a trainer's ``history`` dict, or the path of a JSON
    file written by ``save_history``) to a PNG file, or show it (``path`` None).

    Panels: the loss (per epoch, and the running loss recorded every
    ``eval_interval`` iterations when present, ``"interval_loss"`` against
    ``"interval_epoch"``); the perplexities (keys containing ``"perplexity"``);
    the accuracies (keys containing ``"accuracy"``); the learning rate when it
    changed. Other loss-like eval keys (containing ``"loss"``) join the loss panel.

    Parameters
    ----------
    history : dict of lists, or str / Path of a JSON file
    path : str or Path, optional
        Where the PNG is written; None: shown with ``matplotlib.pyplot.show()``.
    title : str, optional
    ylim : (bottom, top), optional
        Limits of the loss axis.

    Returns
    -------
    pathlib.Path, or the matplotlib Figure when shown
    """
    if isinstance(history, (str, Path)):
        history = json.loads(Path(history).read_text(encoding="utf-8"))
    epochs = _series(history, "epoch")
    if not epochs:
        raise ValueError("plot_history: the history has no epochs to plot")
    keys = [k for k in history if isinstance(history[k], list) and len(history[k]) == len(epochs)]
    loss_keys = [k for k in keys if "loss" in k and not k.startswith("interval")]
    ppl_keys = [k for k in keys if "perplexity" in k]
    acc_keys = [k for k in keys if "accuracy" in k]
    lrs = _series(history, "lr")
    panels = [("loss", loss_keys)]
    if ppl_keys:
        panels.append(("perplexity", ppl_keys))
    if acc_keys:
        panels.append(("accuracy", acc_keys))
    if lrs and len(set(lrs)) > 1:
        panels.append(("learning rate", ["lr"]))
    fig = _figure((4.5 * len(panels), 3.6), shown=path is None)
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, (label, names) in zip(axes, panels):
        if label == "loss" and history.get("interval_loss"):
            ax.plot(_series(history, "interval_epoch"), _series(history, "interval_loss"),
                    color="0.7", linewidth=1, label="loss (running)")
        for k in names:
            ax.plot(epochs, _series(history, k), marker="o", markersize=3, label=k)
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        if label == "learning rate":
            ax.set_yscale("log")
        if label == "perplexity":
            values = [v for k in names for v in _series(history, k) if math.isfinite(v)]
            if values and max(values) / max(min(values), 1e-12) > 20:
                ax.set_yscale("log")
        if label == "loss" and ylim is not None:
            ax.set_ylim(*ylim)
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    if title:
        fig.suptitle(title)
    if path is None:
        _matplotlib()[2].show()
        return fig
    return _save(fig, path)


def plot_attention(weights, x_labels, y_labels, path, title=None):
    """Draw an attention map to a PNG file.

    Parameters
    ----------
    weights : array, shape (Tq, Ta)
        Row ``i`` holds the attention of output step ``i`` over the ``Ta`` input
        positions (rows usually sum to 1).
    x_labels : sequence of str, length Ta
        The input tokens (columns).
    y_labels : sequence of str, length Tq
        The output tokens (rows).
    path : str or Path
    title : str, optional

    Returns
    -------
    pathlib.Path
    """
    w = np.asarray(to_cpu(weights), dtype=np.float64)
    if w.ndim != 2:
        raise ValueError(f"plot_attention: argument 'weights' expected shape (Tq, Ta), got "
                         f"{tuple(w.shape)}")
    Tq, Ta = w.shape
    if len(x_labels) != Ta or len(y_labels) != Tq:
        raise ValueError(f"plot_attention: weights have shape ({Tq}, {Ta}); got {len(x_labels)} "
                         f"x_labels and {len(y_labels)} y_labels")
    fig = _figure((max(3.0, 0.4 * Ta + 1.5), max(3.0, 0.4 * Tq + 1.0)))
    ax = fig.add_subplot(1, 1, 1)
    image = ax.imshow(w, cmap="Greys", vmin=0.0, vmax=max(1.0, float(w.max()) if w.size else 1.0),
                      aspect="auto")
    ax.set_xticks(range(Ta))
    ax.set_xticklabels([str(s) for s in x_labels])
    ax.set_yticks(range(Tq))
    ax.set_yticklabels([str(s) for s in y_labels])
    ax.xaxis.tick_top()
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    if title:
        ax.set_title(title, pad=20)
    return _save(fig, path)

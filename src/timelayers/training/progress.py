"""Progress display, as trainer callbacks: a tqdm bar per epoch on a terminal
(``tqdm.auto``'s widget in a Jupyter notebook, when ipywidgets is installed), the
book's lines otherwise (a script whose stderr goes to a pipe or a file, a notebook
without widgets).

Both show the running loss at every interval of iterations (``eval_interval``:
the loss is read from the device only there) and the epoch's record at its end.
The lines go to the logger ``"timelayers"`` (level INFO) when logging is set up to
show them (a handler on it or above it, INFO enabled: the command line sets one),
and straight to ``sys.stderr`` otherwise, so that a plain script shows them too;
the library never configures the root logger. ``progress=False`` (or 0) is silent.
"""

from __future__ import annotations

import logging
import sys

from tqdm import tqdm

__all__ = ["ProgressBar", "LogLines", "progress_callback", "record_text", "show_line"]

logger = logging.getLogger("timelayers")


def progress_callback(progress):
    """The display that a trainer's ``progress`` option asks for: ``True`` (or 1) a
    :class:`ProgressBar` when stderr is a terminal or a Jupyter kernel with
    ipywidgets, else :class:`LogLines`; ``"tqdm"`` or ``"log"`` that one; ``False``,
    0 or None nothing (None)."""
    if progress is None or (not isinstance(progress, str) and not progress):
        return None
    if progress == "tqdm":
        return ProgressBar()
    if progress == "log":
        return LogLines()
    try:
        tty = sys.stderr is not None and sys.stderr.isatty()
    except (AttributeError, ValueError):
        tty = False
    if tty:
        return ProgressBar()
    if _in_notebook_with_widgets():
        return ProgressBar(notebook=True)
    return LogLines()


def _in_notebook_with_widgets() -> bool:
    """Whether this runs in a Jupyter kernel where ``tqdm.auto`` draws a widget."""
    if "ipykernel" not in sys.modules:
        return False
    try:
        import ipywidgets  # noqa: F401  (tqdm.auto falls back to text without it)
    except ImportError:
        return False
    return True


def show_line(text: str) -> None:
    """Show one progress line: through the ``"timelayers"`` logger at INFO when
    logging would show it, else on ``sys.stderr`` (looked up at each call, so that
    a notebook's or a test's replacement of it gets the line)."""
    if logger.isEnabledFor(logging.INFO) and logger.hasHandlers():
        logger.info("%s", text)
        return
    stream = sys.stderr
    if stream is not None:
        stream.write(text + "\n")
        stream.flush()


def metrics_text(metrics: dict) -> str:
    """``"loss 4.1234 | perplexity 61.80"``: the loss to 4 decimals, the rest to 2."""
    return " | ".join(f"{k} {v:.4f}" if k == "loss" else f"{k} {v:.2f}"
                      for k, v in metrics.items())


def record_text(record: dict, seconds=True) -> str:
    """An epoch's record in one line: ``"loss 1.234, lr 0.1, val_loss 1.5, 3.2s"``
    (the counters left out, ``skipped`` only when not 0)."""
    parts = []
    for k, v in record.items():
        if k in ("epoch", "iteration") or (k == "skipped" and not v):
            continue
        if k == "seconds":
            if seconds:
                parts.append(f"{v:.1f}s")
        elif isinstance(v, float):
            parts.append(f"{k} {v:.4g}")
        else:
            parts.append(f"{k} {v}")
    return ", ".join(parts)


class ProgressBar:
    """Callback: a tqdm bar per epoch on stderr, its postfix the running loss of
    the last interval and, when the epoch ends, the epoch's record."""

    def __init__(self, notebook=False):
        self.max_epoch = None
        self.bar = None
        self.notebook = notebook

    def __call__(self, trainer, event, info):
        if event == "fit_start":
            self.max_epoch = info["max_epoch"]
        elif event == "epoch_start":
            if self.notebook:
                from tqdm.auto import tqdm as bar   # loads the notebook's widgets
            else:
                bar = tqdm
            self.bar = bar(total=info["max_iters"], desc=f"epoch {info['epoch']}/{self.max_epoch}",
                            file=sys.stderr, unit="it", dynamic_ncols=True, leave=True)
        elif event == "iteration_end":
            self.bar.update(1)
        elif event == "interval_end":
            self.bar.set_postfix_str(metrics_text(info["metrics"]), refresh=False)
        elif event == "epoch_end":
            self.bar.set_postfix_str(record_text(info, seconds=False), refresh=False)
            self.close()

    def close(self):
        """End the current bar (the trainer calls it when an epoch fails)."""
        if self.bar is not None:
            self.bar.close()
            self.bar = None


class LogLines:
    """Callback: the book's line per interval (``| epoch 1 | iter 20 / 1327 | time
    3[s] | loss 6.1234``) and one per epoch (``epoch 1/4: loss 5.2, lr 20, 95.1s``),
    shown by :func:`show_line`."""

    def __init__(self):
        self.max_epoch = None

    def __call__(self, trainer, event, info):
        if event == "fit_start":
            self.max_epoch = info["max_epoch"]
        elif event == "interval_end":
            show_line(f"| epoch {info['epoch']} | iter {info['iteration']} / "
                      f"{info['max_iters']} | time {int(info['seconds'])}[s] | "
                      f"{metrics_text(info['metrics'])}")
        elif event == "epoch_end":
            show_line(f"epoch {info['epoch']}/{self.max_epoch}: {record_text(info)}")

    def close(self):
        """Nothing to end."""

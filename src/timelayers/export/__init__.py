"""Models that leave the library: ONNX files and PyTorch modules.

- :func:`to_onnx` writes a model as ONNX graph(s) (:mod:`.onnx_graphs`, needs the
  ``onnx`` package: ``pip install 'timelayers[onnx]'``);
- :func:`to_torch` gives an ``nn.Module`` holding the model's weights, built from
  ``nn.Embedding``, ``nn.LSTM``/``nn.GRU``/``nn.RNN``, ``nn.Linear`` and, for the
  Transformers, ``nn.TransformerEncoderLayer``/``nn.TransformerDecoderLayer`` and
  ``nn.LayerNorm``, and :func:`from_torch` reads such a module's weights back into
  a model (:mod:`.torch_modules`, needs PyTorch); both take every model of
  :data:`EXPORT_KINDS`;
- :func:`export_run` does either for a run folder (the ``timelayers export``
  command).

The gate orders of the three libraries, and how they are converted, are in
:mod:`._layouts`. Nothing here imports ``onnx`` or ``torch`` until it is used (the only imports made
inside functions).
"""

from __future__ import annotations

from pathlib import Path

from ..errors import OptionError
from ..runs.recipes import load_run
from ..serialization import atomic_write
from ._layouts import EXPORT_KINDS, kind_of

__all__ = ["to_onnx", "to_torch", "from_torch", "export_run", "FORMATS", "EXPORT_KINDS",
           "onnx_paths"]

FORMATS = ("onnx", "torch")

_TWO_GRAPHS = ("seq2seq", "transformer-seq2seq")


_INSTALL = {"onnx": "pip install 'timelayers[onnx]'", "torch": "pip install torch"}


def _need(module, what):
    try:
        return __import__(module)
    except ImportError:
        raise OptionError(f"{what} needs the {module!r} package, which is not installed "
                          f"({_INSTALL[module]})") from None


def onnx_paths(model, path) -> dict:
    """Where :func:`to_onnx` writes: ``{"model": path}``, or for the seq2seq models
    (two graphs) ``{"encoder": path/encoder.onnx, "decoder": path/decoder.onnx}``
    with ``path`` a folder."""
    path = Path(path)
    if kind_of(model, "to_onnx") in _TWO_GRAPHS:
        return {"encoder": path / "encoder.onnx", "decoder": path / "decoder.onnx"}
    return {"model": path}


def _check_out(path, force, where):
    path = Path(path)
    if not str(path):
        raise OptionError(f"{where}: argument 'path' expected a path, got ''")
    if path.exists() and not force:
        raise FileExistsError(f"{where}: output {str(path)!r} exists (replace it with force=True, "
                              f"--force on the command line)")


def to_onnx(model, path, *, recipe=None, force=False) -> list:
    """Write ``model`` as ONNX (float32, opset 17, checked with
    ``onnx.checker.check_model(full_check=True)``) and return the paths written.

    Parameters
    ----------
    model : Model
        One of :data:`EXPORT_KINDS` (its weights are read, not changed).
    path : str or Path
        The ``.onnx`` file; for Seq2seq, PeekySeq2seq, AttentionSeq2seq and
        TransformerSeq2seq a folder that gets ``encoder.onnx`` and ``decoder.onnx``
        (see :mod:`.onnx_graphs` for the graphs' inputs and outputs).
    recipe : dict, optional
        What to record as the recipe in the files' metadata (a run's ``run.json``).
    force : bool
        Replace an existing file or folder's graphs; without it an existing
        ``path`` is refused.
    """
    _need("onnx", "to_onnx")
    from .onnx_graphs import build_graphs

    paths = onnx_paths(model, path)
    _check_out(path, force, "to_onnx")
    protos = build_graphs(model, recipe)
    if len(paths) > 1:
        if Path(path).exists() and not Path(path).is_dir():
            raise FileExistsError(f"to_onnx: output {str(path)!r} is a file; a "
                                  f"{type(model).__name__} is written as a folder of two graphs")
        Path(path).mkdir(parents=True, exist_ok=True)
    elif Path(path).is_dir():
        raise IsADirectoryError(f"to_onnx: output {str(path)!r} is a folder, expected a file "
                                f"path for a {type(model).__name__}")
    for role, p in paths.items():
        atomic_write(p, protos[role].SerializeToString())
    return list(paths.values())


def to_torch(model):
    """A PyTorch ``nn.Module`` computing what ``model`` computes, with its weights
    (copied; see :mod:`.torch_modules`): any model of :data:`EXPORT_KINDS`, the
    recurrent ones, word2vec's and the Transformers."""
    _need("torch", "to_torch")
    return _torch_modules().to_torch(model)


def from_torch(module, model=None):
    """The weights of ``module`` (from :func:`to_torch`, possibly trained further in
    PyTorch) read back into a timelayers model: into ``model`` when given (which
    must match), else into a new model built from ``module.config``."""
    _need("torch", "from_torch")
    return _torch_modules().from_torch(module, model)


def export_run(run_dir, out, fmt="onnx", force=False) -> list:
    """Export a run folder's model: ``fmt="onnx"`` writes :func:`to_onnx`'s files
    (the recipe and options from ``run.json`` in their metadata); ``fmt="torch"``
    writes ``torch.save`` of :func:`to_torch`'s module's ``state_dict`` with its
    config. Returns the paths written."""
    if fmt not in FORMATS:
        raise OptionError(f"--format expected one of {', '.join(FORMATS)}, got {fmt!r}")
    run = _load_run(run_dir)
    kind_of(run.model, "export")
    recipe = {"recipe": run.recipe.name, "options": run.options, "seed": run.seed,
              "data": run.data, "data_sha256": run.data_sha256,
              "shape": list(run.shape) if run.shape else None}
    if fmt == "onnx":
        return to_onnx(run.model, out, recipe=recipe, force=force)
    _need("torch", "export --format torch")
    _check_out(out, force, "export")
    return [_torch_modules().save_torch(run.model, out, recipe)]


def _load_run(run_dir):
    return load_run(run_dir)


def _torch_modules():
    """:mod:`.torch_modules`, which imports torch (an optional extra): loaded on first use."""
    from . import torch_modules
    return torch_modules

"""The recurrent weights in other libraries' layouts, and what a model kind exports to.

The library keeps the book's layout: gates stacked along the columns of ``Wx (D,
G*H)``, ``Wh (H, G*H)``, ``b (G*H,)``, in the order f, g, i, o (LSTM) and z, r, h~
(GRU), every pre-activation ``x @ Wx + h @ Wh + b``. ONNX and PyTorch keep the
transposes, ``(G*H, D)``, in their own gate orders:

=========  ===============  =============  ============================================
cell       the book         ONNX           PyTorch
=========  ===============  =============  ============================================
LSTM       f, g, i, o       i, o, f, c     i, f, g, o
GRU        z, r, h~         z, r, h        r, z, n
=========  ===============  =============  ============================================

ONNX's and PyTorch's GRU update ``h = (1 - z') * h~ + z' * h_prev``: their ``z'`` is
``1 - z`` here, which is ``sigmoid`` of the negated pre-activation, so the update
gate's weights and biases change sign (exact in floating point). The book's GRU
(reset gate before the hidden product) is ONNX's ``linear_before_reset=0``; the
reset-after form is ``linear_before_reset=1`` and PyTorch's ``nn.GRU``.
"""

from __future__ import annotations

import numpy as np

from ..backend import to_cpu
from ..errors import OptionError

__all__ = ["ONNX_ORDER", "TORCH_ORDER", "reorder", "restore", "cell_of", "layer_arrays",
           "EXPORT_KINDS", "kind_of"]

# cell -> (book's gate blocks in the target's order, sign of each target block)
ONNX_ORDER = {"lstm": ((2, 3, 0, 1), (1, 1, 1, 1)), "gru": ((0, 1, 2), (-1, 1, 1)),
              "rnn": ((0,), (1,))}
TORCH_ORDER = {"lstm": ((2, 0, 1, 3), (1, 1, 1, 1)), "gru": ((1, 0, 2), (1, -1, 1)),
               "rnn": ((0,), (1,))}


def reorder(a, H, order):
    """The gate blocks (``H`` wide, along the last axis) of ``a`` put in another
    library's order: ``order = (blocks, signs)``, block ``k`` of the result being
    ``signs[k] * a[..., blocks[k]]``."""
    blocks, signs = order
    return np.concatenate([s * a[..., k * H:(k + 1) * H] if s != 1 else a[..., k * H:(k + 1) * H]
                           for k, s in zip(blocks, signs)], axis=-1)


def restore(a, H, order):
    """The inverse of :func:`reorder`: the book's order back from another library's."""
    blocks, signs = order
    out = [None] * len(blocks)
    for k, (b, s) in enumerate(zip(blocks, signs)):
        part = a[..., k * H:(k + 1) * H]
        out[b] = -part if s != 1 else part
    return np.concatenate(out, axis=-1)


def cell_of(layer) -> str:
    """``"lstm"``, ``"gru"``, ``"gru-reset-after"`` or ``"rnn"`` for a time layer."""
    return layer.cell.name


def layer_arrays(layer, dtype=np.float32):
    """A layer's params as NumPy arrays of ``dtype`` (copied from a GPU if needed)."""
    return [np.asarray(to_cpu(p), dtype=dtype) for p in layer.params]


EXPORT_KINDS = {"SimpleRnnlm": "lm", "Rnnlm": "lm", "BetterRnnlm": "lm",
                "TransformerLM": "transformer-lm", "CBOW": "word2vec", "SkipGram": "word2vec",
                "Seq2seq": "seq2seq", "PeekySeq2seq": "seq2seq",
                "AttentionSeq2seq": "seq2seq", "TransformerSeq2seq": "transformer-seq2seq"}
"""The model classes that export, and the kind of graph(s) each becomes."""


def kind_of(model, where="export") -> str:
    """The export kind of ``model``, or a one-line :class:`OptionError`."""
    name = type(model).__name__
    if name not in EXPORT_KINDS:
        raise OptionError(f"{where}: argument 'model' expected one of "
                          f"{', '.join(EXPORT_KINDS)}, got a {name} (it cannot be exported)")
    return EXPORT_KINDS[name]

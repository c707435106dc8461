"""The library's models as ONNX graphs, written with the ``onnx`` package's helper API.

Every graph is float32, opset :data:`OPSET`, and passes
``onnx.checker.check_model(full_check=True)``. Sizes that vary (``batch``,
``time``, the question's length) are symbolic dimensions. What each kind becomes:

``lm`` (Rnnlm, SimpleRnnlm, BetterRnnlm)
    one graph. Inputs ``ids`` int64 ``(batch, time)`` and the carried state, named as
    :meth:`Model.get_state` names it (``rnn.h``, ``rnn.c``, or ``rnns.0.h`` ...),
    each ``(batch, H)``; outputs ``logits (batch, time, V)`` and the next state
    (``rnn.h.next`` ...). Feeding the next state to the next window gives what one
    long window gives. Each recurrent layer is one ONNX ``LSTM``, ``GRU`` or ``RNN``
    op (gates converted, see :mod:`._layouts`); dropout is left out (inference).
``transformer-lm`` (TransformerLM)
    one graph, ``ids (batch, time) -> logits (batch, time, V)``, positions from 0:
    the model's evaluation context (the last ``max_len`` ids) is the caller's to
    keep (concatenate the new ids to it and keep the last ``time`` logits).
``word2vec`` (CBOW, SkipGram)
    one graph, ``ids (batch,) -> vectors (batch, hidden)``: the input embedding
    (the word vectors).
``seq2seq`` (Seq2seq, PeekySeq2seq, AttentionSeq2seq)
    two graphs, ``encoder`` and ``decoder`` (one step). The encoder takes
    ``questions (batch, question)`` and gives ``h``, ``c`` (zeros), and
    ``enc_h (batch, H)`` (peeky) or ``enc_hs (batch, question, H)`` (attention).
    The decoder step takes ``ids (batch,)``, ``h``, ``c`` (and ``enc_h`` or
    ``enc_hs``) and gives ``logits (batch, V)``, ``h.next``, ``c.next`` (and
    ``attention (batch, question)``). A greedy loop: run the encoder, then the
    decoder from the start symbol, each step feeding back the argmax and the state.
``transformer-seq2seq`` (TransformerSeq2seq)
    ``encoder``: ``questions -> memory (batch, question, D)``; ``decoder``: ``prefix
    (batch, steps)`` int64 and ``memory`` -> ``logits (batch, V)`` of the last step
    (the whole prefix is read again at each step, as the model's own decoder does).

The model's class, config, vocabulary, recipe and the graph's role are in the
file's metadata (``metadata_props``: ``timelayers.model``, ``timelayers.config``,
``timelayers.vocab``, ``timelayers.recipe``, ``timelayers.graph``, JSON strings).
"""

from __future__ import annotations

import json
import math

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from .._version import __version__
from ..layers.positional import sinusoidal_table
from ..models.base import config_dict
from ._layouts import ONNX_ORDER, cell_of, kind_of, layer_arrays, reorder

__all__ = ["OPSET", "build_graphs", "GraphBuilder"]

OPSET = 17
_F = TensorProto.FLOAT
_I = TensorProto.INT64


class GraphBuilder:
    """Nodes, initializers, inputs and outputs of one graph, with unique names for
    the intermediate values (``/base/k``: never a graph input's name)."""

    def __init__(self, name):
        self.name = name
        self.nodes, self.initializers, self.inputs, self.outputs = [], [], [], []
        self._counts = {}
        self._consts = {}

    def fresh(self, base):
        k = self._counts.get(base, 0)
        self._counts[base] = k + 1
        return f"/{base}/{k}"

    def const(self, base, array, dtype=np.float32):
        """An initializer holding ``array``; scalar and small int constants are shared."""
        array = np.asarray(array, dtype=dtype)
        key = None
        if array.size <= 8:
            key = (array.dtype.str, array.shape, array.tobytes())
            if key in self._consts:
                return self._consts[key]
        name = self.fresh(base)
        self.initializers.append(numpy_helper.from_array(array, name))
        if key is not None:
            self._consts[key] = name
        return name

    def ints(self, *values):
        return self.const("ints", np.array(values, dtype=np.int64), np.int64)

    def op(self, op_type, inputs, outputs=1, base=None, **attrs):
        names = [self.fresh(base or op_type.lower()) for _ in range(outputs)]
        self.nodes.append(helper.make_node(op_type, list(inputs), names,
                                           name=self.fresh("node_" + op_type), **attrs))
        return names[0] if outputs == 1 else names

    def input(self, name, elem_type, shape):
        self.inputs.append(helper.make_tensor_value_info(name, elem_type, shape))
        return name

    def output(self, value, name, elem_type, shape):
        self.nodes.append(helper.make_node("Identity", [value], [name],
                                           name=self.fresh("node_output")))
        self.outputs.append(helper.make_tensor_value_info(name, elem_type, shape))

    def model(self, doc, metadata):
        graph = helper.make_graph(self.nodes, self.name, self.inputs, self.outputs,
                                  self.initializers, doc_string=doc)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                                  producer_name="timelayers", producer_version=__version__,
                                  doc_string=doc)
        model.ir_version = 8  # opset 17's; every runtime that reads opset 17 reads it
        helper.set_model_props(model, metadata)
        return model

    # -- small compositions ----------------------------------------------------------
    def linear(self, x, W, b, base):
        """``x @ W + b`` over the last axis of ``x``."""
        y = self.op("MatMul", [x, self.const(base + ".W", W)])
        return self.op("Add", [y, self.const(base + ".b", b)])

    def unsqueeze(self, x, *axes):
        return self.op("Unsqueeze", [x, self.ints(*axes)])

    def squeeze(self, x, *axes):
        return self.op("Squeeze", [x, self.ints(*axes)])


# --------------------------------------------------------------------------- recurrent

def recurrent(g, layer, x_tm, h0=None, c0=None, base="rnn"):
    """One recurrent time layer over the time-major ``x_tm (time, batch, D)`` from
    ``h0``, ``c0`` ``(batch, H)`` (zeros when None): returns ``ys (time, batch, H)``,
    the last ``h`` and (LSTM) ``c``, each ``(batch, H)``."""
    cell = cell_of(layer)
    params = layer_arrays(layer)
    Wx, Wh, b = params[:3]
    H = Wh.shape[0]
    order = ONNX_ORDER[cell.removesuffix("-reset-after")]
    W = reorder(Wx, H, order).T[None]                    # (1, G*H, D)
    R = reorder(Wh, H, order).T[None]                    # (1, G*H, H)
    Rb = reorder(params[3], H, order) if cell == "gru-reset-after" else np.zeros_like(b)
    B = np.concatenate([reorder(b, H, order), Rb])[None]  # (1, 2*G*H)
    inputs = [x_tm, g.const(base + ".W", W), g.const(base + ".R", R), g.const(base + ".B", B),
              "", g.unsqueeze(h0, 0) if h0 is not None else ""]
    attrs = {"hidden_size": H}
    if cell == "lstm":
        op, n_out = "LSTM", 3
        inputs.append(g.unsqueeze(c0, 0) if c0 is not None else "")
    elif cell == "rnn":
        op, n_out = "RNN", 2
        attrs["activations"] = ["Tanh"]
    else:
        op, n_out = "GRU", 2
        attrs["linear_before_reset"] = int(cell == "gru-reset-after")
    while inputs and inputs[-1] == "":
        inputs.pop()
    outs = g.op(op, inputs, n_out, base=base, **attrs)
    ys = g.squeeze(outs[0], 1)                           # (time, 1, batch, H) -> (time, batch, H)
    last = [g.squeeze(o, 0) for o in outs[1:]]
    return ys, last[0], (last[1] if cell == "lstm" else None)


def _embed(g, W, ids, base):
    return g.op("Gather", [g.const(base, W), ids])


def _lm_graph(model):
    """Rnnlm / SimpleRnnlm / BetterRnnlm."""
    g = GraphBuilder(type(model).__name__)
    ids = g.input("ids", _I, ["batch", "time"])
    rnns = [("rnn", model.rnn)] if hasattr(model, "rnn") else \
        [(f"rnns.{i}", r) for i, r in enumerate(model.rnns)]
    (E,) = layer_arrays(model.embed)
    E_name = g.const("embed.W", E)
    x = g.op("Transpose", [g.op("Gather", [E_name, ids])], perm=[1, 0, 2])  # (time, batch, D)
    for name, layer in rnns:
        H = layer.hidden_size
        h0 = g.input(f"{name}.h", _F, ["batch", H])
        c0 = g.input(f"{name}.c", _F, ["batch", H]) if cell_of(layer) == "lstm" else None
        x, h, c = recurrent(g, layer, x, h0, c0, base=name)
        g.output(h, f"{name}.h.next", _F, ["batch", H])
        if c is not None:
            g.output(c, f"{name}.c.next", _F, ["batch", H])
    x = g.op("Transpose", [x], perm=[1, 0, 2])          # (batch, time, H)
    W, bias = layer_arrays(model.affine)
    if getattr(model, "_ties", None):                    # BetterRnnlm: W is embed.W.T
        W_name = g.op("Transpose", [E_name], perm=[1, 0])
        y = g.op("Add", [g.op("MatMul", [x, W_name]), g.const("affine.b", bias)])
    else:
        y = g.linear(x, W, bias, "affine")
    g.output(y, "logits", _F, ["batch", "time", W.shape[1]])
    # outputs in a fixed order: logits first, then the states
    g.outputs.insert(0, g.outputs.pop())
    return g


def _word2vec_graph(model):
    g = GraphBuilder(type(model).__name__)
    ids = g.input("ids", _I, ["batch"])
    (W,) = layer_arrays(model.in_layer)
    g.output(_embed(g, W, ids, "in_layer.W"), "vectors", _F, ["batch", W.shape[1]])
    return g


# --------------------------------------------------------------------------- seq2seq

def _zeros_like(g, x):
    return g.op("ConstantOfShape", [g.op("Shape", [x])],
                value=helper.make_tensor("zero", _F, [1], [0.0]))


def _seq2seq_graphs(model):
    name = type(model).__name__
    attention = name == "AttentionSeq2seq"
    peeky = name == "PeekySeq2seq"
    enc, dec = model.encoder, model.decoder
    H = enc.lstm.hidden_size

    e = GraphBuilder(name + "Encoder")
    questions = e.input("questions", _I, ["batch", "question"])
    (E,) = layer_arrays(enc.embed)
    x = e.op("Transpose", [_embed(e, E, questions, "encoder.embed.W")], perm=[1, 0, 2])
    ys, h, _ = recurrent(e, enc.lstm, x, base="encoder.lstm")
    e.output(h, "h", _F, ["batch", H])
    e.output(_zeros_like(e, h), "c", _F, ["batch", H])
    if peeky:
        e.output(h, "enc_h", _F, ["batch", H])
    if attention:
        e.output(e.op("Transpose", [ys], perm=[1, 0, 2]), "enc_hs", _F,
                 ["batch", "question", H])

    d = GraphBuilder(name + "DecoderStep")
    ids = d.input("ids", _I, ["batch"])
    h0 = d.input("h", _F, ["batch", H])
    c0 = d.input("c", _F, ["batch", H])
    (E,) = layer_arrays(dec.embed)
    x = _embed(d, E, ids, "decoder.embed.W")                       # (batch, D)
    if peeky:
        enc_h = d.input("enc_h", _F, ["batch", H])
        x = d.op("Concat", [x, enc_h], axis=1)
    if attention:
        enc_hs = d.input("enc_hs", _F, ["batch", "question", H])
    _, h, c = recurrent(d, dec.lstm, d.unsqueeze(x, 0), h0, c0, base="decoder.lstm")
    W, bias = layer_arrays(dec.affine)
    if attention:
        q = h
        if dec.attention.params:                                   # score="general"
            (Wa,) = layer_arrays(dec.attention)
            q = d.op("MatMul", [h, d.const("decoder.attention.W", Wa)])
        s = d.squeeze(d.op("MatMul", [enc_hs, d.unsqueeze(q, 2)]), 2)      # (batch, question)
        a = d.op("Softmax", [s], axis=-1)
        context = d.squeeze(d.op("MatMul", [d.unsqueeze(a, 1), enc_hs]), 1)  # (batch, H)
        y = d.linear(d.op("Concat", [context, h], axis=1), W, bias, "decoder.affine")
    elif peeky:
        y = d.linear(d.op("Concat", [h, enc_h], axis=1), W, bias, "decoder.affine")
    else:
        y = d.linear(h, W, bias, "decoder.affine")
    d.output(y, "logits", _F, ["batch", W.shape[1]])
    d.output(h, "h.next", _F, ["batch", H])
    d.output(c, "c.next", _F, ["batch", H])
    if attention:
        d.output(a, "attention", _F, ["batch", "question"])
    return {"encoder": e, "decoder": d}


# --------------------------------------------------------------------------- transformers

def _attention(g, layer, x, memory, base, mask=None):
    """Multi-head attention of :class:`~timelayers.layers.MultiHeadAttention`:
    queries from ``x``, keys and values from ``memory`` (``x`` when None);
    ``mask`` (Tq, Tk) of 0 and -inf added to the scores."""
    Wq, bq, Wk, bk, Wv, bv, Wo, bo = layer_arrays(layer)
    D = Wq.shape[0]
    heads = layer.num_heads
    dh = D // heads
    m = x if memory is None else memory
    scale = np.float32(1.0 / math.sqrt(dh))
    q = g.op("Mul", [g.linear(x, Wq, bq, base + ".q"), g.const("scale", scale)])
    k = g.linear(m, Wk, bk, base + ".k")
    v = g.linear(m, Wv, bv, base + ".v")
    split = g.ints(0, 0, heads, dh)
    q = g.op("Transpose", [g.op("Reshape", [q, split])], perm=[0, 2, 1, 3])   # (N, h, Tq, dh)
    k = g.op("Transpose", [g.op("Reshape", [k, split])], perm=[0, 2, 3, 1])   # (N, h, dh, Tk)
    v = g.op("Transpose", [g.op("Reshape", [v, split])], perm=[0, 2, 1, 3])   # (N, h, Tk, dh)
    s = g.op("MatMul", [q, k])                                               # (N, h, Tq, Tk)
    if mask is not None:
        s = g.op("Add", [s, mask])
    a = g.op("Softmax", [s], axis=-1)
    c = g.op("Transpose", [g.op("MatMul", [a, v])], perm=[0, 2, 1, 3])        # (N, Tq, h, dh)
    c = g.op("Reshape", [c, g.ints(0, 0, D)])
    return g.linear(c, Wo, bo, base + ".o")


def _layer_norm(g, layer, x, base):
    gamma, beta = layer_arrays(layer)
    return g.op("LayerNormalization", [x, g.const(base + ".gamma", gamma),
                                      g.const(base + ".beta", beta)],
                axis=-1, epsilon=float(layer.eps))


def _activation(g, block, x):
    name = block.activation_name
    if name == "relu":
        return g.op("Relu", [x])
    if name == "gelu_tanh":   # 0.5 x (1 + tanh(sqrt(2/pi) x (1 + 0.044715 x^2)))
        x2 = g.op("Mul", [x, x])
        inner = g.op("Add", [g.const("one", 1.0), g.op("Mul", [x2, g.const("c", 0.044715)])])
        u = g.op("Mul", [g.op("Mul", [x, g.const("k", math.sqrt(2.0 / math.pi))]), inner])
        half = g.op("Mul", [g.const("half", 0.5), g.op("Add", [g.const("one", 1.0),
                                                              g.op("Tanh", [u])])])
        return g.op("Mul", [x, half])
    cdf = g.op("Erf", [g.op("Mul", [x, g.const("inv_sqrt2", 1.0 / math.sqrt(2.0))])])
    cdf = g.op("Mul", [g.op("Add", [cdf, g.const("one", 1.0)]), g.const("half", 0.5)])
    return g.op("Mul", [x, cdf])


def _block(g, block, x, base, memory=None, mask=None):
    h = g.op("Add", [x, _attention(g, block.self_attn,
                                   _layer_norm(g, block.self_attn_norm, x, base + ".norm1"),
                                   None, base + ".self_attn", mask)])
    if block.cross_attention:
        h = g.op("Add", [h, _attention(g, block.cross_attn,
                                       _layer_norm(g, block.cross_attn_norm, h, base + ".norm2"),
                                       memory, base + ".cross_attn")])
    W1, b1 = layer_arrays(block.ff1)
    W2, b2 = layer_arrays(block.ff2)
    f = _activation(g, block, g.linear(_layer_norm(g, block.ff_norm, h, base + ".norm3"),
                                       W1, b1, base + ".ff1"))
    return g.op("Add", [h, g.linear(f, W2, b2, base + ".ff2")])


def _token_input(g, token_input, ids, base):
    """``embed(ids) * sqrt(D) + positions[0:T]`` and the embedding's initializer name."""
    (E,) = layer_arrays(token_input.embed)
    E_name = g.const(base + ".embed.W", E)
    x = g.op("Mul", [g.op("Gather", [E_name, ids]), g.const("sqrt_d", token_input.scale)])
    T = g.op("Slice", [g.op("Shape", [ids]), g.ints(1), g.ints(2)])
    if token_input.position.params:
        (P,) = layer_arrays(token_input.position)
    else:
        P = token_input.position.table.astype(np.float32)
    rows = g.op("Slice", [g.const(base + ".positions", P), g.ints(0), T, g.ints(0)])
    return g.op("Add", [x, rows]), E_name


def _causal_mask(g, ids, max_len):
    table = np.triu(np.full((max_len, max_len), -np.inf, dtype=np.float32), k=1)
    T = g.op("Slice", [g.op("Shape", [ids]), g.ints(1), g.ints(2)])
    both = g.op("Concat", [T, T], axis=0)
    return g.op("Slice", [g.const("causal_mask", table), g.ints(0, 0), both, g.ints(0, 1)])


def _tied_logits(g, x, E_name, affine, base):
    _, bias = layer_arrays(affine)
    W = g.op("Transpose", [E_name], perm=[1, 0])
    return g.op("Add", [g.op("MatMul", [x, W]), g.const(base + ".b", bias)]), bias.shape[0]


def _transformer_lm_graph(model):
    g = GraphBuilder("TransformerLM")
    ids = g.input("ids", _I, ["batch", "time"])
    x, E_name = _token_input(g, model.input, ids, "input")
    mask = _causal_mask(g, ids, model.config.max_len)
    for i, block in enumerate(model.blocks):
        x = _block(g, block, x, f"blocks.{i}", mask=mask)
    y, V = _tied_logits(g, _layer_norm(g, model.norm, x, "norm"), E_name, model.affine,
                        "affine")
    g.output(y, "logits", _F, ["batch", "time", V])
    return g


def _transformer_seq2seq_graphs(model):
    enc, dec = model.encoder, model.decoder
    D = model.config.d_model
    e = GraphBuilder("TransformerSeq2seqEncoder")
    questions = e.input("questions", _I, ["batch", "question"])
    x, _ = _token_input(e, enc.input, questions, "encoder.input")
    for i, block in enumerate(enc.blocks):
        x = _block(e, block, x, f"encoder.blocks.{i}")
    e.output(_layer_norm(e, enc.norm, x, "encoder.norm"), "memory", _F,
             ["batch", "question", D])

    d = GraphBuilder("TransformerSeq2seqDecoder")
    prefix = d.input("prefix", _I, ["batch", "steps"])
    memory = d.input("memory", _F, ["batch", "question", D])
    x, E_name = _token_input(d, dec.input, prefix, "decoder.input")
    mask = _causal_mask(d, prefix, model.config.max_len)
    for i, block in enumerate(dec.blocks):
        x = _block(d, block, x, f"decoder.blocks.{i}", memory=memory, mask=mask)
    last = d.op("Gather", [_layer_norm(d, dec.norm, x, "decoder.norm"),
                           d.const("last", np.array(-1, dtype=np.int64), np.int64)], axis=1)
    y, V = _tied_logits(d, last, E_name, dec.affine, "decoder.affine")
    d.output(y, "logits", _F, ["batch", V])
    return {"encoder": e, "decoder": d}


# --------------------------------------------------------------------------- entry

_BUILDERS = {"lm": _lm_graph, "word2vec": _word2vec_graph, "seq2seq": _seq2seq_graphs,
             "transformer-lm": _transformer_lm_graph,
             "transformer-seq2seq": _transformer_seq2seq_graphs}


def build_graphs(model, recipe=None) -> dict:
    """The ONNX model(s) of ``model``: ``{"model": ...}`` for one graph, or
    ``{"encoder": ..., "decoder": ...}`` for the seq2seq kinds; each checked with
    ``onnx.checker.check_model(full_check=True)``. ``recipe`` (a dict, e.g. the run
    folder's ``run.json``) goes into the metadata."""
    kind = kind_of(model, "to_onnx")
    built = _BUILDERS[kind](model)
    graphs = built if isinstance(built, dict) else {"model": built}
    vocab = getattr(model, "vocab", None)
    out = {}
    for role, g in graphs.items():
        metadata = {"timelayers.model": json.dumps(type(model).__name__),
                    "timelayers.config": json.dumps(config_dict(model)),
                    "timelayers.graph": json.dumps(role), "timelayers.kind": json.dumps(kind),
                    "timelayers.version": json.dumps(__version__)}
        if vocab is not None:
            metadata["timelayers.vocab"] = json.dumps(vocab.to_dict())
        if recipe is not None:
            metadata["timelayers.recipe"] = json.dumps(recipe)
        doc = (f"{type(model).__name__} exported by timelayers {__version__}: the {role} graph "
               f"(see timelayers.export.onnx_graphs)")
        proto = g.model(doc, metadata)
        onnx.checker.check_model(proto, full_check=True)
        out[role] = proto
    return out

"""The names and shapes of a library model's params, from its config alone.

:meth:`Model.load` compares them with a file's tensors before it builds the
model, so a config whose sizes do not fit the weights (``hidden_size=10000``
beside a ``(100, 400)`` ``rnn.Wx``) is refused without allocating the model it
describes. A rule per model class yields ``(name, shape)`` in ``state_dict``
order (tied params left out), lazily: the loader stops at the first param the
file does not hold, so a config asking for ``num_layers=10000`` costs nothing
either. ``tests/models/test_param_shapes.py`` builds every class and checks that
its rule gives the built model's names and shapes exactly.

A rule covers exactly one class (not its subclasses): a model class defined
outside the library has none, and :func:`param_shapes` raises
``NotImplementedError`` for it.
"""

from __future__ import annotations

import inspect
import numbers

from .attention_seq2seq import AttentionDecoder, AttentionEncoder, AttentionSeq2seq
from .mlp import TwoLayerNet
from .rnnlm import BetterRnnlm, Rnnlm, SimpleRnnlm, _LanguageModel
from .seq2seq import Decoder, Encoder, PeekyDecoder, PeekySeq2seq, Seq2seq, Seq2seqBase
from .transformer import (TokenInput, TransformerDecoder, TransformerEncoder, TransformerLM,
                          TransformerSeq2seq)
from .word2vec import CBOW, SimpleCBOW, SimpleSkipGram, SkipGram, _NegativeSamplingModel

__all__ = ["param_shapes"]

# recurrent cell name -> gates (the G of Wx (D, G*H)); the cells with a second bias bh (G*H,)
_GATES = {"rnn": 1, "lstm": 4, "gru": 3, "gru-reset-after": 3}
_SECOND_BIAS = ("gru-reset-after",)


def param_shapes(model_class, config: dict):
    """``(dotted name, shape)`` of every param of ``model_class(**config)``, in
    ``state_dict`` order, without building it.

    The config is bound to the constructor's signature first (its defaults
    filled in, an unknown key refused); the pairs are computed as they are
    iterated.

    Raises
    ------
    NotImplementedError
        For a class without a rule (one defined outside the library).
    TypeError, ValueError
        For a config the constructor would refuse: an unknown key, a size that
        is not a non-negative int, an unknown cell (raised while iterating); and
        for the parts of the Transformers (see ``_PARTS``).
    """
    if model_class in _PARTS:
        raise TypeError(f"{model_class.__name__} is built only as a part of a "
                        f"{_PARTS[model_class]}, which is saved and loaded whole")
    rule = _RULES.get(model_class)
    if rule is None:
        raise NotImplementedError(f"{model_class.__name__} does not state its param shapes")
    bound = inspect.signature(model_class).bind(**config)
    bound.apply_defaults()
    return rule(**bound.arguments)


def _size(value, name):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"argument {name!r} expected an int, got {value!r}")
    if value < 0:
        raise ValueError(f"argument {name!r} expected a non-negative int, got {value}")
    return int(value)


def _sizes(**sizes):
    return [_size(value, name) for name, value in sizes.items()]


def _prefixed(prefix, pairs):
    for name, shape in pairs:
        yield f"{prefix}.{name}", shape


# -- layers ------------------------------------------------------------------------------
def _recurrent(cell, D, H):
    """The recurrent layer of ``models._recurrent.recurrent_layer``."""
    if cell not in _GATES:
        raise ValueError(f"argument 'cell' expected one of {list(_GATES)}, got {cell!r}")
    G = _GATES[cell] * H
    yield from [("Wx", (D, G)), ("Wh", (H, G)), ("b", (G,))]
    if cell in _SECOND_BIAS:
        yield "bh", (G,)


def _layer_norm(D):
    return [("gamma", (D,)), ("beta", (D,))]


def _attention(D):
    return [(f"{kind}{part}", shape) for part in "qkvo"
            for kind, shape in (("W", (D, D)), ("b", (D,)))]


def _block(D, F, cross_attention):
    """A ``TransformerBlock``'s params."""
    yield from _prefixed("self_attn_norm", _layer_norm(D))
    yield from _prefixed("self_attn", _attention(D))
    if cross_attention:
        yield from _prefixed("cross_attn_norm", _layer_norm(D))
        yield from _prefixed("cross_attn", _attention(D))
    yield from _prefixed("ff_norm", _layer_norm(D))
    yield from [("ff1.W", (D, F)), ("ff1.b", (F,)), ("ff2.W", (F, D)), ("ff2.b", (D,))]


def _blocks(num_layers, D, F, cross_attention):
    for i in range(num_layers):
        yield from _prefixed(f"blocks.{i}", _block(D, F, cross_attention))


# -- models --------------------------------------------------------------------------------
def _two_layer_net(input_size, hidden_size, output_size, **_):
    I, H, O = _sizes(input_size=input_size, hidden_size=hidden_size, output_size=output_size)
    yield from [("affine1.W", (I, H)), ("affine1.b", (H,)), ("affine2.W", (H, O)),
                ("affine2.b", (O,))]


def _simple_cbow(vocab_size, hidden_size, window_size, **_):
    V, H, window = _sizes(vocab_size=vocab_size, hidden_size=hidden_size,
                          window_size=window_size)
    if window:
        yield "in_layers.0.W", (V, H)  # the other context positions are tied to it
    yield "out_layer.W", (H, V)


def _simple_skip_gram(vocab_size, hidden_size, **_):
    V, H = _sizes(vocab_size=vocab_size, hidden_size=hidden_size)
    yield from [("in_layer.W", (V, H)), ("out_layer.W", (H, V))]


def _negative_sampling(vocab_size, hidden_size, **_):
    V, H = _sizes(vocab_size=vocab_size, hidden_size=hidden_size)
    yield from [("in_layer.W", (V, H)), ("ns_loss.W", (V, H))]


def _rnnlm(vocab_size, wordvec_size, hidden_size, cell, **_):
    V, D, H = _sizes(vocab_size=vocab_size, wordvec_size=wordvec_size, hidden_size=hidden_size)
    yield "embed.W", (V, D)
    yield from _prefixed("rnn", _recurrent(cell, D, H))
    yield from [("affine.W", (H, V)), ("affine.b", (V,))]


def _better_rnnlm(vocab_size, wordvec_size, hidden_size, num_layers, cell, **_):
    V, D, H, layers = _sizes(vocab_size=vocab_size, wordvec_size=wordvec_size,
                             hidden_size=hidden_size, num_layers=num_layers)
    yield "embed.W", (V, D)
    for i in range(layers):
        yield from _prefixed(f"rnns.{i}", _recurrent(cell, D if i == 0 else H, H))
    yield "affine.b", (V,)  # affine.W is tied to embed.W


def _encoder(vocab_size, wordvec_size, hidden_size, **_):
    V, D, H = _sizes(vocab_size=vocab_size, wordvec_size=wordvec_size, hidden_size=hidden_size)
    yield "embed.W", (V, D)
    yield from _prefixed("lstm", _recurrent("lstm", D, H))


def _decoder(vocab_size, wordvec_size, hidden_size, peeky=False, **_):
    """``Decoder``, or with ``peeky`` the ``PeekyDecoder`` (the encoder's state
    ``(N, H)`` joins the LSTM's and the affine layer's inputs)."""
    V, D, H = _sizes(vocab_size=vocab_size, wordvec_size=wordvec_size, hidden_size=hidden_size)
    yield "embed.W", (V, D)
    yield from _prefixed("lstm", _recurrent("lstm", D + H if peeky else D, H))
    yield from [("affine.W", (2 * H if peeky else H, V)), ("affine.b", (V,))]


def _peeky_decoder(**config):
    return _decoder(**config, peeky=True)


def _attention_decoder(vocab_size, wordvec_size, hidden_size, score, **_):
    V, D, H = _sizes(vocab_size=vocab_size, wordvec_size=wordvec_size, hidden_size=hidden_size)
    yield "embed.W", (V, D)
    yield from _prefixed("lstm", _recurrent("lstm", D, H))
    if score == "general":
        yield "attention.W", (H, H)
    yield from [("affine.W", (2 * H, V)), ("affine.b", (V,))]


def _encoder_decoder(encoder, decoder):
    def rule(**config):
        yield from _prefixed("encoder", encoder(**config))
        yield from _prefixed("decoder", decoder(**config))
    return rule


def _token_input(vocab_size, D, max_len, positional, **_):
    V, D, max_len = _sizes(vocab_size=vocab_size, D=D, max_len=max_len)
    yield "embed.W", (V, D)
    if positional == "learned":
        yield "position.W", (max_len, D)


def _transformer_lm(vocab_size, d_model, num_layers, ff_size, max_len, positional, **_):
    D, layers, F = _sizes(d_model=d_model, num_layers=num_layers, ff_size=ff_size)
    yield from _prefixed("input", _token_input(vocab_size, D, max_len, positional))
    yield from _blocks(layers, D, F, cross_attention=False)
    yield from _prefixed("norm", _layer_norm(D))
    yield "affine.b", (_size(vocab_size, "vocab_size"),)  # affine.W is tied to input.embed.W


def _transformer_encoder(vocab_size, d_model, num_layers, ff_size, max_len, positional, **_):
    D, layers, F = _sizes(d_model=d_model, num_layers=num_layers, ff_size=ff_size)
    yield from _prefixed("input", _token_input(vocab_size, D, max_len, positional))
    yield from _blocks(layers, D, F, cross_attention=False)
    yield from _prefixed("norm", _layer_norm(D))


def _transformer_seq2seq(vocab_size, d_model, encoder_layers, decoder_layers, ff_size, max_len,
                         positional, **_):
    D, F = _sizes(d_model=d_model, ff_size=ff_size)
    shared = dict(vocab_size=vocab_size, d_model=D, ff_size=F, max_len=max_len,
                  positional=positional)
    yield from _prefixed("encoder", _transformer_encoder(num_layers=encoder_layers, **shared))
    # decoder.input.embed.W and decoder.affine.W are tied to encoder.input.embed.W
    for name, shape in _token_input(vocab_size, D, max_len, positional):
        if name != "embed.W":
            yield f"decoder.input.{name}", shape
    yield from _prefixed("decoder", _blocks(_size(decoder_layers, "decoder_layers"), D, F,
                                            cross_attention=True))
    yield from _prefixed("decoder.norm", _layer_norm(D))
    yield "decoder.affine.b", (_size(vocab_size, "vocab_size"),)


def _no_params(**_):
    return iter(())


_RULES = {
    TwoLayerNet: _two_layer_net,
    SimpleCBOW: _simple_cbow,
    SimpleSkipGram: _simple_skip_gram,
    _NegativeSamplingModel: _negative_sampling,
    CBOW: _negative_sampling,
    SkipGram: _negative_sampling,
    _LanguageModel: _no_params,
    SimpleRnnlm: _rnnlm,
    Rnnlm: _rnnlm,
    BetterRnnlm: _better_rnnlm,
    Encoder: _encoder,
    Decoder: _decoder,
    PeekyDecoder: _peeky_decoder,
    Seq2seqBase: _no_params,
    Seq2seq: _encoder_decoder(_encoder, _decoder),
    PeekySeq2seq: _encoder_decoder(_encoder, _peeky_decoder),
    AttentionEncoder: _encoder,
    AttentionDecoder: _attention_decoder,
    AttentionSeq2seq: _encoder_decoder(_encoder, _attention_decoder),
    TransformerLM: _transformer_lm,
    TransformerSeq2seq: _transformer_seq2seq,
}

# Models built only inside another: their constructors take the whole's
# numpy.random.Generator, which no saved config holds (and a TransformerDecoder on
# its own shares its embedding with its output layer without a declared tie, so it
# has no state_dict). Their params' rules above serve the wholes.
_PARTS = {
    TokenInput: "TransformerLM or TransformerSeq2seq",
    TransformerEncoder: "TransformerSeq2seq",
    TransformerDecoder: "TransformerSeq2seq",
}

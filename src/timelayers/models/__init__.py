"""The book's models, built from the library's layers.

Every model is a :class:`Model`: ``params``/``grads`` by dotted name, declared
weight ties, ``forward(xs, ts) -> loss``, ``backward()``, ``save``/``load``.
"""

from .attention_seq2seq import AttentionDecoder, AttentionEncoder, AttentionSeq2seq
from .base import MODEL_REGISTRY, Model
from .mlp import TwoLayerNet
from .rnnlm import BetterRnnlm, Rnnlm, SimpleRnnlm
from .seq2seq import Decoder, Encoder, PeekyDecoder, PeekySeq2seq, Seq2seq
from .transformer import (TransformerDecoder, TransformerEncoder, TransformerLM,
                          TransformerSeq2seq)
from .word2vec import CBOW, SimpleCBOW, SimpleSkipGram, SkipGram

__all__ = [
    "Model", "MODEL_REGISTRY",
    "TwoLayerNet",
    "SimpleCBOW", "SimpleSkipGram", "CBOW", "SkipGram",
    "SimpleRnnlm", "Rnnlm", "BetterRnnlm",
    "Encoder", "Decoder", "Seq2seq", "PeekyDecoder", "PeekySeq2seq",
    "AttentionEncoder", "AttentionDecoder", "AttentionSeq2seq",
    "TransformerLM", "TransformerEncoder", "TransformerDecoder", "TransformerSeq2seq",
]

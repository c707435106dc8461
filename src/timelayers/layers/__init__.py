"""All layers, one concept per module; re-exported here."""

from .activations import GELU
from .attention import Attention, AttentionWeight, TimeAttention, WeightSum
from .base import Layer
from .core import Affine, Dropout, Embedding, EmbeddingDot, MatMul, ReLU, Sigmoid, Softmax
from .losses import SigmoidWithLoss, SoftmaxWithLoss, TimeSigmoidWithLoss, TimeSoftmaxWithLoss
from .multihead_attention import MultiHeadAttention
from .normalization import LayerNorm
from .positional import LearnedPositionalEmbedding, PositionalEncoding
from .recurrent import GRU, LSTM, RNN, TimeBiLSTM, TimeGRU, TimeLSTM, TimeRNN
from .sampling import NegativeSamplingLoss, UnigramSampler
from .time import TimeAffine, TimeDropout, TimeEmbedding
from .transformer import TransformerBlock

__all__ = [
    "Layer",
    "MatMul", "Affine", "Sigmoid", "ReLU", "Softmax", "Dropout", "Embedding", "EmbeddingDot",
    "SoftmaxWithLoss", "SigmoidWithLoss", "TimeSoftmaxWithLoss", "TimeSigmoidWithLoss",
    "TimeAffine", "TimeEmbedding", "TimeDropout",
    "RNN", "LSTM", "GRU", "TimeRNN", "TimeLSTM", "TimeGRU", "TimeBiLSTM",
    "WeightSum", "AttentionWeight", "Attention", "TimeAttention",
    "UnigramSampler", "NegativeSamplingLoss",
    "LayerNorm", "GELU", "MultiHeadAttention", "PositionalEncoding", "LearnedPositionalEmbedding",
    "TransformerBlock",
]

"""All layers, one concept per module; re-exported here."""

from .base import Layer
from .core import Affine, Dropout, Embedding, EmbeddingDot, MatMul, ReLU, Sigmoid, Softmax
from .losses import SigmoidWithLoss, SoftmaxWithLoss, TimeSigmoidWithLoss, TimeSoftmaxWithLoss
from .time import TimeAffine, TimeDropout, TimeEmbedding

__all__ = [
    "Layer",
    "MatMul", "Affine", "Sigmoid", "ReLU", "Softmax", "Dropout", "Embedding", "EmbeddingDot",
    "SoftmaxWithLoss", "SigmoidWithLoss", "TimeSoftmaxWithLoss", "TimeSigmoidWithLoss",
    "TimeAffine", "TimeEmbedding", "TimeDropout",
]

"""timelayers: sequence models from layers with hand-written forward and backward
passes in NumPy (and CuPy).

Every layer keeps one contract: ``params`` and ``grads`` lists (grads written in
place by ``backward``), ``forward(*inputs)`` and ``backward(dout)``. Models are
layers made of layers (:mod:`timelayers.models`).
"""

# first, before NumPy loads: it sets OpenBLAS's idle spin (see timelayers.threads)
from . import threads
from . import allocator  # keeps freed memory for the next arrays (see timelayers.allocator)
from ._version import __version__
from . import datasets, decoding, functions, metrics, models, optim, plot, schedules, text, training
from . import book
from .backend import get_array_module, to_cpu, to_gpu
from .errors import (CheckpointError, DataError, DownloadError, NonFiniteLossError, OptionError,
                     ShapeError, TimelayersError)
from .gradcheck import check_layer, numerical_gradient, relative_error
from .layers import (GRU, LSTM, RNN, Affine, Attention, AttentionWeight, Dropout, Embedding,
                     EmbeddingDot, Layer, MatMul, NegativeSamplingLoss, ReLU, Sigmoid,
                     SigmoidWithLoss, Softmax, SoftmaxWithLoss, TimeAffine, TimeAttention,
                     TimeBiLSTM, TimeDropout, TimeEmbedding, TimeGRU, TimeLSTM, TimeRNN,
                     TimeSigmoidWithLoss, TimeSoftmaxWithLoss, UnigramSampler, WeightSum)
from .layers import (GELU, LayerNorm, LearnedPositionalEmbedding, MultiHeadAttention,
                     PositionalEncoding, TransformerBlock)
from .metrics import eval_perplexity, eval_seq2seq, perplexity, sequence_accuracy
from .models import Model
from .optim import SGD, AdaGrad, Adam, AdamW, Momentum, Nesterov, RMSprop, clip_grads
from .schedules import ReduceOnPlateau, StepDecay, WarmupCosine
from .training import RnnlmTrainer, Trainer
from .vocab import UnknownWordError, Vocabulary

parallel = threads  # the name the README used before threads.py

__all__ = [
    "__version__",
    # modules
    "book", "datasets", "decoding", "functions", "metrics", "models", "optim", "plot", "threads",
    "schedules",
    "text", "training",
    # arrays and errors
    "get_array_module", "to_cpu", "to_gpu",
    "TimelayersError", "ShapeError", "DataError", "DownloadError", "CheckpointError", "OptionError",
    "NonFiniteLossError", "UnknownWordError",
    # gradient checking
    "check_layer", "numerical_gradient", "relative_error",
    # layers
    "Layer", "MatMul", "Affine", "Sigmoid", "ReLU", "Softmax", "Dropout", "Embedding",
    "EmbeddingDot", "SoftmaxWithLoss", "SigmoidWithLoss", "TimeSoftmaxWithLoss",
    "TimeSigmoidWithLoss", "TimeAffine", "TimeEmbedding", "TimeDropout",
    "RNN", "LSTM", "GRU", "TimeRNN", "TimeLSTM", "TimeGRU", "TimeBiLSTM",
    "WeightSum", "AttentionWeight", "Attention", "TimeAttention",
    "UnigramSampler", "NegativeSamplingLoss",
    "LayerNorm", "GELU", "MultiHeadAttention", "PositionalEncoding", "LearnedPositionalEmbedding",
    "TransformerBlock",
    # training
    "Model", "SGD", "Momentum", "Nesterov", "AdaGrad", "RMSprop", "Adam", "AdamW", "clip_grads",
    "StepDecay", "ReduceOnPlateau", "WarmupCosine", "Trainer", "RnnlmTrainer", "perplexity",
    "sequence_accuracy", "eval_perplexity", "eval_seq2seq",
    "Vocabulary",
]

"""timelayers: sequence models from layers with hand-written forward and backward
passes in NumPy (and CuPy).

Every layer keeps one contract: ``params`` and ``grads`` lists (grads written in
place by ``backward``), ``forward(*inputs)`` and ``backward(dout)``.
"""

from . import functions
from .backend import get_array_module, to_cpu, to_gpu
from .errors import (CheckpointError, DataError, DownloadError, NonFiniteLossError, ShapeError,
                     TimelayersError)
from .gradcheck import check_layer, numerical_gradient, relative_error
from .layers import (Affine, Dropout, Embedding, EmbeddingDot, Layer, MatMul, ReLU, Sigmoid,
                     SigmoidWithLoss, Softmax, SoftmaxWithLoss, TimeAffine, TimeDropout,
                     TimeEmbedding, TimeSigmoidWithLoss, TimeSoftmaxWithLoss)

__version__ = "0.1.0"

__all__ = [
    "__version__",
    "functions",
    "get_array_module", "to_cpu", "to_gpu",
    "TimelayersError", "ShapeError", "DataError", "DownloadError", "CheckpointError",
    "NonFiniteLossError",
    "check_layer", "numerical_gradient", "relative_error",
    "Layer", "MatMul", "Affine", "Sigmoid", "ReLU", "Softmax", "Dropout", "Embedding",
    "EmbeddingDot", "SoftmaxWithLoss", "SigmoidWithLoss", "TimeSoftmaxWithLoss",
    "TimeSigmoidWithLoss", "TimeAffine", "TimeEmbedding", "TimeDropout",
]

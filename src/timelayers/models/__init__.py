"""The book's models, built from the library's layers."""

from .base import MODEL_REGISTRY, Model

__all__ = ["Model", "MODEL_REGISTRY"]

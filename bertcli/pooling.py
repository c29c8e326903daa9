"""Pooling token vectors into one vector per text, on numpy — the one implementation every backend's output goes through.

Poolings: ``cls`` (row 0), ``pooler`` (the model's pooler output), ``mean`` and ``max`` over real tokens (padding
excluded, as sentence-transformers does), ``none`` (the token vectors themselves).
"""

from __future__ import annotations

import numpy as np

from bertcli.choices import POOLINGS  # noqa: F401 - the poolings this module implements, named once


def pool(hidden: np.ndarray, mask: np.ndarray, pooling: str, *, pooled: np.ndarray | None = None,
         normalize: bool = False) -> np.ndarray:
    """(batch, length, hidden) token vectors and their (batch, length) attention mask → (batch, hidden) vectors
    (with ``none``: the (batch, length, hidden) input). ``pooled`` is the model's pooler output (for ``pooler``).
    ``normalize`` divides each vector by its L2 norm, as ``torch.nn.functional.normalize``: x / max(‖x‖, 1e-12).
    """
    m = mask[..., None].astype(np.float32)
    if pooling == "none":
        vectors = hidden
    elif pooling == "cls":
        vectors = hidden[:, 0]
    elif pooling == "pooler":
        vectors = pooled
    elif pooling == "mean":
        vectors = (hidden * m).sum(axis=1) / np.maximum(m.sum(axis=1), 1e-9)
    else:  # max: padding can never win (sentence-transformers sets it to -1e9)
        vectors = np.where(m > 0, hidden, np.float32(-1e9)).max(axis=1)
    vectors = np.asarray(vectors, dtype=np.float32)
    if normalize:
        vectors = vectors / np.maximum(np.linalg.norm(vectors, axis=-1, keepdims=True), 1e-12)
    return vectors

"""Scores from logits, in numpy, once for every head and backend: softmax, sigmoid, and the activation a
classification head's config asks for (as transformers' pipelines choose it)."""

from __future__ import annotations

from typing import Any

import numpy as np

from bertcli.choices import FUNCTIONS  # --function's choices: how a classification head's logits become scores


def softmax(logits: np.ndarray, axis: int = -1) -> np.ndarray:
    """Numerically stable softmax in float32 (the max is subtracted first, as torch does)."""
    x = np.asarray(logits, dtype=np.float32)
    shifted = x - x.max(axis=axis, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=axis, keepdims=True)


def sigmoid(logits: np.ndarray) -> np.ndarray:
    """1 / (1 + e^-x) in float32."""
    x = np.asarray(logits, dtype=np.float32)
    return (1.0 / (1.0 + np.exp(-x))).astype(np.float32)


def default_function(config: Any) -> str:
    """What transformers' text-classification pipeline applies by default: none for ``problem_type:
    regression``, sigmoid for one label or ``multi_label_classification``, softmax otherwise (``config``: a
    dict or a config object)."""
    get = config.get if isinstance(config, dict) else (lambda key, default=None: getattr(config, key, default))
    id2label = get("id2label") or {}
    labels = len(id2label) if id2label else int(get("num_labels", 2) or 2)
    if get("problem_type") == "regression":
        return "none"
    if get("problem_type") == "multi_label_classification" or labels == 1:
        return "sigmoid"
    return "softmax"


def apply(function: str, logits: np.ndarray) -> np.ndarray:
    """``function`` (one of `FUNCTIONS`) over the last axis of ``logits``."""
    if function == "softmax":
        return softmax(logits)
    if function == "sigmoid":
        return sigmoid(logits)
    if function == "none":
        return np.asarray(logits, dtype=np.float32)
    raise ValueError(f"unknown score function {function!r}: choose {', '.join(FUNCTIONS)}")

"""The most tokens a model takes, from its config (a config.json dict or a transformers config object) and
its tokenizer's limit: one rule for every command that runs a model (tokenize, embed, qa, fill-mask, detect,
attention). Tiny and import-free on purpose: `tokenize` loads it on every run.
"""

from __future__ import annotations

from typing import Any

#: The RoBERTa-style model types: their position ids start after the padding index, so a table of 514
#: positions takes 512 tokens (and their parameter arithmetic is RoBERTa's).
ROBERTA_TYPES = ("roberta", "xlm-roberta", "camembert")

#: DistilBERT's config.json names for BERT's size fields (transformers maps the first three the same way)
DISTILBERT_NAMES = {"hidden_size": "dim", "num_attention_heads": "n_heads", "num_hidden_layers": "n_layers",
                    "intermediate_size": "hidden_dim"}


def bert_names(config: dict[str, Any]) -> dict[str, Any]:
    """A config.json dict with BERT's size names (``hidden_size`` …) added for a DistilBERT config, which names
    them ``dim``/``n_heads``/``n_layers``/``hidden_dim``; any other config is returned as it is."""
    if not isinstance(config, dict) or config.get("model_type") != "distilbert":
        return config
    return {**config, **{bert: config[own] for bert, own in DISTILBERT_NAMES.items() if own in config}}


def _field(config: Any, name: str) -> Any:
    """A config field from a config.json dict or a transformers config object."""
    return config.get(name) if isinstance(config, dict) else getattr(config, name, None)


def position_limit(config: Any) -> int | None:
    """The most tokens the position table holds: ``max_position_embeddings``, minus 2 for RoBERTa-style
    models; None when the config does not say. ``config`` is a config.json dict or a transformers config."""
    positions = _field(config, "max_position_embeddings")
    if not isinstance(positions, int) or positions <= 0:
        return None
    if _field(config, "model_type") in ROBERTA_TYPES:
        positions -= 2
    return positions if positions > 0 else None


def token_limit(config: Any, tokenizer_max: int | None) -> int | None:
    """The most tokens the model takes: its position table (`position_limit`), capped by the tokenizer's
    ``model_max_length`` (``tokenizer_max``; None or 0 when unknown); None when neither says."""
    positions = position_limit(config)
    if isinstance(tokenizer_max, int) and tokenizer_max > 0:
        return min(positions, tokenizer_max) if positions else tokenizer_max
    return positions

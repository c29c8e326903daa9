"""Downloads from the hub through huggingface_hub (file selection, errors); no HTTP of our own."""

from __future__ import annotations

from pathlib import Path

from bertcli.resolve import hub_cache_dir, hub_error

#: What running a model needs: config, tokenizer files, and one weights format (safetensors).
DEFAULT_PATTERNS = [
    "config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.txt",
    "vocab.json",
    "merges.txt",
    "spiece.model",
    "sentencepiece.bpe.model",
    "added_tokens.json",
    "*.safetensors",
    "model.safetensors.index.json",
    "modules.json",
    "sentence_bert_config.json",
    "1_Pooling/config.json",
]


def download_for_run(repo_id: str, *, revision: str | None = None, cache_dir=None, token=None) -> Path:
    """Download what running ``repo_id`` needs into the HF cache and return the snapshot folder."""
    from huggingface_hub import snapshot_download

    try:
        folder = snapshot_download(repo_id, revision=revision, cache_dir=hub_cache_dir(cache_dir), token=token,
                                   allow_patterns=DEFAULT_PATTERNS)
    except Exception as exc:  # noqa: BLE001 - mapped to one clear error
        mapped = hub_error(exc, repo_id, revision)
        if mapped is exc:
            raise
        raise mapped from exc
    return Path(folder)

"""What the environment says, read without importing anything heavy: the Hugging Face hub cache, bertcli's own
cache, and whether offline mode is on. Used by `bertcli.resolve`, `bertcli.hub`, `bertcli.cache` and the
converters that keep files in bertcli's cache.
"""

from __future__ import annotations

import os
from pathlib import Path


def hub_cache_dir(cache_dir: str | os.PathLike | None = None) -> Path:
    """The Hugging Face hub cache in force: --cache-dir, else HF_HUB_CACHE, else HF_HOME/hub."""
    if cache_dir:
        return Path(cache_dir).expanduser()
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    hf_home = os.environ.get("HF_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "huggingface"
    )
    return Path(hf_home).expanduser() / "hub"


def bertcli_cache_dir() -> Path:
    """bertcli's own cache (converted tokenizers, ONNX exports): BERTCLI_CACHE, else XDG_CACHE_HOME/bertcli."""
    if os.environ.get("BERTCLI_CACHE"):
        return Path(os.environ["BERTCLI_CACHE"]).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")) / "bertcli"


def is_offline(offline: bool | None = None) -> bool:
    if offline is not None:
        return offline
    return os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on") or os.environ.get(
        "TRANSFORMERS_OFFLINE", ""
    ).lower() in ("1", "true", "yes", "on")

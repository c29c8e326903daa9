"""Sizes as people read them, shared by the download progress, `cache` and `download` views."""

from __future__ import annotations


def format_bytes(n: int | None) -> str:
    """1536 → '1.5 KB' (powers of 1000, like the hub)."""
    if n is None:
        return "?"
    value = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if abs(value) < 1000:
            return f"{int(value)} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} TB"

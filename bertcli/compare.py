"""The same text through several tokenizers, and where their splits differ (no Typer, no Rich).

Tokens of different tokenizers are aligned by their character offsets into the original text: each
tokenizer *cuts* the text at the start and end of its tokens (whitespace trimmed, so ``Ġwas`` and ``was``
cut alike). A cut every tokenizer makes is shared; the others are where the splits differ. Between two
consecutive shared cuts at word edges lies a *region* (usually one word); a region holding unshared cuts
is reported with each tokenizer's pieces of it, e.g. ``epiphany``: ``ep|ip|han|y`` vs ``e|pi|p|h|any``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

#: Each tokenizer kind's piece marker: what it is and what it means.
MARKERS: dict[str, tuple[str, str]] = {
    "WordPiece": ("##", "prefix of a piece that continues a word"),
    "SentencePiece": ("▁", "prefix of a piece that starts a word (replaces the space)"),
    "byte-level BPE": ("Ġ", "prefix of a piece preceded by a space (the space byte, shown as Ġ)"),
}


def marker_for(kind: str | None) -> str | None:
    """The piece marker of a tokenizer kind (``##``, ``▁``, ``Ġ``), None when unknown."""
    return MARKERS.get(kind or "", (None, ""))[0]


@dataclass
class Tokenization:
    """One tokenizer's view of a text: tokens with ids and character offsets into the text."""

    model: str
    kind: str
    tokens: list[str]
    ids: list[int]
    offsets: list[tuple[int, int]]
    special: list[bool] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.special:
            self.special = [False] * len(self.tokens)
        if not len(self.tokens) == len(self.ids) == len(self.offsets) == len(self.special):
            raise ValueError("tokens, ids, offsets and special must have the same length")

    @property
    def count(self) -> int:
        """Number of tokens, special tokens left out."""
        return sum(1 for s in self.special if not s)

    @property
    def marker(self) -> str | None:
        return marker_for(self.kind)


def tokenize(tokenizer, text: str, model: str, *, add_special_tokens: bool = False) -> Tokenization:
    """Tokenize ``text`` with a `bertcli.tokenizer.LoadedTokenizer` into a `Tokenization` labelled ``model``."""
    enc = tokenizer.encode_batch([text], add_special_tokens=add_special_tokens)[0]
    return Tokenization(
        model=model,
        kind=tokenizer.kind,
        tokens=list(enc.tokens),
        ids=list(enc.ids),
        offsets=[(int(s), int(e)) for s, e in enc.offsets],
        special=[bool(m) for m in enc.special_tokens_mask],
    )


def _trimmed(text: str, start: int, end: int) -> tuple[int, int]:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end


def cuts(text: str, tokenization: Tokenization) -> list[int]:
    """Sorted character positions where this tokenizer starts or ends a token (specials, empty spans skipped)."""
    points: set[int] = set()
    for (start, end), special in zip(tokenization.offsets, tokenization.special):
        if special:
            continue
        start, end = _trimmed(text, start, end)
        if end > start:
            points.update((start, end))
    return sorted(points)


def _context(text: str, position: int, width: int = 12) -> str:
    """The text around a cut, the cut shown as ``|``."""
    return text[max(0, position - width):position] + "|" + text[position:position + width]


def _pieces(text: str, start: int, end: int, points: Sequence[int]) -> list[str]:
    """The text of [start, end) cut at ``points``; whitespace-only pieces dropped, the rest trimmed."""
    inner = [p for p in points if start < p < end]
    bounds = [start, *inner, end]
    pieces = [text[a:b].strip() for a, b in zip(bounds, bounds[1:])]
    return [p for p in pieces if p]


def _region_tokens(text: str, tokenization: Tokenization, start: int, end: int) -> list[str]:
    out = []
    for tok, (s, e), special in zip(tokenization.tokens, tokenization.offsets, tokenization.special):
        s, e = _trimmed(text, s, e)
        if not special and e > s and s < end and e > start:
            out.append(tok)
    return out


def _inside_word(text: str, position: int) -> bool:
    """Whether a position falls between two letters/digits (inside a word, not at its edge)."""
    return 0 < position < len(text) and text[position - 1].isalnum() and text[position].isalnum()


def differences(text: str, tokenizations: Sequence[Tokenization]) -> dict:
    """Where the tokenizations' splits differ, by character position.

    Returns ``{"shared": [cuts every model makes], "not_shared": [{"position", "context", "models"}],
    "regions": [{"start", "end", "text", "pieces": {model: [...]}, "tokens": {model: [...]}}]}`` where
    ``models`` lists the models that cut at that position, and ``regions`` are the stretches holding
    unshared cuts between consecutive shared cuts at a word's edge (not between two letters or digits), so
    a region is usually one word: ``epiphany`` with ``ep|ip|han|y`` vs ``e|pi|p|h|any``.
    """
    per_model = {t.model: cuts(text, t) for t in tokenizations}
    sets = [set(c) for c in per_model.values()]
    shared = sorted(set.intersection(*sets)) if sets else []
    union = sorted(set.union(*sets)) if sets else []
    shared_set = set(shared)
    not_shared = [
        {"position": p, "context": _context(text, p),
         "models": [name for name, c in per_model.items() if p in set(c)]}
        for p in union if p not in shared_set
    ]
    regions = []
    anchors = sorted({p for p in shared_set if not _inside_word(text, p)} | {0, len(text)})
    unshared = [d["position"] for d in not_shared]
    for a, b in zip(anchors, anchors[1:]):
        if not any(a < p < b for p in unshared):
            continue
        regions.append({
            "start": a,
            "end": b,
            "text": text[a:b],
            "pieces": {name: _pieces(text, a, b, c) for name, c in per_model.items()},
            "tokens": {t.model: _region_tokens(text, t, a, b) for t in tokenizations},
        })
    return {"shared": shared, "not_shared": not_shared, "regions": regions}


def compare_record(text: str, tokenizations: Sequence[Tokenization]) -> dict:
    """The JSON record of one comparison: each model's tokens, and the differences."""
    return {
        "text": text,
        "models": [
            {
                "model": t.model,
                "kind": t.kind,
                "marker": t.marker,
                "tokens": t.tokens,
                "ids": t.ids,
                "offsets": [list(o) for o in t.offsets],
                "special": t.special,
                "count": t.count,
            }
            for t in tokenizations
        ],
        "differences": differences(text, tokenizations),
    }

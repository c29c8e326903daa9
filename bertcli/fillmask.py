"""Masked-LM filling: the top-k fillers (softmax probabilities) for every mask in a text.

Works with any masked-LM head (BERT, ALBERT, RoBERTa, ELECTRA's generator). Users may write ``[MASK]`` or
``<mask>`` whatever the model: both are translated to the model's own mask token (RoBERTa's is ``<mask>``).
Each mask position gets its own independent top-k, as transformers' fill-mask pipeline gives them; the
"filled" text puts every position's top-1 back into the text.

torch is imported inside the functions: importing this module costs nothing.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from bertcli.errors import BadInputError, ModelFileError, UsageError
from bertcli.limits import token_limit
from bertcli.resolve import ResolvedModel
from bertcli.runner import batch_inputs

#: What users may type for a mask, whatever the model's own mask token is.
MASK_MARKERS = ("[MASK]", "<mask>")
_MARKER_RE = re.compile("|".join(re.escape(m) for m in MASK_MARKERS))

DEFAULT_BATCH = 16


@dataclass
class Filler:
    """One candidate for a mask: the vocabulary piece, its id, the text it stands for, its probability."""

    token: str
    token_id: int
    word: str
    score: float


@dataclass
class MaskFill:
    """The top-k fillers of one mask: its token position (0-based, special tokens counted) and character span."""

    index: int  # 1-based: which mask of the text
    position: int
    start: int
    end: int
    fillers: list[Filler]


@dataclass
class FillMaskResult:
    """One text's answer: the text as given, as the model saw it, with the top-1s filled in, and every mask."""

    text: str
    model_text: str
    tokens: list[str]
    masks: list[MaskFill]
    filled: str

    def as_record(self) -> dict[str, Any]:
        rec: dict[str, Any] = {"text": self.text}
        if self.model_text != self.text:
            rec["model_text"] = self.model_text
        rec["filled"] = self.filled
        rec["tokens"] = self.tokens
        rec["masks"] = [
            {"mask": m.index, "position": m.position, "start": m.start, "end": m.end,
             "predictions": [{"token": f.token, "token_id": f.token_id, "word": f.word, "score": f.score}
                             for f in m.fillers]}
            for m in self.masks
        ]
        return rec


def to_model_mask(text: str, mask_token: str) -> str:
    """``text`` with every ``[MASK]`` / ``<mask>`` written as the model's own mask token."""
    return _MARKER_RE.sub(lambda _m: mask_token, text)


def mask_token_of(tok) -> str:
    """The tokenizer's mask token (from its special tokens, else whichever marker its vocabulary holds)."""
    if tok.mask_token and tok.token_id(tok.mask_token) is not None:
        return tok.mask_token
    for marker in MASK_MARKERS:
        if tok.token_id(marker) is not None:
            return marker
    raise ModelFileError("this model's tokenizer has no mask token ([MASK] or <mask>), so it cannot fill masks")


def filler_word(token: str, decoded: str, kind: str) -> str:
    """The text a filler piece stands for: WordPiece ``##ing`` → ``ing``; ``Ġparis``/``▁paris`` → ``paris``."""
    if kind == "WordPiece" and token.startswith("##"):
        return token[2:]
    word = decoded.strip()
    # A lone byte of a multi-byte character (byte-level BPE) decodes to U+FFFD: show the piece instead.
    return word if word and "\ufffd" not in word else token


class FillMasker:
    """A loaded masked-LM model plus its tokenizer; call `fill` on texts."""

    def __init__(self, loaded, tok, *, batch_size: int = DEFAULT_BATCH):
        self.loaded = loaded
        self.tok = tok
        self.batch_size = batch_size
        self.mask_token = mask_token_of(tok)
        self.mask_id = tok.token_id(self.mask_token)
        self.max_length = token_limit(loaded.config, tok.model_max_length)

    def fill(self, texts: Sequence[str], *, top_k: int = 5, where: Sequence[str] | None = None) -> list[FillMaskResult]:
        """Top-k fillers for each mask of each text. ``where`` names each text in errors (e.g. 'line 3')."""
        if top_k < 1:
            raise UsageError("--top-k must be at least 1")
        results: list[FillMaskResult] = []
        for start in range(0, len(texts), self.batch_size):
            chunk = list(texts[start:start + self.batch_size])
            names = list(where[start:start + self.batch_size]) if where else [f"text {start + i + 1}" for i in range(len(chunk))]
            results.extend(self._fill_batch(chunk, names, top_k))
        return results

    def _fill_batch(self, texts: list[str], names: list[str], top_k: int) -> list[FillMaskResult]:
        model_texts = [to_model_mask(t, self.mask_token) for t in texts]
        # cut to the limit (from a prefix: a huge line costs what a long one does), only to see which are over it
        encs = self.tok.encode_batch(model_texts, max_length=self.max_length or None)
        mask_positions: list[list[int]] = []
        for name, enc, model_text in zip(names, encs, model_texts):
            if self.max_length and enc.overflowing:
                raise BadInputError(f"{name}: {self.tok.count_tokens(model_text)} tokens, more than the model's "
                                    f"maximum of {self.max_length}; shorten the text around the mask")
            positions = [i for i, tid in enumerate(enc.ids) if tid == self.mask_id]
            if not positions:
                raise BadInputError(f"{name}: no mask in the text; write [MASK] where a word is missing "
                                    f"(for this model [MASK] and <mask> both mean {self.mask_token})")
            mask_positions.append(positions)
        k = min(top_k, int(self.loaded.config.vocab_size))
        rows = [(b, p) for b, positions in enumerate(mask_positions) for p in positions]
        out = self.loaded.run(*batch_inputs(encs, self.tok), positions=([b for b, _ in rows], [p for _, p in rows]))
        ids, scores = top_k_probabilities(out.logits["logits"], k)
        out: list[FillMaskResult] = []
        row = 0
        for text, model_text, enc, positions in zip(texts, model_texts, encs, mask_positions):
            masks = []
            for n, pos in enumerate(positions, start=1):
                fillers = [self._filler(tid, s) for tid, s in zip(ids[row], scores[row])]
                row += 1
                start, end = enc.offsets[pos]
                span = model_text[start:end]  # a mask token that strips the space before it spans that space
                start += len(span) - len(span.lstrip())
                masks.append(MaskFill(index=n, position=pos, start=start, end=end, fillers=fillers))
            out.append(FillMaskResult(text=text, model_text=model_text, tokens=self.tok.token_strings(enc), masks=masks,
                                      filled=_splice(model_text, masks)))
        return out

    def _filler(self, token_id: int, score: float) -> Filler:
        backend = self.tok.backend
        token = backend.id_to_token(token_id) or ""
        decoded = backend.decode([token_id], skip_special_tokens=False)
        return Filler(token=token, token_id=token_id, word=filler_word(token, decoded, self.tok.kind), score=score)


def top_k_probabilities(logits, k: int) -> tuple[list[list[int]], list[list[float]]]:
    """Per row of ``logits`` (n, vocabulary): the ``k`` most probable ids (highest first, ties: lower id first)
    and their softmax probabilities, as lists."""
    import numpy as np

    from bertcli.scores import softmax

    probs = softmax(logits, axis=-1)
    k = min(k, probs.shape[-1])
    part = np.argpartition(-probs, k - 1, axis=-1)[:, :k] if k < probs.shape[-1] else np.tile(
        np.arange(probs.shape[-1]), (probs.shape[0], 1))
    picked = np.take_along_axis(probs, part, axis=-1)
    order = np.lexsort((part, -picked), axis=-1)
    ids = np.take_along_axis(part, order, axis=-1)
    return ids.tolist(), np.take_along_axis(picked, order, axis=-1).tolist()


def _splice(text: str, masks: list[MaskFill]) -> str:
    """``text`` with each mask's character span replaced by its top-1 filler's word."""
    pieces, pos = [], 0
    for mask in masks:
        if mask.start < pos or mask.end <= mask.start:
            continue
        pieces += [text[pos:mask.start], mask.fillers[0].word]
        pos = mask.end
    pieces.append(text[pos:])
    return "".join(pieces)


def load_fill_masker(resolved: ResolvedModel, *, device: str = "cpu", batch_size: int = DEFAULT_BATCH,
                     backend: str = "auto") -> FillMasker:
    """The model's masked-LM head and tokenizer (a model without one is refused, naming the command that fits)."""
    from bertcli.backends import load_backend
    from bertcli.heads import check_head
    from bertcli.tokenizer import load_tokenizer

    if resolved.has_config:
        check_head(resolved, "mlm")  # a missing head is refused before any tokenizer or weights are loaded
    tok = load_tokenizer(resolved)
    loaded = load_backend(resolved, "mlm", backend=backend, device=device, tokenizer=tok)
    return FillMasker(loaded, tok, batch_size=batch_size)

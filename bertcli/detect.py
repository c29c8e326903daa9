"""ELECTRA replaced-token detection: the discriminator's probability that each token was replaced.

The discriminator (``ElectraForPreTraining``) gives one logit per token; ``sigmoid(logit)`` is the probability
that the token is not the original. `apply_replacements` swaps words first (``--replace POS=WORD``) so the
user can watch the discriminator catch the swap.

Word positions (POS) are 1-based and count the words as the model's tokenizer splits them: punctuation is a
word of its own, and a word split into several pieces is still one word ("The chef cooked the meal." →
1 The, 2 chef, 3 cooked, 4 the, 5 meal, 6 .).

torch is imported inside the functions: importing this module costs nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from bertcli.errors import UsageError
from bertcli.resolve import ResolvedModel

THRESHOLD = 0.5  # sigmoid(0): above it the discriminator says "replaced"


@dataclass
class Replacement:
    """One swap: the word's 1-based position, the word before and after, and the new word's span in the text."""

    word: int
    old: str
    new: str
    start: int
    end: int


@dataclass
class DetectToken:
    """One token and the discriminator's verdict on it."""

    position: int
    token: str
    id: int
    word: int | None  # 1-based word position (None for special tokens)
    start: int
    end: int
    logit: float
    probability: float
    special: bool
    swapped: bool = False

    @property
    def predicted_replaced(self) -> bool:
        return self.probability > THRESHOLD


@dataclass
class DetectResult:
    """One text after any swaps, the swaps, every token's probability, and how many tokens were cut off."""

    text: str
    tokens: list[DetectToken]
    original: str | None = None
    replacements: list[Replacement] = field(default_factory=list)
    truncated: int = 0

    def as_record(self) -> dict[str, Any]:
        rec: dict[str, Any] = {"text": self.text}
        if self.original is not None:
            rec["original"] = self.original
            rec["replacements"] = [vars(r).copy() for r in self.replacements]
        rec["tokens"] = [
            {"position": t.position, "token": t.token, "id": t.id, "word": t.word, "start": t.start, "end": t.end,
             "special": t.special, "swapped": t.swapped, "logit": t.logit, "probability": t.probability,
             "predicted_replaced": t.predicted_replaced}
            for t in self.tokens
        ]
        if self.truncated:
            rec["truncated_tokens"] = self.truncated
        return rec


def parse_replacement(spec: str) -> tuple[int | str, str]:
    """``"3=ate"`` → ``(3, "ate")``; ``"cooked=ate"`` → ``("cooked", "ate")`` (the word's first occurrence).

    A clear UsageError otherwise. The word is looked up in the text by `apply_replacements`.
    """
    pos, eq, word = spec.partition("=")
    if not eq or not pos.strip():
        raise UsageError(f"--replace {spec!r}: expected POS=WORD or OLD=WORD, e.g. --replace 3=ate or "
                         f"--replace cooked=ate")
    if not word.strip():
        raise UsageError(f"--replace {spec!r}: WORD is empty")
    try:
        return int(pos.strip()), word.strip()
    except ValueError:
        return pos.strip(), word.strip()


def _word_list(text: str, spans: list[tuple[int, int]]) -> str:
    words = " ".join(f"{i}={text[s:e]}" for i, (s, e) in enumerate(spans[:12], start=1))
    return words + (" …" if len(spans) > 12 else "")


def _word_number(text: str, spans: list[tuple[int, int]], old: str) -> int:
    """The 1-based number of the first word equal to ``old`` (exactly, else ignoring case); UsageError lists them."""
    words = [text[s:e] for s, e in spans]
    for same in (lambda w: w == old, lambda w: w.casefold() == old.casefold()):
        for number, word in enumerate(words, start=1):
            if same(word):
                return number
    raise UsageError(f"--replace {old}=…: the text has no word {old!r}; its words are {_word_list(text, spans)}")


def word_spans(tok, text: str) -> list[tuple[int, int]]:
    """Character span of each word as the tokenizer splits the text (index 0 is word 1)."""
    enc = tok.encode_batch([text], add_special_tokens=False)[0]
    spans: dict[int, list[int]] = {}
    for word, (start, end) in zip(enc.word_ids, enc.offsets):
        if word is None:
            continue
        span = spans.setdefault(word, [start, end])
        span[0], span[1] = min(span[0], start), max(span[1], end)
    return [tuple(spans[w]) for w in sorted(spans)]  # type: ignore[misc]


def apply_replacements(tok, text: str,
                       replacements: Sequence[tuple[int | str, str]]) -> tuple[str, list[Replacement]]:
    """``text`` with the given words (1-based positions, or the words themselves) swapped, and where each now sits."""
    spans = word_spans(tok, text)
    replacements = [(_word_number(text, spans, pos) if isinstance(pos, str) else pos, new)
                    for pos, new in replacements]
    seen: set[int] = set()
    for number, _ in replacements:
        if not 1 <= number <= len(spans):
            raise UsageError(f"--replace {number}=…: the text has {len(spans)} words, so POS must be 1..{len(spans)} "
                             f"({_word_list(text, spans)})")
        if number in seen:
            raise UsageError(f"--replace: word {number} is given twice")
        seen.add(number)
    out, pos, shift, done = [], 0, 0, []
    for number, new in sorted(replacements):
        start, end = spans[number - 1]
        out += [text[pos:start], new]
        done.append(Replacement(word=number, old=text[start:end], new=new, start=start + shift,
                                end=start + shift + len(new)))
        shift += len(new) - (end - start)
        pos = end
    out.append(text[pos:])
    return "".join(out), done


class Detector:
    """A loaded ELECTRA discriminator plus its tokenizer; call `detect` on texts."""

    def __init__(self, loaded, tok):
        from bertcli.limits import token_limit

        self.loaded = loaded
        self.tok = tok
        self.max_length = token_limit(loaded.config, tok.model_max_length)

    def detect(self, text: str, replacements: Sequence[tuple[int | str, str]] = ()) -> DetectResult:
        """Swap the given words (if any), then score every token of the text."""
        from bertcli.runner import batch_inputs
        from bertcli.scores import sigmoid

        original = None
        done: list[Replacement] = []
        if replacements:
            original = text
            text, done = apply_replacements(self.tok, text, replacements)
        enc, truncated = self.tok.encode_capped(text, self.max_length)
        logits = self.loaded.run(*batch_inputs([enc], self.tok)).logits["logits"][0]
        logit_list, prob_list = logits.tolist(), sigmoid(logits).tolist()
        tokens = []
        for i, (token, tid) in enumerate(zip(enc.tokens, enc.ids)):
            start, end = enc.offsets[i]
            special = bool(enc.special_tokens_mask[i])
            word = enc.word_ids[i]
            swapped = not special and any(start < r.end and r.start < end for r in done)
            tokens.append(DetectToken(position=i, token=token, id=tid, word=None if word is None else word + 1,
                                      start=start, end=end, logit=logit_list[i], probability=prob_list[i],
                                      special=special, swapped=swapped))
        return DetectResult(text=text, tokens=tokens, original=original, replacements=done,
                            truncated=truncated)


def load_detector(resolved: ResolvedModel, *, device: str = "cpu", backend: str = "auto") -> Detector:
    """The ELECTRA discriminator's head and tokenizer; any other model is refused, naming the command that fits."""
    from bertcli.backends import load_backend
    from bertcli.heads import architectures, missing_head_error
    from bertcli.tokenizer import load_tokenizer

    if resolved.has_config and resolved.config.get("model_type") != "electra":
        raise missing_head_error(resolved, "rtd", architectures(resolved))
    tok = load_tokenizer(resolved)
    loaded = load_backend(resolved, "rtd", backend=backend, device=device, tokenizer=tok)
    return Detector(loaded, tok)


def detect(resolved: ResolvedModel, text: str, replacements: Sequence[tuple[int | str, str]] = (), *,
           device: str = "cpu") -> DetectResult:
    """One-shot helper: load the discriminator and score ``text`` (after the swaps)."""
    return load_detector(resolved, device=device).detect(text, replacements)

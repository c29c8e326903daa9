"""Sentence-pair pretraining objectives: BERT's next sentence prediction (NSP) and ALBERT's sentence order
prediction (SOP), one pair at a time or over a stream of pairs.

Both heads read ``[CLS] A [SEP] B [SEP]`` (token types 0 for A, 1 for B) and give two logits; index 0 means
"B follows A" for NSP (``BertForNextSentencePrediction``: IsNext) and "A, B is the original order" for SOP
(``AlbertForPreTraining.sop_classifier``). The probability reported is the softmax of the two logits at index 0
(`bertcli.scores.softmax`), the same as transformers' heads give. ``swap`` also scores (B, A): the contrast the
ALBERT paper draws — NSP can be solved from topic alone, so a swapped pair of one topic often still "follows";
SOP is trained on exactly those swaps.

Pairs come from ``A<TAB>B`` lines (`iter_tsv_pairs`) or from a text split into sentences, each sentence paired
with the next one (`iter_sentence_pairs`); both stream, one line at a time.

torch is imported by the backend only: importing this module costs nothing.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from bertcli.backends import DEFAULT_BACKEND
from bertcli.batching import TokenBudgetBatcher, token_budget
from bertcli.errors import BadInputError, UsageError
from bertcli.inputs import Line, line_label
from bertcli.resolve import ResolvedModel

#: objective → (head name in bertcli.heads, what probability index 0 of its logits is)
OBJECTIVES: dict[str, tuple[str, str]] = {
    "nsp": ("nsp", "p(B follows A)"),
    "sop": ("sop", "p(A, B in order)"),
}
THRESHOLD = 0.5
#: pairs read, batched by tokens and scored at a time (small: records stream as they are ready)
WINDOW = 64

#: where a text is split into sentences: whitespace after . ! ? … (or after one of them and a closing quote or
#: bracket)
SENTENCE_END = re.compile(r"(?:(?<=[.!?…])|(?<=[.!?…][\"'”’)\]]))\s+")


@dataclass(frozen=True)
class Pair:
    """Two segments and where they came from (``number``: the pair's 1-based line or sentence position)."""

    number: int
    a: str
    b: str
    source: str = "<arg>"

    @property
    def label(self) -> str:
        return line_label(self.number, self.source)


@dataclass
class PairScore:
    """The head's two logits and the probability at index 0, for (A, B) and, with --swap, for (B, A)."""

    pair: Pair
    logits: list[float]
    probability: float
    swapped_logits: list[float] | None = None
    swapped_probability: float | None = None
    truncated: int = 0

    def as_record(self) -> dict[str, Any]:
        rec: dict[str, Any] = {"line": self.pair.number, "a": self.pair.a, "b": self.pair.b,
                               "probability": self.probability, "logits": self.logits,
                               "predicted": self.probability > THRESHOLD}
        if self.swapped_probability is not None:
            rec["swapped"] = {"probability": self.swapped_probability, "logits": self.swapped_logits,
                              "predicted": self.swapped_probability > THRESHOLD}
        if self.truncated:
            rec["truncated_tokens"] = self.truncated
        return rec


def split_sentences(text: str) -> list[str]:
    """``text`` cut after sentence-final punctuation followed by whitespace (a rule of thumb, not a parser:
    "Dr. Smith" is cut too); empty pieces dropped."""
    return [s.strip() for s in SENTENCE_END.split(text) if s.strip()]


def iter_sentence_pairs(lines: Iterable[Line]) -> Iterator[Pair]:
    """Each sentence paired with the next, across lines; a blank line ends a paragraph (no pair across it).
    A pair is numbered by the line its first sentence starts on."""
    previous: tuple[str, Line] | None = None
    for line in lines:
        sentences = split_sentences(line.text)
        if not sentences:
            previous = None
            continue
        for sentence in sentences:
            if previous is not None:
                yield Pair(previous[1].number, previous[0], sentence, previous[1].source)
            previous = (sentence, line)


def iter_tsv_pairs(lines: Iterable[Line]) -> Iterator[Pair]:
    """``A<TAB>B`` lines as pairs; a line without exactly one tab, or with an empty side, is a BadInputError."""
    for line in lines:
        if not line.text.strip():
            continue
        parts = line.text.split("\t")
        if len(parts) != 2 or not parts[0].strip() or not parts[1].strip():
            raise BadInputError(f"{line.label}: expected two segments separated by one tab (A<TAB>B), "
                                f"got {len(parts)} field(s)" + ("" if len(parts) != 2 else " with an empty one"))
        yield Pair(line.number, parts[0].strip(), parts[1].strip(), line.source)


class PairScorer:
    """A loaded NSP or SOP head and its tokenizer; `score` streams `PairScore` records."""

    def __init__(self, objective: str, backend, tok):
        from bertcli.limits import token_limit

        self.objective = objective
        self.backend = backend
        self.tok = tok
        self.max_length = token_limit(backend.config, tok.model_max_length)

    def score(self, pairs: Iterable[Pair], *, swap: bool = False) -> Iterator[PairScore]:
        """Score pairs in token-budget batches, yielding in input order, one window of pairs at a time."""
        batcher = TokenBudgetBatcher(max_tokens=token_budget(None, self.backend), window=WINDOW)
        for window in batcher.windows(pairs):
            forward, cut = self._encode([(p.a, p.b) for p in window])
            backward = self._encode([(p.b, p.a) for p in window])[0] if swap else None
            logits = self._run(batcher, forward)
            back_logits = self._run(batcher, backward) if backward is not None else None
            probs = _first_probability(logits)
            back_probs = _first_probability(back_logits) if back_logits is not None else None
            for i, pair in enumerate(window):
                yield PairScore(pair, logits[i].tolist(), float(probs[i]),
                                swapped_logits=None if back_logits is None else back_logits[i].tolist(),
                                swapped_probability=None if back_probs is None else float(back_probs[i]),
                                truncated=cut[i])

    def _encode(self, pairs: list[tuple[str, str]]) -> tuple[list, list[int]]:
        """The pairs' encodings cut to the model's limit as transformers cuts a pair (longest side first), and
        how many tokens each lost (`bertcli.tokenizer.Tokenizer.encode_pairs`: each side from a prefix of a long
        text, so memory is bounded by the limit whatever a line weighs)."""
        return self.tok.encode_pairs(pairs, self.max_length or None)

    def _run(self, batcher: TokenBudgetBatcher, encs: list):
        import numpy as np

        from bertcli.runner import batch_inputs

        def process(batch: list) -> list:
            out = self.backend.run(*batch_inputs(batch, self.tok, with_types=True))
            (logits,) = out.logits.values()  # the head's one output (torch: logits / sop_logits)
            return list(logits)

        return np.stack(batcher.run_window(encs, [len(e.ids) for e in encs], process))


def _first_probability(logits) -> Any:
    from bertcli.scores import softmax

    return softmax(logits)[:, 0]


def load_scorer(resolved: ResolvedModel, objective: str, *, backend: str = DEFAULT_BACKEND, device: str = "cpu",
                threads: int | None = None) -> PairScorer:
    """The model's NSP or SOP head and its tokenizer; a model without that head is refused (exit 6), naming a
    checkpoint that has one."""
    from bertcli.backends import load_backend
    from bertcli.heads import check_head
    from bertcli.tokenizer import load_tokenizer

    if objective not in OBJECTIVES:
        raise UsageError(f"unknown sentence-pair objective {objective!r}: choose nsp or sop")
    head = OBJECTIVES[objective][0]
    if resolved.has_config:
        check_head(resolved, head)  # refused before any tokenizer or weights are loaded
    tok = load_tokenizer(resolved)
    loaded = load_backend(resolved, head, backend=backend, device=device, tokenizer=tok, threads=threads)
    return PairScorer(objective, loaded, tok)

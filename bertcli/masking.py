"""Masking strategies of the BERT family's pretraining schemes (pure numpy: no model, no tokenizer).

The input is an already tokenized sequence; the output says, token by token, what each scheme would do:

- ``static`` — BERT: ``budget`` tokens chosen uniformly, each replaced 80/10/10 ([MASK] / random token /
  left unchanged). BERT masked once while preparing the data, so every epoch sees the same mask.
- ``dynamic`` — RoBERTa: the same per-sequence procedure, but a fresh mask every time the sequence is seen.
- ``whole-word`` — BERT's whole word masking: whole words (every sub-word piece of a word) are chosen
  until the budget is met; a word that would overshoot it is skipped, as in BERT's create_pretraining_data.
- ``span`` — SpanBERT: spans of whole words, length ℓ ~ Geometric(p=0.2) clipped at 10 words, until the
  budget is spent; one 80/10/10 decision per span; the tokens just outside each span are its boundary
  tokens x_{s-1}, x_{e+1} (the inputs of the span boundary objective).
- ``ngram`` — ALBERT's n-gram masking: n-grams of whole words, n ≤ 3 with p(n) ∝ 1/n (6/11, 3/11, 2/11, the
  ALBERT paper's distribution, its create_pretraining_data's default ``favor_shorter_ngram``), until the budget
  is spent; each selected token replaced 80/10/10 on its own, as ALBERT's code does; masked once in
  preprocessing, like BERT. Selection is `_spans`' with this pmf, except that n-grams may touch (ALBERT has no
  boundary objective to keep the neighbours for).

The budget, for every strategy, is ``max(1, round(n * mask_prob))`` with n the number of maskable
(non-special) tokens and Python's ``round`` (half to even), as in BERT's create_pretraining_data — which
counts [CLS]/[SEP] in n; we do not, so that the budget depends only on the text.

Randomness comes only from the ``numpy.random.Generator`` passed in: the same seed gives the same masks.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from collections.abc import Iterator
from typing import Sequence

import numpy as np

from bertcli.choices import STRATEGIES
from bertcli.errors import UsageError


REPLACE_PROBS: tuple[float, float, float] = (0.8, 0.1, 0.1)
"""BERT's split of the selected tokens: [MASK], random token, unchanged."""

#: The share of tokens each family's pretraining selected, by model_type (ModernBERT raised BERT's 15 % to 30 %).
FAMILY_MASK_PROBS: dict[str, float] = {"modernbert": 0.30}
DEFAULT_MASK_PROB = 0.15


def family_mask_prob(config: dict) -> float:
    """The masking rate the model's family was pretrained with (`FAMILY_MASK_PROBS`, else BERT's 15 %)."""
    return FAMILY_MASK_PROBS.get(str(config.get("model_type") or "").lower(), DEFAULT_MASK_PROB)


SPAN_P = 0.2
MAX_SPAN_WORDS = 10
MAX_NGRAM = 3

RESAMPLED_EACH_EPOCH: dict[str, bool] = {
    "static": False,  # BERT: masked once during preprocessing
    "dynamic": True,  # RoBERTa: a new mask each time a sequence is fed to the model
    "whole-word": False,  # BERT's whole-word models were preprocessed with create_pretraining_data too
    "span": True,  # SpanBERT (fairseq) draws different masks at each epoch
    "ngram": False,  # ALBERT: masked in preprocessing (create_pretraining_data), like BERT
}
"""Whether each scheme draws a new mask every epoch (what `mask_epochs` does unless told otherwise)."""


def span_length_pmf(p: float = SPAN_P, max_words: int = MAX_SPAN_WORDS) -> np.ndarray:
    """The span-length pmf: ``P(ℓ) ∝ (1-p)^(ℓ-1) p`` for ℓ = 1..max_words, renormalised to sum to 1.

    This is SpanBERT's clipping (its code renormalises the truncated geometric; it does not pile the tail
    onto ℓ = max_words). Entry ``i`` is P(ℓ = i + 1).
    """
    if not 0.0 < p <= 1.0:
        raise UsageError(f"span geometric p must be in (0, 1], got {p}")
    if max_words < 1:
        raise UsageError(f"max span length must be at least 1 word, got {max_words}")
    lengths = np.arange(1, max_words + 1)
    weights = p * (1.0 - p) ** (lengths - 1)
    pmf = weights / weights.sum()
    pmf.setflags(write=False)
    return pmf


SPAN_LENGTH_PMF: np.ndarray = span_length_pmf()
"""P(ℓ) for ℓ = 1..10 words with p = 0.2 (read-only); its mean is 3.797 words (the paper's 3.8)."""


def ngram_length_pmf(max_n: int = MAX_NGRAM) -> np.ndarray:
    """ALBERT's n-gram length pmf: ``p(n) = (1/n) / Σ_{k=1..max_n} 1/k``. Entry ``i`` is p(n = i + 1)."""
    if max_n < 1:
        raise UsageError(f"max n-gram length must be at least 1, got {max_n}")
    weights = 1.0 / np.arange(1, max_n + 1)
    pmf = weights / weights.sum()
    pmf.setflags(write=False)
    return pmf


NGRAM_LENGTH_PMF: np.ndarray = ngram_length_pmf()
"""p(n) for n = 1..3 words: 6/11, 3/11, 2/11 (read-only); its mean is 18/11 = 1.636 words."""


def length_pmf(strategy: str, span_pmf: np.ndarray = SPAN_LENGTH_PMF) -> np.ndarray:
    """The length distribution a span-drawing strategy draws from (``span``: ``span_pmf``; ``ngram``: ALBERT's)."""
    return NGRAM_LENGTH_PMF if strategy == "ngram" else np.asarray(span_pmf, dtype=float)


SPAN_STRATEGIES = ("span", "ngram")
"""The strategies that draw spans of whole words with a length distribution."""


@dataclass(frozen=True)
class MaskResult:
    """One masking of one sequence. All per-token lists have the input's length.

    ``targets[i]`` is the original token at a selected position (what the model must predict), else None.
    ``spans`` are token ranges ``[start, end)`` (span strategy only; sorted by position) and
    ``boundaries[k]`` the positions ``(start - 1, end)`` just outside span k — None where that falls off the
    sequence; a boundary may be a special token such as [CLS] or [SEP]. ``span_lengths[k]`` is the length ℓ
    in words drawn for span k: the span holds exactly ℓ words except the one span cut short by the budget.
    """

    strategy: str
    tokens: list[str]
    masked_tokens: list[str]
    action: list[str]
    selected: list[bool]
    targets: list[str | None]
    budget: int
    spans: list[tuple[int, int]] = field(default_factory=list)
    boundaries: list[tuple[int | None, int | None]] = field(default_factory=list)
    span_lengths: list[int] = field(default_factory=list)

    @property
    def positions(self) -> list[int]:
        """Indices of the selected tokens, ascending."""
        return [i for i, chosen in enumerate(self.selected) if chosen]

    @property
    def num_selected(self) -> int:
        """How many tokens were selected for prediction."""
        return sum(self.selected)


def masking_budget(num_maskable: int, mask_prob: float = 0.15) -> int:
    """How many tokens to select: ``max(1, round(n * mask_prob))``, 0 when nothing is maskable, at most n."""
    if num_maskable <= 0:
        return 0
    return min(num_maskable, max(1, round(num_maskable * mask_prob)))


def mask(
    tokens: Sequence[str],
    word_ids: Sequence[int | None] | None = None,
    *,
    strategy: str = "static",
    rng: np.random.Generator | int,
    mask_prob: float = 0.15,
    mask_token: str = "[MASK]",
    vocabulary: Sequence[str] | None = None,
    special_mask: Sequence[bool] | None = None,
    replace_probs: tuple[float, float, float] = REPLACE_PROBS,
    span_pmf: np.ndarray = SPAN_LENGTH_PMF,
) -> MaskResult:
    """Mask one tokenized sequence the way ``strategy`` would, once.

    ``word_ids`` (as a fast tokenizer's ``word_ids()``) groups sub-word pieces into words: a word is a run of
    consecutive tokens with the same id. A None id marks a special token; so does ``special_mask``. Special
    tokens are never selected. Without word_ids every non-special token is a word of its own.
    ``vocabulary`` is what the 10% random replacement draws from, uniformly (the tokenizer's vocabulary, in
    id order); without it, the sequence's own maskable tokens. ``rng`` is a Generator or a seed.
    ``static`` and ``dynamic`` select alike here; they differ over epochs (see `mask_epochs`).
    """
    if strategy not in STRATEGIES:
        raise UsageError(f"unknown masking strategy {strategy!r}", hint=f"choose one of {', '.join(STRATEGIES)}")
    if not 0.0 < mask_prob <= 1.0:
        raise UsageError(f"mask probability must be in (0, 1], got {mask_prob}")
    probs = np.asarray(replace_probs, dtype=float)
    if probs.shape != (3,) or (probs < 0).any() or not np.isclose(probs.sum(), 1.0):
        raise UsageError(f"replace_probs must be three non-negative numbers summing to 1, got {replace_probs}")
    generator = np.random.default_rng(rng)
    tokens = list(tokens)
    words = _words(len(tokens), word_ids, special_mask)
    budget = masking_budget(sum(end - start for start, end in words), mask_prob)
    pool = list(vocabulary) if vocabulary is not None else [tokens[i] for s, e in words for i in range(s, e)]

    spans: list[tuple[int, int]] = []
    span_lengths: list[int] = []
    if strategy in ("static", "dynamic"):
        candidates = np.array([i for s, e in words for i in range(s, e)], dtype=int)
        chosen = np.sort(generator.choice(candidates, size=budget, replace=False)) if budget else candidates[:0]
        groups = [[int(i)] for i in chosen]
    elif strategy == "whole-word":
        groups = [[i] for s, e in _whole_words(words, budget, generator) for i in range(s, e)]
    elif strategy == "span":
        spans, span_lengths = _spans(words, budget, generator, np.asarray(span_pmf, dtype=float))
        groups = [list(range(s, e)) for s, e in spans]
    else:  # ngram: the n-grams may touch; one 80/10/10 decision per token, as ALBERT's code makes them
        spans, span_lengths = _spans(words, budget, generator, NGRAM_LENGTH_PMF, apart=False)
        groups = [[i] for s, e in spans for i in range(s, e)]

    masked, action, selected, targets = _replace(tokens, groups, generator, probs, mask_token, pool)
    boundaries = [(s - 1 if s > 0 else None, e if e < len(tokens) else None) for s, e in spans
                  ] if strategy == "span" else []
    return MaskResult(
        strategy=strategy,
        tokens=tokens,
        masked_tokens=masked,
        action=action,
        selected=selected,
        targets=targets,
        budget=budget,
        spans=spans,
        boundaries=boundaries,
        span_lengths=span_lengths,
    )


def mask_epochs(*args, **kwargs) -> list[MaskResult]:
    """All of `iter_mask_epochs` as a list (the same arguments); for a few epochs, where a list is handy."""
    return list(iter_mask_epochs(*args, **kwargs))


def iter_mask_epochs(
    tokens: Sequence[str],
    word_ids: Sequence[int | None] | None = None,
    *,
    strategy: str = "dynamic",
    rng: np.random.Generator | int,
    epochs: int = 3,
    resample: bool | None = None,
    mask_prob: float = 0.15,
    mask_token: str = "[MASK]",
    vocabulary: Sequence[str] | None = None,
    special_mask: Sequence[bool] | None = None,
    replace_probs: tuple[float, float, float] = REPLACE_PROBS,
    span_pmf: np.ndarray = SPAN_LENGTH_PMF,
) -> Iterator[MaskResult]:
    """The masks one sequence gets over ``epochs`` epochs, one `MaskResult` per epoch, from one rng, made one
    at a time as they are asked for (memory stays that of one epoch, whatever ``epochs`` is).

    ``resample`` says whether each epoch draws a new mask; None means what the scheme did
    (`RESAMPLED_EACH_EPOCH`): ``static`` repeats epoch 1's mask, ``dynamic`` draws a new one each epoch.
    Epoch 1 is the same for both with the same seed, so the two can be shown side by side.
    """
    if epochs < 1:
        raise UsageError(f"epochs must be at least 1, got {epochs}")
    if strategy not in STRATEGIES:
        raise UsageError(f"unknown masking strategy {strategy!r}", hint=f"choose one of {', '.join(STRATEGIES)}")
    generator = np.random.default_rng(rng)
    fresh = RESAMPLED_EACH_EPOCH[strategy] if resample is None else resample
    options = dict(
        strategy=strategy,
        rng=generator,
        mask_prob=mask_prob,
        mask_token=mask_token,
        vocabulary=vocabulary,
        special_mask=special_mask,
        replace_probs=replace_probs,
        span_pmf=span_pmf,
    )
    first = mask(tokens, word_ids, **options)
    yield first
    for _ in range(epochs - 1):
        yield mask(tokens, word_ids, **options) if fresh else _copy(first)


def _copy(result: MaskResult) -> MaskResult:
    """An independent copy (the lists are not shared), for repeating a static mask."""
    return replace(
        result,
        tokens=list(result.tokens),
        masked_tokens=list(result.masked_tokens),
        action=list(result.action),
        selected=list(result.selected),
        targets=list(result.targets),
        spans=list(result.spans),
        boundaries=list(result.boundaries),
        span_lengths=list(result.span_lengths),
    )


def _words(
    n: int, word_ids: Sequence[int | None] | None, special_mask: Sequence[bool] | None
) -> list[tuple[int, int]]:
    """Token ranges ``[start, end)`` of the maskable words, in order."""
    if word_ids is not None and len(word_ids) != n:
        raise ValueError(f"word_ids has {len(word_ids)} entries for {n} tokens")
    if special_mask is not None and len(special_mask) != n:
        raise ValueError(f"special_mask has {len(special_mask)} entries for {n} tokens")
    words: list[tuple[int, int]] = []
    previous: int | None = None
    for i in range(n):
        special = (special_mask is not None and bool(special_mask[i])) or (
            word_ids is not None and word_ids[i] is None
        )
        if special:
            previous = None
            continue
        word = i if word_ids is None else word_ids[i]
        if words and previous is not None and word == previous and words[-1][1] == i:
            words[-1] = (words[-1][0], i + 1)
        else:
            words.append((i, i + 1))
        previous = word
    return words


def _whole_words(words: list[tuple[int, int]], budget: int, rng: np.random.Generator) -> list[tuple[int, int]]:
    """BERT's whole word masking: words in random order, skipping any that would overshoot the budget."""
    chosen: list[tuple[int, int]] = []
    count = 0
    for w in rng.permutation(len(words)):
        if count >= budget:
            break
        start, end = words[w]
        if count + end - start > budget:
            continue
        chosen.append((start, end))
        count += end - start
    return sorted(chosen)


def _spans(
    words: list[tuple[int, int]], budget: int, rng: np.random.Generator, pmf: np.ndarray, *, apart: bool = True
) -> tuple[list[tuple[int, int]], list[int]]:
    """SpanBERT's span selection, in whole words, until ``budget`` tokens are selected.

    Each round draws ℓ from ``pmf`` and a start word uniformly among the places where ℓ free words fit; the
    span then takes words until it has ℓ or the budget is reached (so only the last span can fall short, and
    it overshoots the budget by less than one word's pieces). Spans never overlap, never cross a special
    token, and never touch: a word next to a span is not used by another, so both boundary tokens of every
    span stay unmasked (SpanBERT's code merges touching spans into one instead). When ℓ does not fit
    anywhere it is drawn again — the pmf renormalised over the lengths that do fit; with no room left at
    all, selection stops short of the budget. ``apart=False`` (n-grams) lets spans touch: only taken words are
    out of reach.
    """
    if not words or budget == 0:
        return [], []
    starts = np.array([s for s, _ in words])
    ends = np.array([e for _, e in words])
    sizes = ends - starts
    segment = np.concatenate([[0], np.cumsum(starts[1:] != ends[:-1])])
    joined_left = np.concatenate([[False], segment[1:] == segment[:-1]])  # word w-1 is adjacent to w
    joined_right = np.concatenate([segment[:-1] == segment[1:], [False]])  # word w+1 is adjacent to w
    taken = np.zeros(len(words), dtype=bool)
    count = 0
    drawn: list[tuple[int, int, int]] = []  # (first word, words taken, ℓ drawn)
    while count < budget:
        usable = ~taken
        if apart:
            blocked_left = np.concatenate([[False], taken[:-1]]) & joined_left
            blocked_right = np.concatenate([taken[1:], [False]]) & joined_right
            usable &= ~blocked_left & ~blocked_right
        run_end = np.flatnonzero(usable & ~(np.concatenate([usable[1:], [False]]) & joined_right))
        if run_end.size == 0:
            break
        free = np.flatnonzero(usable)
        room = run_end[np.searchsorted(run_end, free)] - free + 1  # free words from here to the run's end
        longest = int(min(room.max(), len(pmf)))
        weights = pmf[:longest] / pmf[:longest].sum()
        length = int(rng.choice(np.arange(1, longest + 1), p=weights))
        fits = free[room >= length]
        first = int(fits[rng.integers(fits.size)])
        n_words = 0
        for w in range(first, first + length):
            taken[w] = True
            count += int(sizes[w])
            n_words += 1
            if count >= budget:
                break
        drawn.append((first, n_words, length))
    drawn.sort()
    spans = [(int(starts[first]), int(ends[first + n - 1])) for first, n, _ in drawn]
    return spans, [length for _, _, length in drawn]


def _replace(
    tokens: list[str],
    groups: list[list[int]],
    rng: np.random.Generator,
    probs: np.ndarray,
    mask_token: str,
    pool: list[str],
) -> tuple[list[str], list[str], list[bool], list[str | None]]:
    """Apply one mask/random/same decision per group (a token, or a whole span); random draws per token."""
    masked = list(tokens)
    action = ["keep"] * len(tokens)
    selected = [False] * len(tokens)
    targets: list[str | None] = [None] * len(tokens)
    u = rng.random(len(groups))
    decisions = np.where(u < probs[0], "mask", np.where(u < probs[0] + probs[1], "random", "same"))
    n_random = sum(len(g) for g, d in zip(groups, decisions) if d == "random")
    if n_random and not pool:
        raise ValueError("no vocabulary to draw random replacement tokens from")
    draws = iter(rng.integers(len(pool), size=n_random).tolist()) if n_random else iter(())
    for group, decision in zip(groups, decisions):
        for i in group:
            selected[i] = True
            targets[i] = tokens[i]
            action[i] = str(decision)
            if decision == "mask":
                masked[i] = mask_token
            elif decision == "random":
                masked[i] = pool[next(draws)]
    return masked, action, selected, targets


# ---------------------------------------------------------------------------------------------------------
# statistics over many samples (what `bertcli mask --samples N` reports)

CHI2_CRITICAL_001: dict[int, float] = {1: 10.828, 2: 13.816, 3: 16.266, 4: 18.467, 5: 20.515, 6: 22.458,
                                       7: 24.322, 8: 26.124, 9: 27.877}
"""Chi-square critical values at alpha = 0.001, by degrees of freedom."""


def chi_square(observed: Sequence[int], expected_probs: Sequence[float]) -> dict:
    """Pearson's chi-square of counts against probabilities, with the alpha = 0.001 verdict.

    ``consistent`` is None when some expected count is below 5 (too few samples for the test).
    """
    counts = np.asarray(observed, dtype=float)
    probs = np.asarray(expected_probs, dtype=float)
    keep = probs > 0
    expected = counts.sum() * probs[keep]
    stat = float(((counts[keep] - expected) ** 2 / expected).sum()) if counts.sum() else 0.0
    df = int(keep.sum()) - 1
    critical = CHI2_CRITICAL_001.get(df)
    enough = bool(counts.sum()) and bool((expected >= 5).all()) and critical is not None
    return {"chi2": round(stat, 3), "df": df, "critical": critical,
            "consistent": (stat <= critical) if enough else None}


def sample_statistics(
    tokens: Sequence[str],
    word_ids: Sequence[int | None] | None = None,
    *,
    strategy: str,
    rng: np.random.Generator | int,
    samples: int,
    mask_prob: float = 0.15,
    mask_token: str = "[MASK]",
    vocabulary: Sequence[str] | None = None,
    special_mask: Sequence[bool] | None = None,
    replace_probs: tuple[float, float, float] = REPLACE_PROBS,
    span_pmf: np.ndarray = SPAN_LENGTH_PMF,
) -> dict:
    """Mask one sequence ``samples`` times and compare what happened with the scheme's distributions.

    Reports the masking rate (selected / maskable tokens) against the budget, the mask/random/same split
    against ``replace_probs`` (counted per decision: a token, or a whole span for ``span``), and for
    ``span`` and ``ngram`` the drawn lengths against ``span_pmf`` (``ngram``: p(n) ∝ 1/n) renormalised over the lengths that fit in the
    longest run of words (exact while the text has room; a short, crowded text shifts draws shorter).
    """
    if samples < 1:
        raise UsageError(f"samples must be at least 1, got {samples}")
    generator = np.random.default_rng(rng)
    options = dict(strategy=strategy, mask_prob=mask_prob, mask_token=mask_token, vocabulary=vocabulary,
                   special_mask=special_mask, replace_probs=replace_probs, span_pmf=span_pmf)
    words = _words(len(tokens), word_ids, special_mask)
    maskable = sum(e - s for s, e in words)
    budget = masking_budget(maskable, mask_prob)
    # Running totals, not one count per sample: memory stays flat whatever ``samples`` is.
    selected_sum, selected_min, selected_max = 0, None, 0
    decisions = {"mask": 0, "random": 0, "same": 0}
    token_actions = {"mask": 0, "random": 0, "same": 0}
    pmf = length_pmf(strategy, span_pmf)
    lengths = np.zeros(len(pmf), dtype=int)
    for _ in range(samples):
        result = mask(tokens, word_ids, rng=generator, **options)
        selected = result.num_selected
        selected_sum += selected
        selected_min = selected if selected_min is None else min(selected_min, selected)
        selected_max = max(selected_max, selected)
        for a in result.action:
            if a != "keep":
                token_actions[a] += 1
        for length in result.span_lengths:
            lengths[length - 1] += 1
        if strategy == "span":
            for s, _ in result.spans:
                decisions[result.action[s]] += 1
        else:
            for a in result.action:
                if a != "keep":
                    decisions[a] += 1
    split = {
        "unit": "span" if strategy == "span" else "token",
        "counts": decisions,
        "token_counts": token_actions,
        "observed": _fractions(decisions),
        "expected": dict(zip(("mask", "random", "same"), map(float, replace_probs))),
        **chi_square(list(decisions.values()), replace_probs),
    }
    stats: dict = {
        "strategy": strategy,
        "samples": samples,
        "maskable": maskable,
        "budget": budget,
        "rate": {
            "nominal": mask_prob,
            "expected": budget / maskable if maskable else 0.0,
            "observed": float(selected_sum / (samples * maskable)) if maskable else 0.0,
            "selected_min": int(selected_min),
            "selected_mean": float(selected_sum / samples),
            "selected_max": int(selected_max),
        },
        "split": split,
    }
    if strategy in SPAN_STRATEGIES:
        room = min(len(pmf), _longest_run(words))
        expected = np.zeros(len(pmf))
        if room:
            expected[:room] = pmf[:room] / pmf[:room].sum()
        total = int(lengths.sum())
        stats["span_lengths"] = {
            "lengths": list(range(1, len(pmf) + 1)),
            "counts": lengths.tolist(),
            "observed": (lengths / total).tolist() if total else [0.0] * len(pmf),
            "expected": expected.tolist(),
            "mean_observed": float((np.arange(1, len(pmf) + 1) * lengths).sum() / total) if total else 0.0,
            "mean_expected": float((np.arange(1, len(pmf) + 1) * expected).sum()),
            "longest_run": _longest_run(words),
            **chi_square(lengths.tolist(), expected.tolist()),
        }
    return stats


def _fractions(counts: dict[str, int]) -> dict[str, float]:
    total = sum(counts.values())
    return {k: (v / total if total else 0.0) for k, v in counts.items()}


def _longest_run(words: list[tuple[int, int]]) -> int:
    """The most words in one run of adjacent words (words not separated by a special token)."""
    best = run = 0
    for i, (start, _) in enumerate(words):
        run = run + 1 if i and words[i - 1][1] == start else 1
        best = max(best, run)
    return best

"""Tests for bertcli.masking: exact behaviour, and statistics checked against the schemes' distributions.

Statistical tests use fixed seeds (so they are deterministic) and chi-square critical values at
alpha = 0.001, so a wrong distribution (a 90/5/5 split, an unrenormalised pmf, per-token decisions in
spans, biased positions) fails them.
"""

from __future__ import annotations

import numpy as np
import pytest

from bertcli.errors import UsageError
from bertcli.masking import (
    NGRAM_LENGTH_PMF,
    RESAMPLED_EACH_EPOCH,
    SPAN_LENGTH_PMF,
    STRATEGIES,
    MaskResult,
    mask,
    mask_epochs,
    masking_budget,
    ngram_length_pmf,
    sample_statistics,
    span_length_pmf,
)

# chi-square critical values at alpha = 0.001, by degrees of freedom
CHI2_CRIT = {2: 13.816, 3: 16.266, 9: 27.877, 29: 58.301}

# bert-base-uncased pieces of "i had a sudden epiphany"
SENTENCE = ["[CLS]", "i", "had", "a", "sudden", "ep", "##iph", "##any", "[SEP]"]
SENTENCE_WORD_IDS = [None, 0, 1, 2, 3, 4, 4, 4, None]


def _document(n_words: int, *, pair: bool = False) -> tuple[list[str], list[int | None]]:
    """[CLS] words... [SEP] (words... [SEP]): words of 1, 2 or 3 pieces in a fixed pattern."""
    tokens: list[str] = ["[CLS]"]
    word_ids: list[int | None] = [None]
    halves = [n_words // 2, n_words - n_words // 2] if pair else [n_words]
    for half in halves:
        for w in range(half):
            pieces = 1 + (w % 3 == 2) + (w % 7 == 6)
            tokens += [f"w{w}"] + [f"##p{w}.{k}" for k in range(1, pieces)]
            word_ids += [w] * pieces
        tokens.append("[SEP]")
        word_ids.append(None)
    return tokens, word_ids


def _word_ranges(word_ids: list[int | None]) -> list[tuple[int, int]]:
    """Token ranges of words: runs of one non-None id (independent of the module's own grouping)."""
    ranges: list[tuple[int, int]] = []
    for i, wid in enumerate(word_ids):
        if wid is None:
            continue
        if ranges and ranges[-1][1] == i and word_ids[i - 1] == wid:
            ranges[-1] = (ranges[-1][0], i + 1)
        else:
            ranges.append((i, i + 1))
    return ranges


def _chi_square(observed, probs) -> float:
    observed = np.asarray(observed, dtype=float)
    expected = observed.sum() * np.asarray(probs, dtype=float)
    return float(((observed - expected) ** 2 / expected).sum())


def _action_counts(results: list[MaskResult]) -> np.ndarray:
    acts = [a for r in results for a in r.action if a != "keep"]
    return np.array([acts.count("mask"), acts.count("random"), acts.count("same")])


# --- the span-length distribution -------------------------------------------------------------------------


def test_span_length_pmf_is_the_clipped_renormalised_geometric():
    assert SPAN_LENGTH_PMF.shape == (10,)
    assert SPAN_LENGTH_PMF.sum() == pytest.approx(1.0, abs=1e-12)
    assert SPAN_LENGTH_PMF[0] == pytest.approx(0.2 / (1 - 0.8**10), abs=1e-12)  # 0.224058...
    assert np.allclose(SPAN_LENGTH_PMF[1:] / SPAN_LENGTH_PMF[:-1], 0.8)
    mean = float((np.arange(1, 11) * SPAN_LENGTH_PMF).sum())
    assert mean == pytest.approx(1 / 0.2 - 10 * 0.8**10 / (1 - 0.8**10), abs=1e-12)  # truncated geometric
    assert mean == pytest.approx(3.797097504, abs=1e-9)
    assert round(mean, 1) == 3.8  # the paper's mean span length
    assert not SPAN_LENGTH_PMF.flags.writeable
    assert np.array_equal(span_length_pmf(0.5, 2), [2 / 3, 1 / 3])


@pytest.mark.parametrize(
    ("n", "prob", "budget"),
    [(0, 0.15, 0), (1, 0.15, 1), (3, 0.15, 1), (10, 0.15, 2), (20, 0.15, 3), (30, 0.15, 4), (100, 0.15, 15),
     (7, 1.0, 7), (5, 0.5, 2)],
)
def test_masking_budget_rounds_like_create_pretraining_data(n, prob, budget):
    # max(1, round(n * p)); Python's round: 4.5 -> 4, 2.5 -> 2 (half to even)
    assert masking_budget(n, prob) == budget


# --- determinism and input handling -----------------------------------------------------------------------


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_same_seed_gives_same_mask_and_seeds_differ(strategy):
    tokens, word_ids = _document(60)
    a = mask(tokens, word_ids, strategy=strategy, rng=np.random.default_rng(7))
    b = mask(tokens, word_ids, strategy=strategy, rng=np.random.default_rng(7))
    c = mask(tokens, word_ids, strategy=strategy, rng=7)  # a seed works as well as a Generator
    assert a == b == c
    others = [mask(tokens, word_ids, strategy=strategy, rng=s).selected for s in range(8, 13)]
    assert any(sel != a.selected for sel in others)


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_special_tokens_are_never_selected(strategy):
    tokens, word_ids = _document(40, pair=True)
    special_mask = [False] * len(tokens)
    special_mask[5] = True  # a special token given only by special_mask, inside a word run
    specials = {i for i, w in enumerate(word_ids) if w is None} | {5}
    for seed in range(200):
        r = mask(tokens, word_ids, strategy=strategy, rng=seed, mask_prob=0.5, special_mask=special_mask)
        assert r.num_selected > 0
        for i in specials:
            assert (r.selected[i], r.action[i], r.masked_tokens[i], r.targets[i]) == (False, "keep", tokens[i], None)


def test_without_word_ids_every_non_special_token_is_a_word():
    tokens = ["<s>", "It", "Ġwas", "Ġa", "Ġgreat", "Ġday", "</s>"]
    special = [True, False, False, False, False, False, True]
    r = mask(tokens, strategy="whole-word", rng=0, mask_prob=0.4, special_mask=special)
    assert r.budget == 2 and r.num_selected == 2  # single-token words always fit the budget exactly
    assert not r.selected[0] and not r.selected[6]


def test_deterministic_replacements_give_exact_outputs():
    every = dict(rng=0, mask_prob=1.0)
    r = mask(SENTENCE, SENTENCE_WORD_IDS, strategy="static", replace_probs=(1, 0, 0), mask_token="<mask>", **every)
    assert r.masked_tokens == ["[CLS]", "<mask>", "<mask>", "<mask>", "<mask>", "<mask>", "<mask>", "<mask>", "[SEP]"]
    assert r.action == ["keep"] + ["mask"] * 7 + ["keep"]
    assert r.targets == [None, "i", "had", "a", "sudden", "ep", "##iph", "##any", None]
    assert r.positions == [1, 2, 3, 4, 5, 6, 7] and r.budget == 7
    r = mask(SENTENCE, SENTENCE_WORD_IDS, strategy="static", replace_probs=(0, 0, 1), **every)
    assert r.masked_tokens == SENTENCE and r.action == ["keep"] + ["same"] * 7 + ["keep"]
    r = mask(SENTENCE, SENTENCE_WORD_IDS, strategy="static", replace_probs=(0, 1, 0), vocabulary=["x"], **every)
    assert r.masked_tokens == ["[CLS]"] + ["x"] * 7 + ["[SEP]"] and r.action[1:8] == ["random"] * 7


def test_bad_arguments():
    with pytest.raises(UsageError, match="unknown masking strategy"):
        mask(SENTENCE, SENTENCE_WORD_IDS, strategy="random", rng=0)
    with pytest.raises(UsageError):
        mask(SENTENCE, SENTENCE_WORD_IDS, rng=0, mask_prob=0.0)
    with pytest.raises(UsageError):
        mask(SENTENCE, SENTENCE_WORD_IDS, rng=0, replace_probs=(0.8, 0.1, 0.2))
    with pytest.raises(UsageError):
        mask_epochs(SENTENCE, SENTENCE_WORD_IDS, rng=0, epochs=0)
    with pytest.raises(ValueError, match="word_ids has 2 entries for 9 tokens"):
        mask(SENTENCE, [None, 0], rng=0)


# --- static (BERT) ----------------------------------------------------------------------------------------


def test_static_selects_exactly_the_budget():
    for n_words in (1, 3, 7, 10, 33, 100):
        tokens, word_ids = _document(n_words)
        n = sum(w is not None for w in word_ids)
        for seed in range(20):
            r = mask(tokens, word_ids, strategy="static", rng=seed)
            assert r.num_selected == r.budget == masking_budget(n)


def test_static_selection_is_uniform_over_positions():
    tokens = [f"t{i}" for i in range(30)]  # no specials, 30 positions, budget round(4.5) = 4
    rng = np.random.default_rng(123)
    counts = np.zeros(30)
    for _ in range(3000):
        counts += mask(tokens, strategy="static", rng=rng).selected
    assert counts.sum() == 3000 * 4
    assert _chi_square(counts, np.full(30, 1 / 30)) < CHI2_CRIT[29]


def test_static_replacement_is_80_10_10_and_random_tokens_are_uniform():
    tokens, word_ids = _document(20)
    vocabulary = ["alpha", "beta", "gamma", "delta"]
    rng = np.random.default_rng(2024)
    results = [mask(tokens, word_ids, strategy="static", rng=rng, vocabulary=vocabulary) for _ in range(4000)]
    counts = _action_counts(results)
    assert counts.sum() == 4000 * results[0].budget  # 4000 * 4 decisions
    assert _chi_square(counts, [0.8, 0.1, 0.1]) < CHI2_CRIT[2]
    random_tokens = []
    for r in results:
        for tok, orig, act, tgt in zip(r.masked_tokens, r.tokens, r.action, r.targets):
            assert tgt == (None if act == "keep" else orig)
            assert tok == {"keep": orig, "same": orig, "mask": "[MASK]"}.get(act, tok)
            if act == "random":
                random_tokens.append(tok)
    assert set(random_tokens) <= set(vocabulary)
    assert _chi_square([random_tokens.count(v) for v in vocabulary], [0.25] * 4) < CHI2_CRIT[3]


# --- dynamic (RoBERTa) vs static over epochs ---------------------------------------------------------------


def test_dynamic_draws_a_new_mask_each_epoch_static_repeats_epoch_one():
    tokens, word_ids = _document(40)
    dynamic = mask_epochs(tokens, word_ids, strategy="dynamic", rng=11, epochs=3)
    static = mask_epochs(tokens, word_ids, strategy="static", rng=11, epochs=3)
    assert len(dynamic) == len(static) == 3
    assert len({tuple(r.positions) for r in dynamic}) == 3
    assert static[0] == static[1] == static[2]
    assert static[1].selected is not static[0].selected  # copies, not shared lists
    assert static[0].positions == dynamic[0].positions  # same seed: epoch 1 is the same mask
    assert static[0].masked_tokens == dynamic[0].masked_tokens
    # the first epoch of either is what one call to mask() gives with that seed
    assert mask(tokens, word_ids, strategy="dynamic", rng=11) == dynamic[0]


def test_epoch_resampling_defaults_and_override():
    assert RESAMPLED_EACH_EPOCH == {"static": False, "dynamic": True, "whole-word": False, "span": True,
                                    "ngram": False}
    tokens, word_ids = _document(60)
    span = mask_epochs(tokens, word_ids, strategy="span", rng=3, epochs=4)
    assert len({tuple(r.spans) for r in span}) > 1
    ww = mask_epochs(tokens, word_ids, strategy="whole-word", rng=3, epochs=4)
    assert len({tuple(r.positions) for r in ww}) == 1
    forced = mask_epochs(tokens, word_ids, strategy="static", rng=3, epochs=4, resample=True)
    assert len({tuple(r.positions) for r in forced}) > 1


# --- whole-word masking -----------------------------------------------------------------------------------


def test_whole_word_never_splits_a_word_nor_exceeds_the_budget():
    tokens, word_ids = _document(50, pair=True)
    words = _word_ranges(word_ids)
    split_decisions = 0
    for seed in range(300):
        r = mask(tokens, word_ids, strategy="whole-word", rng=seed)
        assert 0 < r.num_selected <= r.budget
        for s, e in words:
            assert len(set(r.selected[s:e])) == 1, (seed, s, e)
            if r.selected[s] and len(set(r.action[s:e])) > 1:
                split_decisions += 1
        # it only stops short when every unchosen word is too long for what is left
        left = r.budget - r.num_selected
        assert all(e - s > left for s, e in words if not r.selected[s])
    # BERT decides 80/10/10 per token, so the pieces of one masked word can be treated differently
    assert split_decisions > 0


def test_whole_word_replacement_is_80_10_10_per_token():
    tokens, word_ids = _document(30)
    rng = np.random.default_rng(5)
    counts = _action_counts([mask(tokens, word_ids, strategy="whole-word", rng=rng) for _ in range(3000)])
    assert counts.sum() > 3000 * 5
    assert _chi_square(counts, [0.8, 0.1, 0.1]) < CHI2_CRIT[2]


def test_whole_word_skips_a_word_longer_than_the_budget():
    r = mask(["[CLS]", "ep", "##iph", "##any", "[SEP]"], [None, 0, 0, 0, None], strategy="whole-word", rng=0)
    assert r.budget == 1 and r.num_selected == 0  # as BERT: the 3-piece word would overshoot, so nothing


# --- span masking (SpanBERT) ------------------------------------------------------------------------------


def test_drawn_span_lengths_follow_the_clipped_geometric():
    tokens, word_ids = _document(400)  # long enough that every length always fits
    rng = np.random.default_rng(0)  # calibration: over seeds 0..19 the statistic averages 9.3 (df = 9)
    lengths = []
    for _ in range(400):
        lengths += mask(tokens, word_ids, strategy="span", rng=rng).span_lengths
    assert len(lengths) > 5000
    hist = np.bincount(lengths, minlength=12)
    assert hist[0] == 0 and hist[11:].sum() == 0  # lengths are 1..10 words
    assert _chi_square(hist[1:11], SPAN_LENGTH_PMF) < CHI2_CRIT[9]
    assert np.mean(lengths) == pytest.approx(3.8, abs=0.1)


def test_spans_are_whole_non_touching_words_and_boundaries_lie_just_outside():
    tokens, word_ids = _document(80, pair=True)
    words = _word_ranges(word_ids)
    word_starts, word_ends = {s for s, _ in words}, {e for _, e in words}
    sizes = {s: e - s for s, e in words}
    for seed in range(300):
        r = mask(tokens, word_ids, strategy="span", rng=seed)
        assert r.spans == sorted(r.spans) and len(r.spans) == len(r.boundaries) == len(r.span_lengths)
        covered = [False] * len(tokens)
        short = 0
        for (s, e), (left, right), drawn in zip(r.spans, r.boundaries, r.span_lengths):
            assert s in word_starts and e in word_ends  # whole words
            assert all(w is not None for w in word_ids[s:e])  # no special token inside
            assert (left, right) == (s - 1, e)  # the document is wrapped in [CLS] ... [SEP]
            assert not r.selected[left] and not r.selected[right]  # boundaries are observed tokens
            n_words = sum(1 for ws in word_starts if s <= ws < e)
            assert 1 <= n_words <= drawn <= 10
            short += n_words < drawn
            for i in range(s, e):
                covered[i] = True
        assert covered == r.selected  # selected tokens are exactly the spans
        assert short <= 1  # only the span that met the budget is cut short
        last_word = max(sizes[ws] for s, e in r.spans for ws in word_starts if s <= ws < e)
        assert r.budget <= r.num_selected < r.budget + last_word


def test_span_replacement_is_decided_once_per_span():
    tokens, word_ids = _document(40)
    vocabulary = ["alpha", "beta", "gamma"]
    rng = np.random.default_rng(31)
    span_actions = []
    for _ in range(2000):
        r = mask(tokens, word_ids, strategy="span", rng=rng, vocabulary=vocabulary)
        for s, e in r.spans:
            assert len(set(r.action[s:e])) == 1
            span_actions.append(r.action[s])
            if r.action[s] == "random":
                assert set(r.masked_tokens[s:e]) <= set(vocabulary)
            else:
                expected = ["[MASK]"] * (e - s) if r.action[s] == "mask" else tokens[s:e]
                assert r.masked_tokens[s:e] == expected
    counts = [span_actions.count(a) for a in ("mask", "random", "same")]
    assert sum(counts) > 3000
    assert _chi_square(counts, [0.8, 0.1, 0.1]) < CHI2_CRIT[2]


def test_span_exact_cases_and_boundaries_at_the_edges():
    r = mask(["[CLS]", "ep", "##iph", "##any", "[SEP]"], [None, 0, 0, 0, None], strategy="span", rng=0,
             replace_probs=(1, 0, 0))
    # budget 1, but a span takes whole words: the one word, all three pieces
    assert (r.budget, r.spans, r.boundaries, r.span_lengths) == (1, [(1, 4)], [(0, 4)], [1])
    assert r.masked_tokens == ["[CLS]", "[MASK]", "[MASK]", "[MASK]", "[SEP]"]
    r = mask(["ep", "##iph", "##any"], [0, 0, 0], strategy="span", rng=0)
    assert (r.spans, r.boundaries) == ([(0, 3)], [(None, None)])  # nothing outside the sequence


def test_span_stops_short_when_no_room_is_left():
    # 3 one-token words, budget 3: spans may not touch, so after the first span there is at most one place
    r = mask(["a", "b", "c"], strategy="span", rng=0, mask_prob=1.0)
    assert r.budget == 3 and 1 <= r.num_selected < 3
    for (s, e), (left, right) in zip(r.spans, r.boundaries):
        assert left is None or not r.selected[left]
        assert right is None or not r.selected[right]


# --- n-gram masking (ALBERT) ------------------------------------------------------------------------------


def test_ngram_length_pmf_is_one_over_n():
    assert NGRAM_LENGTH_PMF.tolist() == pytest.approx([6 / 11, 3 / 11, 2 / 11])
    assert ngram_length_pmf(2).tolist() == pytest.approx([2 / 3, 1 / 3])
    assert not RESAMPLED_EACH_EPOCH["ngram"]  # ALBERT masks in preprocessing, like BERT


def test_drawn_ngram_lengths_follow_one_over_n():
    tokens, word_ids = _document(400)  # long enough that every length always fits
    rng = np.random.default_rng(0)
    lengths = []
    for _ in range(90):
        lengths += mask(tokens, word_ids, strategy="ngram", rng=rng).span_lengths
    assert len(lengths) > 3000
    hist = np.bincount(lengths, minlength=5)
    assert hist[0] == 0 and hist[4:].sum() == 0  # n is 1..3 words
    assert _chi_square(hist[1:4], NGRAM_LENGTH_PMF) < CHI2_CRIT[2]
    # the same draws under the span pmf's first three lengths, renormalised, fail: the test tells them apart
    assert _chi_square(hist[1:4], SPAN_LENGTH_PMF[:3] / SPAN_LENGTH_PMF[:3].sum()) > CHI2_CRIT[2]


def test_ngrams_are_whole_words_may_touch_and_are_replaced_per_token():
    tokens, word_ids = _document(60, pair=True)
    words = _word_ranges(word_ids)
    word_starts, word_ends = {s for s, _ in words}, {e for _, e in words}
    rng = np.random.default_rng(2)
    touching = mixed = 0
    results = []
    for _ in range(800):
        r = mask(tokens, word_ids, strategy="ngram", rng=rng)
        results.append(r)
        assert r.boundaries == [] and len(r.spans) == len(r.span_lengths)
        covered = [False] * len(tokens)
        for (s, e), drawn in zip(r.spans, r.span_lengths):
            assert s in word_starts and e in word_ends and all(w is not None for w in word_ids[s:e])
            assert 1 <= sum(1 for ws in word_starts if s <= ws < e) <= drawn <= 3
            covered[s:e] = [True] * (e - s)
            mixed += len(set(r.action[s:e])) > 1
        assert covered == r.selected
        touching += any(e == s2 for (_, e), (s2, _) in zip(r.spans, r.spans[1:]))
    assert touching > 50 and mixed > 50  # n-grams may touch; 80/10/10 is decided per token
    assert _chi_square(_action_counts(results), [0.8, 0.1, 0.1]) < CHI2_CRIT[2]


def test_ngram_sample_statistics_check_one_over_n():
    tokens, word_ids = _document(120)
    stats = sample_statistics(tokens, word_ids, strategy="ngram", rng=4, samples=300)
    lengths = stats["span_lengths"]
    assert lengths["lengths"] == [1, 2, 3] and lengths["expected"] == pytest.approx([6 / 11, 3 / 11, 2 / 11])
    assert lengths["consistent"] is True and lengths["mean_expected"] == pytest.approx(18 / 11)
    assert stats["split"]["unit"] == "token" and stats["split"]["consistent"] is True

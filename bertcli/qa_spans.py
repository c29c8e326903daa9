"""Extractive question answering without torch: context windows in, ranked answer spans out.

transformers 5 dropped the question-answering pipeline; this module redoes what transformers 4.57's
`QuestionAnsweringPipeline` did around the model, so that the same model and input give the same answers,
scores and character offsets:

- `make_windows` splits (question, context) into model inputs the way the pipeline's fast-tokenizer path did:
  truncation `only_second`, `stride=doc_stride`, overflowing windows, offsets, and a `p_mask` that leaves only
  the context (plus the CLS token, for the null answer) open.
- `decode_window` turns one window's start/end logits into probabilities (masked softmax) and its best spans
  (outer product, upper band of width `max_answer_len`), plus the window's null score.
- `answer` merges the windows: spans are aligned to whole words, answers with the same text are merged by
  summing their scores, the null answer competes with score `min(null scores)`, and the top `top_k` are kept.

Where this differs from 4.57 it is only in cases where the pipeline returned garbage or crashed: spans of
probability 0 (e.g. start after end, picked when there are fewer valid spans than candidates asked for) are
dropped; a literal "[CLS]" typed inside the question is not opened as an answer token; a window with exactly
as many span cells as candidates asked for no longer crashes `argpartition`; and for left-padding tokenizers
(`pad_on_right=False`, none of the BERT family) the question is masked, where the pipeline masked nothing.
`max_question_len` is not applied: 4.57 used it only for slow (Python) tokenizers, never for fast ones.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

#: Names under which BERT-family vocabularies keep their CLS token (BERT/ALBERT/ELECTRA, RoBERTa, XLNet-style).
CLS_TOKEN_NAMES = ("[CLS]", "<s>", "<cls>")

#: Value that masked logits get before the softmax (the pipeline's choice, kept for identical scores).
MASKED_LOGIT = -10000.0


@dataclass(frozen=True)
class Window:
    """One model input: the question plus one slice of the context (all lists have the window's length).

    `offsets` are character offsets into the context for context tokens and (0, 0) elsewhere; `p_mask` is 1
    where a token cannot be part of an answer (question, special tokens) and 0 for context tokens and the CLS
    token (open only for the null answer); `null_index` is where that CLS token sits (0 for BERT-family models).
    """

    index: int
    input_ids: list[int]
    attention_mask: list[int]
    token_type_ids: list[int]
    tokens: list[str]
    offsets: list[tuple[int, int]]
    sequence_ids: list[int | None]
    word_ids: list[int | None]
    p_mask: list[int]
    context_sequence: int = 1
    null_index: int = 0

    def __len__(self) -> int:
        return len(self.input_ids)


@dataclass(frozen=True)
class SpanCandidate:
    """A span of one window, in token positions (inclusive), with its probability start_p * end_p."""

    window: int
    start_token: int
    end_token: int
    score: float


@dataclass(frozen=True)
class WindowDecoding:
    """What one window offers: its best spans (best first) and the probability of its null answer."""

    spans: list[SpanCandidate]
    null_score: float


#: The last tokenizer copied and its copy: copying costs ~25 ms for a 30k vocabulary, far more than the
#: encoding itself, so questions asked of the same tokenizer reuse one copy.
_last_copy: tuple[Any, Any] | None = None


def _working_copy(tokenizer: Any) -> Any:
    """A copy of a `tokenizers.Tokenizer` with padding and truncation off (the caller's object is untouched)."""
    global _last_copy
    if _last_copy is not None and _last_copy[0] is tokenizer:
        copy = _last_copy[1]
    else:
        from tokenizers import Tokenizer

        copy = Tokenizer.from_str(tokenizer.to_str())
        _last_copy = (tokenizer, copy)
    copy.no_padding()
    copy.no_truncation()
    return copy


def _cls_token_id(tokenizer: Any) -> int | None:
    for name in CLS_TOKEN_NAMES:
        token_id = tokenizer.token_to_id(name)
        if token_id is not None:
            return token_id
    return None


def make_windows(
    tokenizer: Any,
    question: str,
    context: str,
    *,
    max_length: int = 384,
    doc_stride: int | None = None,
    max_question_len: int = 64,
    pad_on_right: bool = True,
    cls_token_id: int | None = None,
) -> list[Window]:
    """Split (question, context) into windows of at most `max_length` tokens, overlapping by `doc_stride`.

    `tokenizer` is a `tokenizers.Tokenizer`; its own padding/truncation settings are ignored. `doc_stride`
    defaults to min(max_length // 2, 128) as in the pipeline. `max_question_len` is accepted for the
    pipeline's signature but, as in 4.57 with fast tokenizers, the question is never truncated.
    `cls_token_id` defaults to the id of the first of `CLS_TOKEN_NAMES` in the vocabulary.
    Raises ValueError for an empty question or context, or when the windows cannot be made (stride too
    large, question leaving no room for the context).
    """
    del max_question_len  # unused by 4.57's fast-tokenizer path; kept so callers can pass it through
    if not question or not question.strip():
        raise ValueError("the question is empty")
    if not context or not context.strip():
        raise ValueError("the context is empty")
    if max_length < 1:
        raise ValueError(f"max_length ({max_length}) must be at least 1")
    if doc_stride is None:
        doc_stride = min(max_length // 2, 128)
    if doc_stride < 0:
        raise ValueError(f"doc_stride ({doc_stride}) must not be negative")

    tok = _working_copy(tokenizer)
    if cls_token_id is None:
        cls_token_id = _cls_token_id(tok)
    single_specials = tok.num_special_tokens_to_add(False)
    pair_specials = tok.num_special_tokens_to_add(True)
    if doc_stride > max_length or doc_stride >= max_length - single_specials:
        # The pipeline refused doc_stride > max_seq_len; tokenizers refuses stride >= max_length - specials.
        raise ValueError(
            f"doc_stride {doc_stride} must be smaller than max_length {max_length} minus "
            f"{single_specials} special tokens ({max_length - single_specials})"
        )

    first, second = (question, context) if pad_on_right else (context, question)
    question_sequence, context_sequence = (0, 1) if pad_on_right else (1, 0)
    full = tok.encode(first, second)
    if len(full.ids) > max_length:
        question_tokens = sum(1 for s in full.sequence_ids if s == question_sequence)
        room = max_length - pair_specials - question_tokens
        if room <= 0:
            raise ValueError(
                f"the question is {question_tokens} tokens long: with max_length {max_length} and "
                f"{pair_specials} special tokens no room is left for the context"
            )
        if doc_stride >= room:
            # tokenizers would panic here; say it plainly instead.
            raise ValueError(
                f"doc_stride {doc_stride} must be smaller than the context room in a window "
                f"({max_length} max_length - {pair_specials} special tokens - {question_tokens} question "
                f"tokens = {room})"
            )
        tok.enable_truncation(
            max_length, stride=doc_stride, strategy="only_second" if pad_on_right else "only_first"
        )
        encoding = tok.encode(first, second)
        encodings = [encoding, *encoding.overflowing]
    else:
        encodings = [full]

    windows = []
    for index, enc in enumerate(encodings):
        sequence_ids = list(enc.sequence_ids)
        input_ids = list(enc.ids)
        is_context = [s == context_sequence for s in sequence_ids]
        p_mask = [0 if c else 1 for c in is_context]
        null_index = 0
        cls_positions = [
            i for i, (t, s) in enumerate(zip(input_ids, sequence_ids)) if t == cls_token_id and s is None
        ]
        for i in cls_positions:
            p_mask[i] = 0
        if cls_positions:
            null_index = cls_positions[0]
        windows.append(
            Window(
                index=index,
                input_ids=input_ids,
                attention_mask=list(enc.attention_mask),
                token_type_ids=list(enc.type_ids),
                tokens=list(enc.tokens),
                offsets=[tuple(o) if c else (0, 0) for o, c in zip(enc.offsets, is_context)],
                sequence_ids=sequence_ids,
                word_ids=[w if c else None for w, c in zip(enc.word_ids, is_context)],
                p_mask=p_mask,
                context_sequence=context_sequence,
                null_index=null_index,
            )
        )
    return windows


def _as_logits(values: Any, length: int, name: str) -> np.ndarray:
    array = np.asarray(values)
    if array.ndim == 2 and array.shape[0] == 1:
        array = array[0]
    if array.ndim != 1:
        raise ValueError(f"{name} must be one row of logits, got shape {array.shape}")
    if array.shape[0] < length:
        raise ValueError(f"{name} has {array.shape[0]} values for a window of {length} tokens")
    if array.dtype not in (np.float32, np.float64):
        array = array.astype(np.float32)
    # Logits past the window's length are padding from batching: masked, they add 0 to the softmax.
    return array[:length][None, :]


def _softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return shifted / shifted.sum()


def decode_window(
    start_logits: Any,
    end_logits: Any,
    window: Window,
    *,
    top_k: int = 1,
    max_answer_len: int = 15,
) -> WindowDecoding:
    """The `top_k` most probable spans of one window (best first) and its null score.

    Probabilities are softmaxes over the logits with every token that cannot answer set to -10000 (the CLS
    token stays open); a span scores start_p * end_p, must start at or before its end and be at most
    `max_answer_len` tokens long. The null score is start_p * end_p of the CLS token, which is then closed.
    Logits may be longer than the window (batch padding); the extra values are ignored.
    """
    if top_k < 1:
        raise ValueError(f"top_k ({top_k}) must be at least 1")
    if max_answer_len < 1:
        raise ValueError(f"max_answer_len ({max_answer_len}) must be at least 1")
    n = len(window)
    start = _as_logits(start_logits, n, "start_logits")
    end = _as_logits(end_logits, n, "end_logits")

    allowed = (1 - np.asarray(window.p_mask, dtype=np.int64)) & np.asarray(window.attention_mask, dtype=np.int64)
    closed = (allowed == 0)[None, :]
    start = _softmax(np.where(closed, MASKED_LOGIT, start))
    end = _softmax(np.where(closed, MASKED_LOGIT, end))

    null = window.null_index
    null_score = float((start[0, null] * end[0, null]).item())
    start[0, null] = end[0, null] = 0.0

    # Score of every (start, end) pair; keep end >= start and end - start < max_answer_len.
    outer = np.matmul(start[:, :, None], end[:, None, :])
    candidates = np.tril(np.triu(outer), max_answer_len - 1)
    flat = candidates.flatten()
    if top_k == 1:
        order = np.array([np.argmax(flat)])
    elif len(flat) <= top_k:  # the pipeline's `<` let argpartition fail when len == top_k
        order = np.argsort(-flat)
    else:
        part = np.argpartition(-flat, top_k)[0:top_k]
        order = part[np.argsort(-flat[part])]
    starts, ends = np.unravel_index(order, candidates.shape)[1:]

    spans = []
    for s, e in zip(starts.tolist(), ends.tolist()):
        score = candidates[0, s, e]
        # Zero-probability cells are not spans (start > end, masked tokens): the pipeline kept some.
        if score > 0 and allowed[s] and allowed[e]:
            spans.append(SpanCandidate(window=window.index, start_token=s, end_token=e, score=float(score.item())))
    return WindowDecoding(spans=spans, null_score=null_score)


def _word_chars(window: Window, word: int) -> tuple[int, int]:
    """Character span of `word` within this window's context (like `Encoding.word_to_chars`)."""
    positions = [
        i
        for i, (w, s) in enumerate(zip(window.word_ids, window.sequence_ids))
        if w == word and s == window.context_sequence
    ]
    return window.offsets[positions[0]][0], window.offsets[positions[-1]][1]


def span_chars(window: Window, start_token: int, end_token: int, *, align_to_words: bool = True) -> tuple[int, int]:
    """Character offsets [start, end) in the context of a token span; widened to whole words if asked."""
    if align_to_words:
        start_word, end_word = window.word_ids[start_token], window.word_ids[end_token]
        if start_word is not None and end_word is not None:
            return _word_chars(window, start_word)[0], _word_chars(window, end_word)[1]
        # No word information (some tokenizers): fall back to the tokens' own offsets, as the pipeline did.
    return window.offsets[start_token][0], window.offsets[end_token][1]


def answer(
    windows: Sequence[Window],
    start_logits_list: Sequence[Any],
    end_logits_list: Sequence[Any],
    context: str,
    *,
    top_k: int = 1,
    max_answer_len: int = 15,
    handle_impossible_answer: bool = False,
    null_threshold: float = 0.0,
    align_to_words: bool = True,
) -> list[dict]:
    """Rank the answers of all windows: at most `top_k` records, best first.

    Each record is {"answer", "score", "start", "end", "window", "no_answer", "null_score"} with
    context[start:end] == answer. Spans are taken per window (top_k * 2 + 10 candidates when aligning to
    words, as 4.57 did), widened to whole words, and answers of equal text (case-insensitive) are merged by
    summing scores (the first one keeps its offsets and window). `null_score` is the smallest null score over
    the windows. With `handle_impossible_answer` the null answer ("" at 0:0, no_answer True, score
    null_score) competes too: it ranks above a span when null_score - span_score > null_threshold, so a
    threshold of 0 gives the pipeline's order (ties go to the span); without it the threshold is unused.
    May return fewer than `top_k` records, or none for a context without tokens.
    """
    if top_k < 1:
        raise ValueError(f"top_k ({top_k}) must be at least 1")
    if max_answer_len < 1:
        raise ValueError(f"max_answer_len ({max_answer_len}) must be at least 1")
    if not (len(windows) == len(start_logits_list) == len(end_logits_list)):
        raise ValueError(
            f"{len(windows)} windows but {len(start_logits_list)} start and {len(end_logits_list)} end logit rows"
        )
    if not windows:
        raise ValueError("no windows to decode")

    candidates_per_window = top_k * 2 + 10 if align_to_words else top_k
    records: list[dict] = []
    by_text: dict[str, dict] = {}  # lower-cased answer → its record (a list scan is quadratic on long contexts)
    null_scores = []
    for window, start_logits, end_logits in zip(windows, start_logits_list, end_logits_list):
        decoded = decode_window(
            start_logits, end_logits, window, top_k=candidates_per_window, max_answer_len=max_answer_len
        )
        null_scores.append(decoded.null_score)
        for span in decoded.spans:
            start, end = span_chars(window, span.start_token, span.end_token, align_to_words=align_to_words)
            text = context[start:end]
            same = by_text.get(text.lower())
            if same is not None:
                same["score"] += span.score
            else:
                record = {
                    "answer": text,
                    "score": span.score,
                    "start": start,
                    "end": end,
                    "window": window.index,
                    "no_answer": False,
                }
                records.append(record)
                by_text[text.lower()] = record

    null_score = min(null_scores)
    null_window = windows[null_scores.index(null_score)].index
    ranked = [(r["score"], r) for r in records]
    if handle_impossible_answer:
        null_record = {
            "answer": "",
            "score": null_score,
            "start": 0,
            "end": 0,
            "window": null_window,
            "no_answer": True,
        }
        ranked.append((null_score - null_threshold, null_record))
    ranked.sort(key=lambda pair: pair[0], reverse=True)  # stable: the null answer loses ties

    return [{**record, "null_score": null_score} for _, record in ranked[:top_k]]

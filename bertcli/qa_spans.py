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
from collections.abc import Iterator
from typing import Any, Sequence

import numpy as np

from bertcli import textcut

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


#: Contexts longer than this many characters are tokenized in chunks of about this size (see `iter_windows`).
CHUNK_CHARS = 65536

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
    large, question leaving no room for the context). All windows as a list: see `iter_windows` for a stream.
    """
    return list(iter_windows(tokenizer, question, context, max_length=max_length, doc_stride=doc_stride,
                             max_question_len=max_question_len, pad_on_right=pad_on_right,
                             cls_token_id=cls_token_id))


def iter_windows(
    tokenizer: Any,
    question: str,
    context: str,
    *,
    max_length: int = 384,
    doc_stride: int | None = None,
    max_question_len: int = 64,
    pad_on_right: bool = True,
    cls_token_id: int | None = None,
    chunk_chars: int = CHUNK_CHARS,
) -> Iterator[Window]:
    """The windows of `make_windows`, made one at a time as they are asked for.

    A context of up to `chunk_chars` characters is encoded with the question in one call (tokenizers'
    overflowing windows, as the pipeline did). A longer one is tokenized alone, in chunks of about
    `chunk_chars` characters cut just before a whitespace run (each chunk re-reads the word before its cut,
    so nothing at its start is tokenized differently), and each window is the question's tokens plus a
    slice of the context's: memory stays that of one chunk and one window, whatever the context's length,
    and the windows are those of the one-call path (tests/test_hardening_memory.py compares them on each
    tokenizer type). Tokenizers whose pre-tokenizer may join text across whitespace, or that strip text,
    are always encoded in one call. Errors are raised (ValueError) before the first window is yielded.
    """
    del max_question_len  # unused by 4.57's fast-tokenizer path; kept so callers can pass it through
    doc_stride = _check_window_args(question, context, max_length, doc_stride)

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
    context_sequence = 1 if pad_on_right else 0
    if len(context) > chunk_chars and pad_on_right and textcut.chunk_safe(tok):
        streamed = _streamed_windows(tok, question, context, max_length, doc_stride, pair_specials, cls_token_id,
                                     chunk_chars)
        if streamed is not None:
            yield from streamed
            return
    for index, enc in enumerate(
        _encodings(tok, question, context, max_length, doc_stride, pair_specials, pad_on_right)
    ):
        yield _window(index, enc, context_sequence, cls_token_id)


def _window(index: int, enc: Any, context_sequence: int, cls_token_id: int | None) -> Window:
    """One window of the one-call path from its encoding: only context tokens keep offsets and word ids, and
    only they and the CLS token (the null answer) can be picked (p_mask 0)."""
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
    return Window(
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


def _check_window_args(question: str, context: str, max_length: int, doc_stride: int | None) -> int:
    """The ValueErrors of an empty question or context, or impossible sizes; returns the stride to use (by
    default min(max_length // 2, 128), as the pipeline)."""
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
    return doc_stride


def _room_errors(question_tokens: int, room: int, max_length: int, pair_specials: int, doc_stride: int) -> None:
    """The ValueErrors of a question that leaves the context no room, or too little for the stride."""
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


def _encodings(tok, question, context, max_length, doc_stride, pair_specials, pad_on_right) -> list:
    """The one-call path: the pair encoded whole, then with tokenizers' overflowing windows if too long."""
    first, second = (question, context) if pad_on_right else (context, question)
    question_sequence = 0 if pad_on_right else 1
    full = tok.encode(first, second)
    if len(full.ids) <= max_length:
        return [full]
    question_tokens = sum(1 for s in full.sequence_ids if s == question_sequence)
    _room_errors(question_tokens, max_length - pair_specials - question_tokens, max_length, pair_specials,
                 doc_stride)
    tok.enable_truncation(max_length, stride=doc_stride, strategy="only_second" if pad_on_right else "only_first")
    try:
        encoding = tok.encode(first, second)
    finally:
        tok.no_truncation()
    return [encoding, *encoding.overflowing]


def _streamed_windows(tok, question, context, max_length, doc_stride, pair_specials, cls_token_id, chunk_chars):
    """`iter_windows` for long contexts: the question's part of every window taken from one small pair
    encoding, the context's slices from `textcut.tokens_in_chunks`. Checks run now (ValueError); returns a generator of
    windows, or None when the pair does not have the expected layout (question, then one run of context
    tokens with one type id), for the one-call path to do."""
    buf = textcut.TokenBuffer(tok, context, chunk_chars)
    buf.fill(1)
    if not buf.ids:
        return None
    first_start, first_end = buf.offsets[0]
    probe = tok.encode(question, context[first_start:first_end] or context[: first_end + 1])
    sequence_ids = list(probe.sequence_ids)
    inside = [i for i, s in enumerate(sequence_ids) if s == 1]
    if not inside or inside != list(range(inside[0], inside[-1] + 1)):
        return None
    types = list(probe.type_ids)
    context_type = types[inside[0]]
    if any(types[i] != context_type for i in inside):
        return None
    question_tokens = sum(1 for s in sequence_ids if s == 0)
    room = max_length - pair_specials - question_tokens
    buf.fill(max(room, 0) + 1)
    truncated = len(buf.ids) > room
    if truncated:
        _room_errors(question_tokens, room, max_length, pair_specials, doc_stride)

    probe_ids, probe_tokens = list(probe.ids), list(probe.tokens)
    head = (probe_ids[: inside[0]], types[: inside[0]], probe_tokens[: inside[0]], sequence_ids[: inside[0]])
    after = inside[-1] + 1
    tail = (probe_ids[after:], types[after:], probe_tokens[after:], sequence_ids[after:])
    step = room - doc_stride if truncated else room

    def windows() -> Iterator[Window]:
        # tokenizers' overflow: parts [k * step, k * step + room) until the one that reaches the end.
        index = 0
        none_head, none_tail = [None] * len(head[0]), [None] * len(tail[0])
        zero_head, zero_tail = [(0, 0)] * len(head[0]), [(0, 0)] * len(tail[0])
        while True:
            start = index * step
            buf.fill(start + room + 1)  # one token more than the part: tells whether the part is the last
            offset = start - buf.base
            stop = min(len(buf.ids), offset + room)
            last = stop == len(buf.ids)
            n_context = stop - offset
            input_ids = head[0] + buf.ids[offset:stop] + tail[0]
            sequence = head[3] + [1] * n_context + tail[3]
            p_mask = [0 if s == 1 else 1 for s in sequence]
            cls_positions = [i for i, (t, s) in enumerate(zip(input_ids, sequence)) if t == cls_token_id and s is None]
            for i in cls_positions:
                p_mask[i] = 0
            yield Window(
                index=index,
                input_ids=input_ids,
                attention_mask=[1] * len(input_ids),
                token_type_ids=head[1] + [context_type] * n_context + tail[1],
                tokens=head[2] + buf.tokens[offset:stop] + tail[2],
                offsets=zero_head + buf.offsets[offset:stop] + zero_tail,
                sequence_ids=sequence,
                word_ids=none_head + buf.words[offset:stop] + none_tail,
                p_mask=p_mask,
                context_sequence=1,
                null_index=cls_positions[0] if cls_positions else 0,
            )
            if last:
                return
            buf.drop(offset + step)  # what no later window needs
            index += 1

    return windows()


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

    ranker = AnswerRanker(context, top_k=top_k, max_answer_len=max_answer_len,
                          handle_impossible_answer=handle_impossible_answer, null_threshold=null_threshold,
                          align_to_words=align_to_words)
    for window, start_logits, end_logits in zip(windows, start_logits_list, end_logits_list):
        ranker.add(window, start_logits, end_logits)
    return ranker.result()


class AnswerRanker:
    """`answer`, one window at a time: `add` each window's logits as they come, then `result()`.

    Nothing of a window is kept once it is added, only its candidate answers (at most top_k * 2 + 10 texts
    per window, merged by text as the pipeline did) and the smallest null score so far, so a stream of
    windows costs a few bytes per distinct candidate answer, not the windows or their logits.
    """

    def __init__(self, context: str, *, top_k: int = 1, max_answer_len: int = 15,
                 handle_impossible_answer: bool = False, null_threshold: float = 0.0, align_to_words: bool = True):
        if top_k < 1:
            raise ValueError(f"top_k ({top_k}) must be at least 1")
        if max_answer_len < 1:
            raise ValueError(f"max_answer_len ({max_answer_len}) must be at least 1")
        self.context = context
        self.top_k = top_k
        self.max_answer_len = max_answer_len
        self.handle_impossible_answer = handle_impossible_answer
        self.null_threshold = null_threshold
        self.align_to_words = align_to_words
        self.candidates_per_window = top_k * 2 + 10 if align_to_words else top_k
        self.records: list[dict] = []
        self.by_text: dict[str, dict] = {}  # lower-cased answer → its record (a list scan is quadratic)
        self.null_score: float | None = None
        self.null_window = 0
        self.windows = 0

    def add(self, window: Window, start_logits: Any, end_logits: Any) -> None:
        decoded = decode_window(
            start_logits, end_logits, window, top_k=self.candidates_per_window, max_answer_len=self.max_answer_len
        )
        self.windows += 1
        if self.null_score is None or decoded.null_score < self.null_score:  # the first of equal minima
            self.null_score, self.null_window = decoded.null_score, window.index
        for span in decoded.spans:
            start, end = span_chars(window, span.start_token, span.end_token, align_to_words=self.align_to_words)
            text = self.context[start:end]
            same = self.by_text.get(text.lower())
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
                self.records.append(record)
                self.by_text[text.lower()] = record

    def result(self) -> list[dict]:
        """The `top_k` best records (see `answer`); ValueError when no window was added."""
        if not self.windows:
            raise ValueError("no windows to decode")
        null_score = self.null_score
        ranked = [(r["score"], r) for r in self.records]
        if self.handle_impossible_answer:
            null_record = {
                "answer": "",
                "score": null_score,
                "start": 0,
                "end": 0,
                "window": self.null_window,
                "no_answer": True,
            }
            ranked.append((null_score - self.null_threshold, null_record))
        ranked.sort(key=lambda pair: pair[0], reverse=True)  # stable: the null answer loses ties
        return [{**record, "null_score": null_score} for _, record in ranked[: self.top_k]]

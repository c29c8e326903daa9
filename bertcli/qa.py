"""Extractive question answering: a *ForQuestionAnswering model run over context windows, in batches.

Window splitting and span decoding live in `bertcli.qa_spans` (pure, no torch); this module adds the model.
The windows of one or many (question, context) pairs are made lazily (`qa_spans.iter_windows`: a long context
is tokenized in chunks), packed into padded batches of at most `batch_size` windows and run under
`torch.inference_mode`; each window's logits go straight into its question's `AnswerRanker` and are dropped,
so memory stays bounded by the batch, not by the context: a 5 MB context is thousands of windows but never
more than one chunk of tokens and one batch of windows, hidden states and logits at a time (plus the
context itself and a few bytes per window: its summary and its candidate answers).

Defaults are those of transformers 4.57's question-answering pipeline (max_length min(model max, 384),
doc_stride min(max_length // 2, 128), max_answer_len 15), except that the null answer of SQuAD 2.0 models is
allowed by default (`allow_null`); `allow_null=False` is the pipeline's `handle_impossible_answer=False`.
torch is imported inside the functions.
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from bertcli import qa_spans
from bertcli.errors import BadInputError, UsageError
from bertcli.qa_spans import Window

#: The pipeline's ceiling on the window length when none is given.
DEFAULT_MAX_LENGTH = 384


@dataclass(frozen=True)
class QAOptions:
    """How to split contexts and pick answers (None = the pipeline's default)."""

    max_length: int | None = None
    doc_stride: int | None = None
    max_answer_len: int = 15
    top_k: int = 1
    allow_null: bool = True
    null_threshold: float = 0.0
    batch_size: int = 32
    align_to_words: bool = True


@dataclass
class QAItem:
    """One question over one context; `key` is the caller's (e.g. a jsonl line number and id)."""

    question: str
    context: str
    key: Any = None
    error: Exception | None = None  # set when the item could not even be read


@dataclass
class QAResult:
    """The answers of one item (best first), or the error that stopped it, plus what its windows held
    (`window_summary` of each: the windows themselves are not kept)."""

    item: QAItem
    answers: list[dict]
    windows: list[dict]
    error: Exception | None = None


def window_summary(window: Window) -> dict:
    """Which part of the context a window holds: token count, context tokens, character span."""
    spans = [o for o, s in zip(window.offsets, window.sequence_ids) if s == window.context_sequence]
    return {
        "window": window.index,
        "tokens": len(window),
        "context_tokens": len(spans),
        "start": spans[0][0] if spans else 0,
        "end": spans[-1][1] if spans else 0,
    }


@dataclass
class _Pending:
    """An item being answered: its result, its ranker, and how many of its windows are still in a batch."""

    result: QAResult
    ranker: qa_spans.AnswerRanker | None = None
    in_batch: int = 0
    complete: bool = False  # every window of it has been made


def window_error(exc: ValueError) -> Exception:
    """`make_windows`' ValueError as a bertcli error: stride problems are usage errors, the rest bad input."""
    message = str(exc)
    if message.startswith("doc_stride") or message.startswith("max_length"):
        return UsageError(message)
    return BadInputError(message)


class QuestionAnswerer:
    """A loaded QA model and its tokenizer, answering questions over contexts of any length."""

    def __init__(self, loaded: Any, tokenizer: Any, options: QAOptions | None = None):
        self.loaded = loaded  # a bertcli.backends.Backend for the qa head
        self.tokenizer = tokenizer
        self.options = options or QAOptions()
        self.max_length = check_options(tokenizer, loaded.config, self.options)
        self.doc_stride = self.options.doc_stride
        self.pad_id = _pad_id(tokenizer, loaded.config)
        self.use_token_types = loaded.accepts_token_types and (getattr(loaded.config, "type_vocab_size", 2) or 0) > 1

    # ------------------------------------------------------------------------------------------ windows

    def windows(self, question: str, context: str) -> list[Window]:
        """The model inputs for one (question, context); BadInputError/UsageError when they cannot be made."""
        return list(self.iter_windows(question, context))

    def iter_windows(self, question: str, context: str) -> Iterator[Window]:
        """`windows`, made as they are asked for; the errors are raised here, before the first is made."""
        if not question or not question.strip():
            raise BadInputError("the question is empty")
        if not context or not context.strip():
            raise BadInputError("the context is empty")
        stream = qa_spans.iter_windows(
            self.tokenizer.backend, question, context, max_length=self.max_length, doc_stride=self.doc_stride
        )
        try:
            first = next(stream)
        except ValueError as exc:
            raise window_error(exc) from exc
        return itertools.chain([first], stream)

    # ------------------------------------------------------------------------------------------ model

    def logits(self, windows: list[Window]) -> list[tuple[np.ndarray, np.ndarray]]:
        """(start, end) logits of each window, trimmed to its length; the model runs `batch_size` at a time."""
        out: list[tuple[np.ndarray, np.ndarray]] = []
        size = self.options.batch_size
        for first in range(0, len(windows), size):
            out.extend(self._run_batch(windows[first : first + size]))
        return out

    def _run_batch(self, batch: list[Window]) -> list[tuple[np.ndarray, np.ndarray]]:
        width = max(len(w) for w in batch)
        ids = np.full((len(batch), width), self.pad_id, dtype=np.int64)
        mask = np.zeros((len(batch), width), dtype=np.int64)
        types = np.zeros((len(batch), width), dtype=np.int64)
        for row, window in enumerate(batch):
            n = len(window)
            ids[row, :n] = window.input_ids
            mask[row, :n] = window.attention_mask
            types[row, :n] = window.token_type_ids
        result = self.loaded.run(ids, mask, types if self.use_token_types else None)
        starts, ends = result.logits["start_logits"], result.logits["end_logits"]
        return [(starts[row, : len(w)].copy(), ends[row, : len(w)].copy()) for row, w in enumerate(batch)]

    # ------------------------------------------------------------------------------------------ answers

    def ranker(self, context: str) -> qa_spans.AnswerRanker:
        """An `AnswerRanker` for one context with this answerer's options."""
        opts = self.options
        return qa_spans.AnswerRanker(
            context,
            top_k=opts.top_k,
            max_answer_len=opts.max_answer_len,
            handle_impossible_answer=opts.allow_null,
            null_threshold=opts.null_threshold,
            align_to_words=opts.align_to_words,
        )

    @staticmethod
    def _ranked(ranker: qa_spans.AnswerRanker) -> list[dict]:
        records = ranker.result()
        if not records:  # a context without a single token to answer with, and no null answer allowed
            records = [{"answer": "", "score": 0.0, "start": 0, "end": 0, "window": 0, "no_answer": True,
                        "null_score": None}]
        return records

    def decode(self, windows: list[Window], logits: list[tuple[np.ndarray, np.ndarray]], context: str) -> list[dict]:
        """Ranked answer records for one context from its windows' logits (see `qa_spans.answer`)."""
        ranker = self.ranker(context)
        for window, (start, end) in zip(windows, logits):
            ranker.add(window, start, end)
        return self._ranked(ranker)

    def answer(self, question: str, context: str) -> list[dict]:
        """The `top_k` best answers to one question (best first), its windows streamed in batches."""
        (result,) = self.answer_all([QAItem(question, context)])
        if result.error is not None:
            raise result.error
        return result.answers

    def answer_all(self, items: Iterable[QAItem], *, progress: Callable[[int], None] | None = None) -> Iterator[QAResult]:
        """Answer a stream of items in order, packing the windows of consecutive items into shared batches.

        An item that cannot be windowed (empty question, stride too large …), or one that arrives with its
        `error` already set (e.g. a malformed input line), comes back as a QAResult with `error`; the others
        go on. Windows are made lazily and each batch of `batch_size` windows is run as soon as it is full,
        its logits handed to the rankers of their items; a result is yielded once its item and every item
        before it are done. `progress`, if given, is called with the number of windows each batch ran.
        """
        size = self.options.batch_size
        queue: deque[_Pending] = deque()
        batch: list[tuple[_Pending, Window]] = []

        def run() -> None:
            logits = self.logits([window for _, window in batch])
            for (pending, window), (start, end) in zip(batch, logits):
                pending.ranker.add(window, start, end)
                pending.in_batch -= 1
            if progress is not None:
                progress(len(batch))
            batch.clear()

        def ready() -> Iterator[QAResult]:
            while queue and queue[0].complete and queue[0].in_batch == 0:
                pending = queue.popleft()
                if pending.ranker is not None:
                    pending.result.answers = self._ranked(pending.ranker)
                yield pending.result

        for item in items:
            if item.error is not None:
                queue.append(_Pending(QAResult(item, [], [], error=item.error), complete=True))
                yield from ready()
                continue
            try:
                windows = self.iter_windows(item.question, item.context)
            except (BadInputError, UsageError) as exc:
                queue.append(_Pending(QAResult(item, [], [], error=exc), complete=True))
                yield from ready()
                continue
            pending = _Pending(QAResult(item, [], []), ranker=self.ranker(item.context))
            queue.append(pending)
            for window in windows:
                pending.result.windows.append(window_summary(window))
                pending.in_batch += 1
                batch.append((pending, window))
                if len(batch) >= size:
                    run()
                    yield from ready()
            pending.complete = True
            yield from ready()
        if batch:
            run()
        yield from ready()


def effective_max_length(tokenizer: Any, config: Any, requested: int | None) -> int:
    """The window length: `requested`, else min(model max, 384) like the pipeline; over the model's limit is a
    usage error (the model has no position embeddings beyond it). `config` is a config object or dict."""
    from bertcli.limits import token_limit

    limit = token_limit(config, tokenizer.model_max_length)
    if requested is None:
        return min(limit, DEFAULT_MAX_LENGTH) if limit else DEFAULT_MAX_LENGTH
    if requested < 8:
        raise UsageError(f"--max-length {requested} is too small for a question and a context (at least 8)")
    if limit and requested > limit:
        raise UsageError(f"--max-length {requested} is more than this model takes ({limit} tokens)")
    return requested


def check_options(tokenizer: Any, config: Any, options: QAOptions) -> int:
    """Refuse bad options before any model or input is loaded; return the window length to use.

    The stride is checked against the window here (it does not depend on the question); whether a given
    question leaves room for the stride is only known per question (`QuestionAnswerer.windows`).
    """
    if options.top_k < 1:
        raise UsageError(f"--top-k must be at least 1 (got {options.top_k})")
    if options.max_answer_len < 1:
        raise UsageError(f"--max-answer-length must be at least 1 (got {options.max_answer_len})")
    if options.batch_size < 1:
        raise UsageError(f"--batch-size must be at least 1 (got {options.batch_size})")
    max_length = effective_max_length(tokenizer, config, options.max_length)
    try:
        qa_spans.make_windows(tokenizer.backend, "?", "?", max_length=max_length, doc_stride=options.doc_stride)
    except ValueError as exc:
        raise window_error(exc) from exc
    return max_length


def _pad_id(tokenizer: Any, config: Any) -> int:
    pad = tokenizer.special_tokens.get("pad_token")
    token_id = tokenizer.token_id(pad) if pad else None
    if token_id is None:
        token_id = getattr(config, "pad_token_id", None)
    return int(token_id) if token_id is not None else 0


def load_answerer(resolved: Any, *, device: str = "auto", options: QAOptions | None = None,
                  backend: str = "auto") -> QuestionAnswerer:
    """Load `resolved`'s QA head and tokenizer (ModelFileError naming `embed` when the model has no QA head).

    The head and the options are checked from config.json and the tokenizer first, before torch is loaded.
    """
    from bertcli.backends import load_backend
    from bertcli.heads import check_head
    from bertcli.tokenizer import load_tokenizer

    options = options or QAOptions()
    if resolved.has_config:
        check_head(resolved, "qa")
    tokenizer = load_tokenizer(resolved)
    check_options(tokenizer, resolved.config if resolved.has_config else {}, options)
    loaded = load_backend(resolved, "qa", backend=backend, device=device, tokenizer=tokenizer)
    return QuestionAnswerer(loaded, tokenizer, options)

"""Sequence classification: a label and a score per text (or text pair), and cross-encoder reranking.

`Classifier` wraps a model loaded for the ``seqcls`` head (`bertcli.backends.load_backend`) and its tokenizer.
`Classifier.classify` streams inputs through the token-budget batcher (`bertcli.batching`) and yields one
`Classification` per input, in input order, a window at a time (memory stays bounded by the window, however long
the stream). Scores are the head's logits through `bertcli.scores` (softmax, sigmoid or none; the default as
transformers' text-classification pipeline picks it), labels from the config's ``id2label``.

`rerank` scores (query, document) pairs as sentence-transformers' ``CrossEncoder.predict`` does (its default
activation: the folder's ``sentence_transformers.activation_fn``, else sigmoid for a one-label model) and
orders them as ``CrossEncoder.rank`` does.

numpy only at import; torch loads with the backend.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bertcli.backends import DEFAULT_BACKEND
from bertcli.batching import DEFAULT_WINDOW, TokenBudgetBatcher
from bertcli.errors import BadInputError, ModelFileError, UsageError
from bertcli.inputs import Line, check_utf8, line_label, split_pair
from bertcli.scores import FUNCTIONS, apply, default_function

#: sentence-transformers' activation_fn paths (config.json's ``sentence_transformers``) → our score function
CROSS_ENCODER_ACTIVATIONS = {
    "torch.nn.modules.activation.Sigmoid": "sigmoid",
    "torch.nn.modules.linear.Identity": "none",
    "torch.nn.Sigmoid": "sigmoid",
    "torch.nn.Identity": "none",
}


@dataclass(frozen=True)
class Item:
    """One input: a text, its optional pair, and where it came from (for messages)."""

    number: int
    text: str
    pair: str | None = None
    source: str = "<arg>"

    @property
    def label(self) -> str:
        return line_label(self.number, self.source)


@dataclass
class Classification:
    """The scores of one input: ``scores[i]`` belongs to ``labels[i]`` of the classifier."""

    item: Item
    scores: np.ndarray  # (num_labels,) float32
    truncated: bool = False


@dataclass
class ClassifyStats:
    """Counters of a run (for the warnings and the benchmark)."""

    texts: int = 0
    batches: int = 0
    truncated: int = 0
    first_truncated: str | None = None


def items_from(lines: Iterable[Line], *, pair: str | None = None, pairs: bool = False) -> Iterator[Item]:
    """Input lines as `Item`s: ``pair`` joins every line (one TEXT with --pair); ``pairs`` splits each line at its
    first tab ('TEXT<TAB>PAIR'), a line without a tab being a `BadInputError`."""
    if pair is not None and pairs:
        raise UsageError("--pair and --pairs do not go together")
    if pair is not None:
        check_utf8(pair, "--pair")
    for line in lines:
        if pairs:
            yield Item(line.number, *split_pair(line), line.source)
        else:
            yield Item(line.number, line.text, pair, line.source)


@dataclass
class ClassifyOptions:
    """How to run the classifier: what `load_classifier` needs (None: the model's or the device's default)."""

    max_length: int | None = None
    device: str = "cpu"
    threads: int | None = None
    max_tokens: int | None = None
    batch_size: int | None = None
    backend: str = DEFAULT_BACKEND
    window: int = DEFAULT_WINDOW
    function: str | None = None  # softmax | sigmoid | none; None: the pipeline's default for the model

    def check(self) -> None:
        from bertcli.backends import check_backend, check_runnable

        if self.function is not None and self.function not in FUNCTIONS:
            raise UsageError(f"unknown --function {self.function!r}: choose {', '.join(FUNCTIONS)}")
        if self.batch_size is not None and self.batch_size < 1:
            raise UsageError("--batch-size must be at least 1")
        if self.max_tokens is not None and self.max_tokens < 1:
            raise UsageError("--max-tokens must be at least 1")
        self.backend = check_backend(self.backend)
        check_runnable(self.backend, device=self.device)


@dataclass
class Classifier:
    """A sequence-classification model and its tokenizer. Build one with `load_classifier`."""

    model: Any  # a bertcli.backends.Backend for the seqcls head
    tokenizer: Any  # bertcli.tokenizer.LoadedTokenizer
    labels: list[str]
    function: str
    max_length: int | None
    batcher: TokenBudgetBatcher = field(default_factory=TokenBudgetBatcher)
    stats: ClassifyStats = field(default_factory=ClassifyStats)

    def classify(self, items: Iterable[Item], *,
                 on_batch: Callable[[int], None] | None = None) -> Iterator[Classification]:
        """One `Classification` per item, in input order (``on_batch(rows)`` after each batch)."""
        with self.model.session():
            for window in self.batcher.windows(items):
                yield from self._window(window, on_batch)

    def _window(self, window: list[Item], on_batch: Callable[[int], None] | None) -> list[Classification]:
        from bertcli.batching import trim_heap

        encodings = self._encode(window)
        lengths = [len(e.ids) for e in encodings]
        results: list = [None] * len(window)
        for batch in self.batcher.plan(lengths):
            logits = self._forward([encodings[i] for i in batch])
            scores = apply(self.function, logits)
            trim_heap()
            for row, i in enumerate(batch):
                results[i] = Classification(window[i], scores[row], bool(encodings[i].overflowing))
            self.stats.batches += 1
            if on_batch is not None:
                on_batch(len(batch))
        return results

    def _encode(self, window: list[Item]) -> list:
        """Tokenize a window, cut to max_length (longest first for pairs, as the pipeline's truncation=True)."""
        texts = [item.text for item in window]
        if any(item.pair is not None for item in window):
            if not all(item.pair is not None for item in window):
                raise UsageError("give every input a pair, or none")
            encodings = self.tokenizer.encode_batch(texts, [item.pair for item in window], max_length=self.max_length)
        else:
            encodings = self.tokenizer.encode_batch(texts, max_length=self.max_length)
        for item, enc in zip(window, encodings):
            self.stats.texts += 1
            if enc.overflowing:
                self.stats.truncated += 1
                if self.stats.first_truncated is None:
                    self.stats.first_truncated = item.label
        return encodings

    def _forward(self, encodings: list) -> np.ndarray:
        """One batch through the backend: its logits, (batch, num_labels) float32."""
        from bertcli.runner import batch_inputs

        ids, mask, types = batch_inputs(encodings, self.tokenizer)
        return self.model.run(ids, mask, types).logits["logits"]

    def top(self, scores: np.ndarray, k: int | None) -> list[tuple[str, float]]:
        """(label, score) best first, ties in label order (as the pipeline sorts); ``k`` 0 or None = all."""
        order = np.argsort(-scores, kind="stable")
        if k:
            order = order[:k]
        return [(self.labels[i], float(scores[i])) for i in order]


def labels_of(config: Any) -> list[str]:
    """The label names in id order, from a transformers config's ``id2label`` (LABEL_i where it says nothing)."""
    id2label = getattr(config, "id2label", None) or {}
    count = int(getattr(config, "num_labels", 0) or len(id2label) or 2)
    table = {int(k): str(v) for k, v in id2label.items()}
    return [table.get(i, f"LABEL_{i}") for i in range(max(count, len(table)))]


def cross_encoder_function(config: Any) -> str:
    """The score function sentence-transformers' CrossEncoder applies by default: the folder's
    ``sentence_transformers.activation_fn`` (sigmoid or identity), else sigmoid for one label, none otherwise."""
    st = getattr(config, "sentence_transformers", None)
    path = st.get("activation_fn") if isinstance(st, dict) else None
    path = path or getattr(config, "sbert_ce_default_activation_function", None)
    if path:
        if path not in CROSS_ENCODER_ACTIVATIONS:
            raise ModelFileError(f"config.json asks for the activation {path}, which bertcli does not reproduce",
                                 hint="give --function sigmoid, softmax or none")
        return CROSS_ENCODER_ACTIVATIONS[path]
    return "sigmoid" if len(labels_of(config)) == 1 else "none"


def load_classifier(resolved: Any, options: ClassifyOptions | None = None, *, rerank: bool = False) -> Classifier:
    """The ``seqcls`` head of ``resolved`` and its tokenizer, as ``options`` say; ``rerank`` takes the
    CrossEncoder's default score function instead of the pipeline's."""
    from bertcli.backends import load_backend
    from bertcli.batching import token_budget
    from bertcli.embed import max_length_of
    from bertcli.modelfiles import check_vocab_fits
    from bertcli.tokenizer import load_tokenizer

    options = options or ClassifyOptions()
    options.check()
    tokenizer = load_tokenizer(resolved)
    check_vocab_fits(tokenizer, resolved)
    max_length = max_length_of(options, None, resolved, tokenizer)
    model = load_backend(resolved, "seqcls", backend=options.backend, device=options.device,
                         threads=options.threads, tokenizer=tokenizer)
    config = model.config
    function = options.function or (cross_encoder_function(config) if rerank else default_function(config))
    budget = token_budget(options.max_tokens, model)
    return Classifier(model=model, tokenizer=tokenizer, labels=labels_of(config), function=function,
                      max_length=max_length,
                      batcher=TokenBudgetBatcher(max_tokens=budget, max_batch=options.batch_size,
                                                 window=options.window))


# ---------------------------------------------------------------------------------------------------------
# reranking


@dataclass
class Ranked:
    """One document's place for a query: 1-based rank, 0-based index among the query's documents, score."""

    rank: int
    corpus_id: int
    score: float
    document: Line


def check_reranker(resolved: Any) -> None:
    """A cross-encoder gives one score per pair: refuse a model with several labels, from config.json alone
    (before its weights load)."""
    from types import SimpleNamespace

    if not getattr(resolved, "has_config", True):
        return  # a tokenizer only: loading says so
    config = resolved.config
    labels = labels_of(SimpleNamespace(**{k: config.get(k) for k in ("id2label", "num_labels")}))
    if len(labels) != 1:
        raise ModelFileError(
            f"{resolved.display_name} has {len(labels)} labels ({', '.join(labels[:5])}); "
            "`bertcli rerank` needs a one-label cross-encoder",
            hint="score pairs by label with `bertcli classify --pairs`",
        )


def rerank(classifier: Classifier, query: str, documents: Iterable[Line], *, top_k: int | None = None,
           where: str = "-q", keep_text: bool = True) -> list[Ranked]:
    """Score every (query, document) pair and return the documents best first (as CrossEncoder.rank orders
    them: by score, ties in input order), the best ``top_k`` only when given. Only the kept documents are held,
    and their text only with ``keep_text``."""
    if not query.strip():
        raise BadInputError(f"{where}: the query is empty")
    items = (Item(doc.number, query, doc.text, doc.source) for doc in documents)
    docs: dict[int, Line] = {}
    scored: list[tuple[float, int]] = []
    for corpus_id, result in enumerate(classifier.classify(items)):
        item = result.item
        scored.append((float(result.scores[0]), corpus_id))
        docs[corpus_id] = Line(item.number, (item.pair or "") if keep_text else "", item.source)
        if top_k and len(scored) > 4 * top_k + 1024:  # keep the memory of top_k documents, not all of them
            scored = heapq.nsmallest(top_k, scored, key=lambda s: (-s[0], s[1]))
            keep = {c for _, c in scored}
            docs = {c: d for c, d in docs.items() if c in keep}
    if not scored:
        raise BadInputError(f"{where}: no documents to rank")
    best = sorted(scored, key=lambda s: (-s[0], s[1]))
    if top_k:
        best = best[:top_k]
    return [Ranked(rank, corpus_id, score, docs[corpus_id]) for rank, (score, corpus_id) in enumerate(best, start=1)]


def read_queries(path: Any) -> Iterator[tuple[int, str, list[str]]]:
    """``--input q.jsonl``: (line number, query, documents) per record ``{"query": str, "docs": [str, …]}``;
    a line that is not such a record is a `BadInputError` naming it. Blank lines are skipped."""
    import json
    from pathlib import Path

    from bertcli.inputs import decode_line, open_input, utf8_problem

    source = str(path)
    handle = open_input(Path(path), what="JSON Lines file")
    with handle:
        for number, raw in enumerate(handle, start=1):
            where = f"{source}, line {number}"
            try:
                text = decode_line(raw, first=number == 1)
            except UnicodeDecodeError as exc:
                raise BadInputError(f"{where}: not UTF-8 text ({utf8_problem(exc)})") from exc
            if not text.strip():
                continue
            try:
                record = json.loads(text)
            except ValueError as exc:
                raise BadInputError(f"{where}: not a JSON record ({exc})") from exc
            if not isinstance(record, dict) or not isinstance(record.get("query"), str):
                raise BadInputError(f'{where}: expected {{"query": "…", "docs": ["…", …]}}')
            if not record["query"].strip():
                raise BadInputError(f"{where}: the query is empty")
            docs = record.get("docs")
            if not isinstance(docs, list) or not all(isinstance(d, str) for d in docs):
                raise BadInputError(f'{where}: "docs" must be a list of strings')
            yield number, record["query"], docs

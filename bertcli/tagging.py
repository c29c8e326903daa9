"""Token classification (named entities, parts of speech …): `bertcli tag`.

The decoding is transformers' ``pipeline("token-classification", aggregation_strategy=…)`` rewritten on numpy
(transformers 5, ``pipelines/token_classification.py``), so the entities, groups, words, offsets and scores are
the pipeline's:

- scores are the softmax of each token's logits; special tokens are skipped;
- ``none`` keeps one entity per token (``entity``, ``index``); ``simple`` groups adjacent tokens whose labels
  share a tag (``B-``/``I-`` prefixes: a ``B-`` starts a new group) into ``entity_group`` records with the mean
  score; ``first``/``average``/``max`` first fuse each word's pieces into one label (is-a-subword from the
  tokenizer: a WordPiece-style model with a ``continuing_subword_prefix`` compares the token's length with its
  text's, every other model — SentencePiece ``▁``, byte-level ``Ġ`` — uses the pipeline's whitespace heuristic),
  then group as ``simple`` does;
- labels in ``ignore_labels`` (``O``) are dropped.

Texts longer than the window (``max_length`` tokens, the model's limit by default) are split into windows that
share ``stride`` tokens, as the pipeline does with ``stride=``; each window is decoded on its own and
overlapping entities are merged (the longer one wins, then the higher score), so an entity cut by one window's
edge is replaced by the whole one from the next window. Windows of many texts are batched by token budget
(`bertcli.batching`), so memory is bounded by the batch and the chunk of lines read at a time. A text over
`CHUNK_CHARS` characters is tokenized in chunks (`bertcli.textcut.tokens_in_chunks`) and its windows are cut
from them as they are needed (`streamed_windows`: the same windows as the one-call path), so one multi-megabyte
line costs its entities, not its tokenizer encodings.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from itertools import islice
from typing import Any

import numpy as np

from bertcli import textcut
from bertcli.backends import DEFAULT_BACKEND
from bertcli.choices import AGGREGATIONS
from bertcli.errors import UsageError
from bertcli.resolve import ResolvedModel

#: labels the pipeline leaves out by default
IGNORE_LABELS = ("O",)
#: lines read (and their windows planned) at a time
CHUNK_LINES = 1024
#: tokens shared by consecutive windows of a long text, at most (and at most half a window)
DEFAULT_STRIDE = 128
#: a text longer than this (characters) is tokenized in chunks of about this size, its windows made lazily
CHUNK_CHARS = 65536
#: windows run and decoded at a time (a huge line's windows are made as these are needed)
WINDOW_GROUP = 512


def label_map(config: dict) -> dict[int, str]:
    """``id2label`` from config.json with int keys (``LABEL_i`` for ``num_labels`` when it is absent)."""
    id2label = config.get("id2label")
    if isinstance(id2label, dict) and id2label:
        return {int(k): str(v) for k, v in id2label.items()}
    value = config.get("num_labels")
    return {i: f"LABEL_{i}" for i in range(value if isinstance(value, int) and value > 0 else 2)}


def tag_of(label: str) -> tuple[str, str]:
    """``B-PER`` → ("B", "PER"), ``I-PER`` → ("I", "PER"), ``PER`` → ("I", "PER") (the pipeline's get_tag)."""
    if label.startswith("B-"):
        return "B", label[2:]
    if label.startswith("I-"):
        return "I", label[2:]
    return "I", label


def groups(id2label: dict[int, str], ignore: Sequence[str] = IGNORE_LABELS) -> list[str]:
    """The entity groups a model can give, in label order (B-/I- prefixes dropped, ignored labels left out)."""
    out: list[str] = []
    for _, label in sorted(id2label.items()):
        if label in ignore:
            continue
        group = label.split("-", 1)[-1]
        if group not in out:
            out.append(group)
    return out


@dataclass
class _Piece:
    """One non-special token of a window: the pipeline's "pre-entity"."""

    word: str
    scores: np.ndarray
    start: int
    end: int
    index: int
    is_subword: bool


class Decoder:
    """A window's logits → entities, exactly as the pipeline's postprocess (one tokenizer, one label map)."""

    def __init__(self, tok: Any, id2label: dict[int, str], aggregation: str = "simple",
                 ignore: Sequence[str] = IGNORE_LABELS):
        if aggregation not in AGGREGATIONS:
            raise UsageError(f"unknown aggregation {aggregation!r}: choose {', '.join(AGGREGATIONS)}")
        self.backend = tok.backend
        self.id2label = id2label
        self.aggregation = aggregation
        self.ignore = set(ignore)
        self.unk_id = tok.special_ids.get("unk_token")
        self.word_aware = bool(getattr(self.backend.model, "continuing_subword_prefix", None))
        self._decoder = self.backend.decoder

    def join(self, tokens: list[str]) -> str:
        """The tokenizer's convert_tokens_to_string: its decoder, else the tokens joined by spaces."""
        return self._decoder.decode(tokens) if self._decoder is not None else " ".join(tokens)

    def pieces(self, text: str, enc: Any, scores: np.ndarray, index_shift: int = 0) -> list[_Piece]:
        """The pipeline's gather_pre_entities for one window (``enc``: its `tokenizers` encoding)."""
        out = []
        id_to_token = self.backend.id_to_token
        for idx, (tid, special, (start, end)) in enumerate(zip(enc.ids, enc.special_tokens_mask, enc.offsets)):
            if special:
                continue
            word = id_to_token(tid)
            ref = text[start:end]
            if self.word_aware:
                is_subword = len(word) != len(ref)
            else:
                is_subword = start > 0 and " " not in text[start - 1:start + 1]
            if tid == self.unk_id:
                word, is_subword = ref, False
            out.append(_Piece(word, scores[idx], start, end, idx + index_shift, is_subword))
        return out

    def entities(self, text: str, enc: Any, logits: np.ndarray, index_shift: int = 0) -> list[dict]:
        """One window's entities, ignored labels dropped (``logits``: (tokens, labels) for its real tokens)."""
        from bertcli.scores import softmax

        pieces = self.pieces(text, enc, softmax(logits), index_shift)
        if self.aggregation in ("none", "simple"):
            tokens = []
            for p in pieces:
                best = int(p.scores.argmax())
                tokens.append({"entity": self.id2label[best], "score": p.scores[best], "index": p.index,
                               "word": p.word, "start": p.start, "end": p.end})
        else:
            tokens = self._words(pieces)
        found = tokens if self.aggregation == "none" else self._group(tokens)
        key = "entity" if self.aggregation == "none" else "entity_group"
        return [e for e in found if e[key] not in self.ignore]

    def _words(self, pieces: list[_Piece]) -> list[dict]:
        """aggregate_words: a word's pieces agree on one label (first / average / max)."""
        words: list[list[_Piece]] = []
        for p in pieces:
            if words and p.is_subword:
                words[-1].append(p)
            else:
                words.append([p])
        return [self._word(w) for w in words]

    def _word(self, pieces: list[_Piece]) -> dict:
        if self.aggregation == "first":
            scores = pieces[0].scores
        elif self.aggregation == "max":
            scores = max(pieces, key=lambda p: p.scores.max()).scores
        else:  # average
            scores = np.nanmean(np.stack([p.scores for p in pieces]), axis=0)
        best = int(scores.argmax())
        return {"entity": self.id2label[best], "score": scores[best], "word": self.join([p.word for p in pieces]),
                "start": pieces[0].start, "end": pieces[-1].end}

    def _group(self, tokens: list[dict]) -> list[dict]:
        """group_entities: adjacent tokens with the same tag (a B- starts anew) become one entity group."""
        out: list[dict] = []
        run: list[dict] = []
        for token in tokens:
            if run:
                bi, tag = tag_of(token["entity"])
                if not (tag == tag_of(run[-1]["entity"])[1] and bi != "B"):
                    out.append(self._group_one(run))
                    run = []
            run.append(token)
        if run:
            out.append(self._group_one(run))
        return out

    def _group_one(self, run: list[dict]) -> dict:
        return {"entity_group": run[0]["entity"].split("-", 1)[-1],
                "score": np.mean(np.nanmean([t["score"] for t in run])),
                "word": self.join([t["word"] for t in run]), "start": run[0]["start"], "end": run[-1]["end"]}


def merge_overlapping(entities: list[dict]) -> list[dict]:
    """The pipeline's aggregate_overlapping_entities: sorted by start; of two that overlap, the longer one
    (then the higher score) is kept."""
    if not entities:
        return entities
    entities = sorted(entities, key=lambda e: e["start"])
    merged = []
    previous = entities[0]
    for entity in entities:
        if previous["start"] <= entity["start"] < previous["end"]:
            length, previous_length = entity["end"] - entity["start"], previous["end"] - previous["start"]
            if length > previous_length or (length == previous_length and entity["score"] > previous["score"]):
                previous = entity
        else:
            merged.append(previous)
            previous = entity
    merged.append(previous)
    return merged


def _plain(entity: dict) -> dict:
    """Numpy scalars → Python numbers, keys in the pipeline's order."""
    return {k: (float(v) if k == "score" else v) for k, v in entity.items()}


@dataclass(frozen=True)
class TagOptions:
    """How to tag: aggregation, window (``max_length`` tokens, None = the model's limit) and ``stride`` (None:
    min(128, half the window's text tokens)), batching (``max_tokens`` per padded batch, ``batch_size`` rows)."""

    aggregation: str = "simple"
    max_length: int | None = None
    stride: int | None = None
    batch_size: int | None = None
    max_tokens: int | None = None  # None: the backend's and device's default (batching.token_budget)
    device: str = "cpu"
    threads: int | None = None
    backend: str = DEFAULT_BACKEND


def window_geometry(config: Any, tok: Any, options: TagOptions) -> tuple[int, int, int]:
    """(window length, special tokens per window, stride) from the model's config and tokenizer, checked before
    the model loads: a bad --max-length or --stride is a `UsageError`."""
    from bertcli.limits import token_limit

    limit = token_limit(config, tok.model_max_length)
    max_length = options.max_length or limit or 512
    if limit and max_length > limit:
        raise UsageError(f"--max-length {max_length} is more than the model takes ({limit} tokens)")
    specials = tok.backend.num_special_tokens_to_add(False)
    content = max_length - specials
    if content < 1:
        raise UsageError(f"--max-length {max_length} leaves no room for text beside the model's "
                         f"{specials} special tokens")
    stride = min(DEFAULT_STRIDE, content // 2) if options.stride is None else options.stride
    if stride >= content:
        raise UsageError(f"--stride {stride} must be less than the {content} text tokens a window of "
                         f"{max_length} holds")
    return max_length, specials, stride


@dataclass
class Window:
    """One window of a long text, cut from its chunked tokens: what `Decoder.pieces` and
    `bertcli.runner.batch_inputs` read of a `tokenizers.Encoding`."""

    ids: list[int]
    type_ids: list[int]
    special_tokens_mask: list[int]
    offsets: list[tuple[int, int]]


def streamed_windows(backend: Any, text: str, max_length: int, stride: int,
                     chunk_chars: int = CHUNK_CHARS) -> Iterator[Window] | None:
    """The windows `Tagger.windows` makes of ``text`` (``max_length`` tokens with the special ones, ``stride``
    shared), made one at a time from `textcut.tokens_in_chunks` (``backend``: a `chunk_safe` tokenizer without
    truncation or padding). None when a one-token probe does not show the usual layout (special tokens, then
    the text's, then special tokens), for the one-call path to do."""
    buf = textcut.TokenBuffer(backend, text, chunk_chars)
    buf.fill(1)
    if not buf.ids:
        return None
    probe = backend.encode(text[buf.offsets[0][0]:buf.offsets[0][1]] or "a")  # a lone "Ġ" has an empty span
    inside = [i for i, special in enumerate(probe.special_tokens_mask) if not special]
    if not inside or inside != list(range(inside[0], inside[-1] + 1)):
        return None
    head, tail = probe.ids[: inside[0]], probe.ids[inside[-1] + 1:]
    head_types, tail_types = probe.type_ids[: inside[0]], probe.type_ids[inside[-1] + 1:]
    text_type = probe.type_ids[inside[0]]
    room = max_length - len(head) - len(tail)
    step = room - stride

    def windows() -> Iterator[Window]:
        # tokenizers' overflow with stride: parts [k * step, k * step + room) until one reaches the end
        index = 0
        while True:
            buf.fill(index * step + room + 1)  # one token more than the part: tells whether it is the last
            offset = index * step - buf.base
            stop = min(len(buf.ids), offset + room)
            n = stop - offset
            yield Window(head + buf.ids[offset:stop] + tail, head_types + [text_type] * n + tail_types,
                         [1] * len(head) + [0] * n + [1] * len(tail),
                         [(0, 0)] * len(head) + buf.offsets[offset:stop] + [(0, 0)] * len(tail))
            if stop == len(buf.ids):  # fill() read all there is, or stop would fall short of the buffer's end
                return
            buf.drop(offset + step)  # what no later window needs
            index += 1

    return windows()


class Tagger:
    """A loaded token-classification model and its tokenizer; `tag` streams entity lists in input order."""

    def __init__(self, model: Any, tok: Any, id2label: dict[int, str], options: TagOptions):
        self.model = model
        self.tok = tok
        self.id2label = id2label
        self.options = options
        self.decoder = Decoder(tok, id2label, options.aggregation)
        self.max_length, self.specials, self.stride = window_geometry(model.config, tok, options)

    def windows(self, texts: Sequence[str]) -> list[list[Any]]:
        """Each text's windows (`tokenizers` encodings with special tokens), as the pipeline's stride= makes them."""
        backend = self.tok.backend
        backend.no_padding()
        backend.enable_truncation(max_length=self.max_length, stride=self.stride, strategy="longest_first")
        try:
            encodings = backend.encode_batch(list(texts))
        finally:
            backend.no_truncation()
        return [[enc, *enc.overflowing] for enc in encodings]

    def tag(self, texts: Iterable[str]) -> Iterator[list[dict]]:
        """Each text's entities (the pipeline's dicts, scores as floats), in input order, chunk by chunk."""
        iterator = iter(texts)
        while chunk := list(islice(iterator, CHUNK_LINES)):
            yield from self._tag_chunk(chunk)

    def _items(self, texts: list[str]) -> Iterator[tuple[int, int, Any]]:
        """(text index, window index, window) of every text: the short ones encoded in one batch call, a text
        over `CHUNK_CHARS` streamed (`streamed_windows`) where its tokenizer allows."""
        backend = self.tok.backend
        long = {i for i, text in enumerate(texts) if len(text) > CHUNK_CHARS} if textcut.chunk_safe(backend) else set()
        short = [i for i in range(len(texts)) if i not in long]
        encoded = dict(zip(short, self.windows([texts[i] for i in short])))
        for i, text in enumerate(texts):
            wins = encoded.pop(i, None)
            if wins is None:
                backend.no_padding()
                backend.no_truncation()
                wins = streamed_windows(backend, text, self.max_length, self.stride) or self.windows([text])[0]
            for w, window in enumerate(wins):
                yield i, w, window

    def _tag_chunk(self, texts: list[str]) -> list[list[dict]]:
        from bertcli.batching import TokenBudgetBatcher, token_budget
        from bertcli.runner import batch_inputs

        def run(batch):
            encs = [enc for _, _, enc in batch]
            logits = self.model.run(*batch_inputs(encs, self.tok)).logits["logits"]
            return [logits[row, :len(enc.ids)] for row, enc in enumerate(encs)]

        found: list[list[dict]] = [[] for _ in texts]
        windows = [0] * len(texts)
        step = self.max_length - self.specials - self.stride
        items = self._items(texts)
        while group := list(islice(items, WINDOW_GROUP)):
            batcher = TokenBudgetBatcher(max_tokens=token_budget(self.options.max_tokens, self.model),
                                         max_batch=self.options.batch_size, window=len(group))
            logits = batcher.run_window(group, [len(enc.ids) for _, _, enc in group], run)
            for (i, w, enc), window_logits in zip(group, logits):
                found[i] += self.decoder.entities(texts[i], enc, window_logits, index_shift=w * step)
                windows[i] += 1
        return [[_plain(e) for e in (merge_overlapping(f) if n > 1 else f)] for f, n in zip(found, windows)]


def load_tagger(resolved: ResolvedModel, options: TagOptions) -> Tagger:
    """The model's token-classification head and tokenizer; a model without the head is refused, naming the
    commands it fits."""
    from bertcli.backends import load_backend
    from bertcli.heads import check_head
    from bertcli.tokenizer import load_tokenizer

    check_head(resolved, "tokcls")
    tok = load_tokenizer(resolved)
    window_geometry(resolved.config, tok, options)  # bad --max-length/--stride: refused before the model loads
    model = load_backend(resolved, "tokcls", backend=options.backend, device=options.device, tokenizer=tok,
                         threads=options.threads)
    return Tagger(model, tok, label_map(resolved.config), options)

"""Cutting long texts where tokenization cannot tell: before a whitespace run.

For the tokenizers of the BERT family (WordPiece, SentencePiece, byte-level BPE, whose pre-tokenizers split
at whitespace and never join text across it), a text cut just before a whitespace run (a non-space
character, then a space) tokenizes piece by piece into exactly the tokens of the whole text. Two users:

- `encode_truncated`: a text truncated to N tokens is encoded from a prefix of it that is sure to hold more
  than N tokens, so a 19 MB line costs what a long sentence does, with the ids of the whole line truncated.
- `tokens_in_chunks`: a long QA context (`bertcli.qa_spans.iter_windows`) or a long text to tag
  (`bertcli.tagging`) is tokenized in chunks; `token_count` counts a long text's tokens that way (how many
  `attention`, `detect` and pairs left out, how many `fill-mask` refuses, `tokenize --count`).
- `encode_pairs_truncated`: a pair cut longest first, each side from a prefix.

`chunk_safe` says whether a tokenizer qualifies; the others are always encoded whole.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any, Sequence

#: Where a text may be cut: just before a whitespace run.
CUT = re.compile(r"(?<=\S)\s")

#: Pre-tokenizers that never join text across the start of a whitespace run (`Split` and friends with
#: arbitrary patterns are not listed).
SAFE_PRE_TOKENIZERS = {"BertPreTokenizer", "Whitespace", "WhitespaceSplit", "ByteLevel", "Metaspace",
                       "Punctuation", "Digits", "UnicodeScripts", "CharDelimiterSplit"}

#: A first prefix of max_length × this many characters: more than any BERT-family tokenizer's characters per
#: token on real text (English ~4-5, code and URLs more); a prefix that falls short is doubled.
CHARS_PER_TOKEN = 12

#: Texts up to this many characters are encoded whole (a prefix would not save anything worth the bother).
MIN_PREFIX = 4096

#: what is worked out once per tokenizer from its JSON (~25 ms to write): (kind, id(tokenizer)) → (tokenizer, value)
_per_tokenizer: dict[tuple[str, int], tuple[Any, Any]] = {}


def _once(kind: str, tokenizer: Any, make) -> Any:
    """``make(tokenizer)``, kept for as long as this very tokenizer object is the one seen."""
    cached = _per_tokenizer.get((kind, id(tokenizer)))
    if cached is not None and cached[0] is tokenizer:
        return cached[1]
    value = make(tokenizer)
    _per_tokenizer[(kind, id(tokenizer))] = (tokenizer, value)
    return value


def chunk_safe(tokenizer: Any) -> bool:
    """Whether a `tokenizers.Tokenizer` tokenizes a text cut by `CUT` piece by piece exactly as whole."""
    return _once("chunk_safe", tokenizer, _chunk_safe)


def _chunk_safe(tokenizer: Any) -> bool:
    try:
        spec = json.loads(tokenizer.to_str())
    except (ValueError, AttributeError):
        spec = None
    return spec is not None and _pre_ok(spec.get("pre_tokenizer")) and _normalizer_ok(spec.get("normalizer"))


def _pre_ok(node: Any) -> bool:
    if not isinstance(node, dict):
        return False  # no pre-tokenizer: the model sees the whole text as one word
    kind = node.get("type")
    if kind == "Sequence":
        return all(_pre_ok(n) for n in node.get("pretokenizers", []))
    if kind == "ByteLevel" and node.get("use_regex") is False:
        return False
    if kind == "Metaspace" and node.get("split") is False:
        return False
    return kind in SAFE_PRE_TOKENIZERS


def _normalizer_ok(node: Any) -> bool:
    if node is None:
        return True
    if not isinstance(node, dict):
        return False
    kind = node.get("type")
    if kind == "Sequence":
        return all(_normalizer_ok(n) for n in node.get("normalizers", []))
    if kind == "Replace":  # a pattern with spaces could join the two sides of a cut; " {2,}" (ALBERT) cannot
        pattern = node.get("pattern") or {}
        text = pattern.get("String", pattern.get("Regex", "")) if isinstance(pattern, dict) else ""
        return not any(c.isspace() for c in text) or text.strip(" {}0123456789,+*") == ""
    return kind != "Strip"


def cut_at_or_after(text: str, position: int) -> int:
    """The first cut at `position` or later, else len(text)."""
    found = CUT.search(text, position)
    return found.start() if found else len(text)


def encode_truncated(tokenizer: Any, texts: Sequence[str], max_length: int, *, add_special_tokens: bool = True) -> list:
    """`tokenizer.encode_batch(texts)` truncated to `max_length` tokens, encoding long texts from a prefix.

    `tokenizer` is a `tokenizers.Tokenizer` whose truncation is set to `max_length` by the caller. A text
    longer than max(MIN_PREFIX, max_length × CHARS_PER_TOKEN) characters is encoded from a prefix that ends at
    a cut; when the prefix's tokens overflow the limit they are those of the whole text (ids, offsets, tokens
    equal), else the prefix is doubled and encoded again. `overflowing` holds only what the prefix had beyond
    the limit, so it says whether the text was truncated, not all the rest of it.
    """
    texts = list(texts)
    bound = max(MIN_PREFIX, max_length * CHARS_PER_TOKEN)
    if all(len(t) <= bound for t in texts) or not chunk_safe(tokenizer):
        return tokenizer.encode_batch(texts, add_special_tokens=add_special_tokens)
    ends = [cut_at_or_after(t, bound) if len(t) > bound else len(t) for t in texts]
    encodings = tokenizer.encode_batch([t[:e] for t, e in zip(texts, ends)], add_special_tokens=add_special_tokens)
    for i, (text, end) in enumerate(zip(texts, ends)):
        size = bound
        while end < len(text) and not encodings[i].overflowing:  # the prefix may hold all there is to keep
            size *= 2
            end = cut_at_or_after(text, size) if len(text) > size else len(text)
            encodings[i] = tokenizer.encode(text[:end], add_special_tokens=add_special_tokens)
    return encodings


def encode_pairs_truncated(tokenizer: Any, pairs: Sequence[tuple[str, str]], max_length: int, *,
                           add_special_tokens: bool = True) -> tuple[list, list[int]]:
    """Pairs cut to ``max_length`` tokens as tokenizers' longest-first rule cuts them (transformers'
    ``truncation=True``), and how many tokens each pair lost; memory bounded by the limit whatever a side weighs.

    Each side is encoded alone, cut to ``max_length`` (`encode_truncated`: from a prefix of a long text); a side
    that overflows is counted exactly (`token_count`: in chunks), `pair_lengths` gives what each side keeps,
    and the post-processor adds the special tokens. ``tokenizer``'s truncation is left off.
    """
    tokenizer.enable_truncation(max_length=max_length)
    sides = encode_truncated(tokenizer, [side for pair in pairs for side in pair], max_length, add_special_tokens=False)
    tokenizer.no_truncation()
    budget = max(0, max_length - (tokenizer.num_special_tokens_to_add(True) if add_special_tokens else 0))
    finisher = _without_offset_trimming(tokenizer)
    encodings, cut = [], []
    for (a, b), first, second in zip(pairs, sides[0::2], sides[1::2]):
        n1 = token_count(tokenizer, a, add_special_tokens=False) if first.overflowing else len(first.ids)
        n2 = token_count(tokenizer, b, add_special_tokens=False) if second.overflowing else len(second.ids)
        k1, k2 = pair_lengths(n1, n2, budget)
        first.truncate(k1)
        second.truncate(k2)
        encodings.append(finisher.post_process(first, second, add_special_tokens=add_special_tokens))
        cut.append(n1 + n2 - k1 - k2)
    return encodings, cut


def _without_offset_trimming(tokenizer: Any) -> Any:
    """``tokenizer``, or a twin whose post-processor does not trim offsets: each side, encoded alone, had its
    offsets trimmed once already (RoBERTa's byte-level ``trim_offsets``), and a second trim would move the
    offsets of whitespace tokens."""
    return _once("untrimmed", tokenizer, _untrimmed_twin)


def _untrimmed_twin(tokenizer: Any) -> Any:
    spec = json.loads(tokenizer.to_str())
    found = []

    def untrim(node: Any) -> None:
        if isinstance(node, dict):
            if node.get("trim_offsets"):
                node["trim_offsets"] = False
                found.append(node)
            for value in node.values():
                untrim(value)
        elif isinstance(node, list):
            for value in node:
                untrim(value)

    untrim(spec.get("post_processor"))
    if not found:
        return tokenizer
    from tokenizers import Tokenizer

    return Tokenizer.from_str(json.dumps(spec))


def pair_lengths(n1: int, n2: int, budget: int) -> tuple[int, int]:
    """How many tokens of each side a pair keeps within ``budget`` (the limit less the special tokens): the
    longest-first rule of tokenizers (and so of transformers): the longer side is cut until the two are equal,
    then both; an odd token left over stays with the longer side (with side B when they are equally long)."""
    if n1 + n2 <= budget:
        return n1, n2
    swap = n1 > n2
    short, long = (n2, n1) if swap else (n1, n2)
    long = short if short > budget else max(short, budget - short)
    if short + long > budget:
        short = budget // 2
        long = short + budget % 2
    return (long, short) if swap else (short, long)


#: characters per chunk when a long text's tokens are only counted (`token_count`)
COUNT_CHUNK = 1 << 16


def token_count(tokenizer: Any, text: str, *, add_special_tokens: bool = True) -> int:
    """How many tokens ``tokenizer`` (a `tokenizers.Tokenizer`, truncation off) makes of ``text``: for a long
    text and a `chunk_safe` tokenizer counted chunk by chunk, in the memory of one chunk (a 20 MB line encoded
    whole holds ~3 GB of encodings)."""
    if len(text) <= COUNT_CHUNK or not chunk_safe(tokenizer):
        return len(tokenizer.encode(text, add_special_tokens=add_special_tokens).ids)
    specials = tokenizer.num_special_tokens_to_add(False) if add_special_tokens else 0
    return specials + sum(len(ids) for ids, *_ in tokens_in_chunks(tokenizer, text, COUNT_CHUNK))


def chunk_cuts(context: str, chunk_chars: int) -> Iterator[tuple[int, int, int]]:
    """(lead, start, end) of each chunk: tokenize context[lead:end], keep the tokens that start at `start` or
    later. Every cut is just before a whitespace run; `lead` is the cut before `start` (the word before)."""
    start, lead = 0, 0
    while start < len(context):
        end = cut_at_or_after(context, start + chunk_chars)
        yield lead, start, end
        back = None
        for back in CUT.finditer(context, max(start, end - 2048), end):
            pass
        lead = back.start() if back is not None and back.start() < end else start
        start = end


def tokens_in_chunks(tok: Any, context: str, chunk_chars: int) -> Iterator[tuple[list, list, list, list]]:
    """A long text's tokens alone (no special tokens), chunk by chunk of about ``chunk_chars`` characters (a
    `chunk_safe` tokenizer): (ids, tokens, offsets, word ids), with offsets into the whole text and word ids
    that never repeat across chunks. The QA windows and the tag windows of long texts are cut from them."""
    word_base = 0
    for lead, start, end in chunk_cuts(context, chunk_chars):
        enc = tok.encode(context[lead:end], add_special_tokens=False)
        skip = start - lead
        offsets = enc.offsets
        keep = next((i for i, (a, _) in enumerate(offsets) if a >= skip), len(offsets))
        words = enc.word_ids[keep:]
        known = [w for w in words if w is not None]
        first = known[0] if known else 0  # the lead-in's words are dropped: number from the first kept one
        yield (
            enc.ids[keep:],
            enc.tokens[keep:],
            [(a + lead, b + lead) for a, b in offsets[keep:]],
            [None if w is None else w - first + word_base for w in words],
        )
        word_base += (max(known) - first + 1) if known else 0


class TokenBuffer:
    """The tokens of `tokens_in_chunks` (``ids``, ``tokens``, ``offsets``, ``words``), read only as far as asked
    (`fill`) and dropped once no window needs them (`drop`); ``base`` is the text's token index of ``ids[0]``.
    The QA and tag windows of a long text are cut from one of these."""

    def __init__(self, tokenizer: Any, text: str, chunk_chars: int):
        self._chunks = tokens_in_chunks(tokenizer, text, chunk_chars)
        self.ids: list = []
        self.tokens: list = []
        self.offsets: list = []
        self.words: list = []
        self.base = 0
        self.done = False

    def fill(self, upto: int) -> None:
        """Read chunks until the buffer reaches the text's token ``upto`` (exclusive) or the text ends."""
        while not self.done and self.base + len(self.ids) < upto:
            chunk = next(self._chunks, None)
            if chunk is None:
                self.done = True
                return
            for buffer, part in zip((self.ids, self.tokens, self.offsets, self.words), chunk):
                buffer.extend(part)

    def drop(self, count: int) -> None:
        """Forget the first ``count`` tokens held."""
        for buffer in (self.ids, self.tokens, self.offsets, self.words):
            del buffer[:count]
        self.base += count

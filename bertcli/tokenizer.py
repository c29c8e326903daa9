"""The fastest correct tokenizer for a resolved model.

- A ``tokenizer.json`` is loaded straight into the ``tokenizers`` library (no torch, no transformers), with any
  padding/truncation it carries switched off: a plain call must not pad, exactly as transformers does not.
- Legacy files (``spiece.model``, ``vocab.txt``, ``vocab.json`` + ``merges.txt``) are converted once through
  transformers (the same conversion ``AutoTokenizer`` does) and the result is kept in bertcli's own cache,
  keyed by the files' contents — never written into the user's model folder. The next call is fast.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from bertcli.env import bertcli_cache_dir
from bertcli.errors import MissingDependencyError, ModelFileError
from bertcli.limits import position_limit
from bertcli.resolve import LEGACY_KINDS, ResolvedModel, tokenizer_kind, tokenizer_source

#: Legacy tokenizer file → the transformers class that reads it (used when a folder has no config to say).
LEGACY_CLASSES = {
    "spiece.model": "AlbertTokenizer",
    "sentencepiece.bpe.model": "XLMRobertaTokenizer",
    "spm.model": "DebertaV2Tokenizer",
    "vocab.txt": "BertTokenizer",
    "vocab.json": "RobertaTokenizer",
}

SPECIAL_ROLES = ("cls_token", "sep_token", "pad_token", "unk_token", "mask_token", "bos_token", "eos_token")

CONVERTER_VERSION = "1"  # bump to invalidate converted tokenizers in the cache


@dataclass
class Token:
    """One token of an encoding (the table row)."""

    position: int
    token: str
    id: int
    type_id: int
    attention: int
    start: int
    end: int
    word: int | None
    special: bool


@dataclass
class LoadedTokenizer:
    """A ``tokenizers.Tokenizer`` plus what bertcli needs to present it like transformers."""

    backend: Any  # tokenizers.Tokenizer
    kind: str
    source: str  # human description of where it came from
    special_tokens: dict[str, str] = field(default_factory=dict)  # role → token
    model_max_length: int | None = None
    uses_token_types: bool = True

    def token_id(self, token: str) -> int | None:
        return self.backend.token_to_id(token)

    @property
    def mask_token(self) -> str | None:
        return self.special_tokens.get("mask_token")

    @property
    def special_ids(self) -> dict[str, int]:
        ids = {}
        for role, tok in self.special_tokens.items():
            tid = self.backend.token_to_id(tok)
            if tid is not None:
                ids[role] = tid
        return ids

    def encode_batch(
        self,
        texts: Sequence[str],
        pairs: Sequence[str] | None = None,
        *,
        add_special_tokens: bool = True,
        max_length: int | None = None,
    ) -> list:
        """Encode texts (and optional pairs); truncate to ``max_length`` (longest-first) when given.

        Truncated single texts are encoded from a prefix long enough to hold the kept tokens
        (`bertcli.textcut.encode_truncated`: the same ids as the whole text truncated, in the memory of a
        prefix, whatever the line's length); their ``overflowing`` is then only non-empty, not complete. Pairs
        go through `encode_pairs` (each side likewise).
        """
        if pairs is not None:
            return self.encode_pairs(list(zip(texts, pairs)), max_length, add_special_tokens=add_special_tokens)[0]
        tok = self.backend
        if max_length is None:
            tok.no_truncation()
            return tok.encode_batch(list(texts), add_special_tokens=add_special_tokens)
        from bertcli.textcut import encode_truncated

        tok.enable_truncation(max_length=max_length, strategy="longest_first")
        return encode_truncated(tok, texts, max_length, add_special_tokens=add_special_tokens)

    def encode_pairs(self, pairs: Sequence[tuple[str, str]], max_length: int | None, *,
                     add_special_tokens: bool = True) -> tuple[list, list[int]]:
        """Pairs encoded, cut to ``max_length`` longest side first when given (as transformers cuts a pair;
        each side from a prefix of a long text: `bertcli.textcut.encode_pairs_truncated`); also how many
        tokens each pair lost."""
        if max_length is None:
            self.backend.no_truncation()
            return self.backend.encode_batch(list(pairs), add_special_tokens=add_special_tokens), [0] * len(pairs)
        from bertcli.textcut import encode_pairs_truncated

        return encode_pairs_truncated(self.backend, pairs, max_length, add_special_tokens=add_special_tokens)

    def encode_capped(self, text: str, max_length: int | None):
        """One text encoded whole, or cut to ``max_length`` tokens: (encoding, how many tokens were cut). The cut
        encoding comes from a prefix and the cut tokens are counted in chunks (`bertcli.textcut`), so a huge
        line costs the memory of a long one."""
        if not max_length:
            return self.encode_batch([text])[0], 0
        enc = self.encode_batch([text], max_length=max_length)[0]
        if not enc.overflowing:
            return enc, 0
        return enc, self.count_tokens(text) - max_length

    def count_tokens(self, text: str, *, add_special_tokens: bool = True) -> int:
        """How many tokens ``text`` makes; a long text is counted chunk by chunk (`bertcli.textcut.token_count`),
        in the memory of one chunk."""
        from bertcli.textcut import token_count

        self.backend.no_truncation()
        return token_count(self.backend, text, add_special_tokens=add_special_tokens)

    def token_strings(self, encoding) -> list[str]:
        """The vocabulary token of each id (like transformers' convert_ids_to_tokens).

        ``Encoding.tokens`` shows a SentencePiece unknown piece by its surface text ('ßø') although its id is
        <unk>'s, and an added token that strips the space before it (ModernBERT's ``[MASK]``) with that space;
        the vocabulary token keeps tokens and ids telling the same story.
        """
        tokens = encoding.tokens
        if any(t[:1].isspace() or t[-1:].isspace() for t in tokens):
            tokens = [self.backend.id_to_token(i) if t[:1].isspace() or t[-1:].isspace() else t
                      for t, i in zip(tokens, encoding.ids)]
        unk = self._unk_id
        if unk is None or unk not in encoding.ids:
            return tokens
        unk_token = self.backend.id_to_token(unk)
        return [unk_token if i == unk else t for t, i in zip(tokens, encoding.ids)]

    @cached_property
    def _unk_id(self) -> int | None:
        unk = self.special_tokens.get("unk_token")
        return self.backend.token_to_id(unk) if unk else None

    def count(self, texts: Sequence[str], *, add_special_tokens: bool = False) -> list[int]:
        """Each text's token count (`tokenize --count`): short texts in one batch, long ones chunk by chunk."""
        from bertcli.textcut import COUNT_CHUNK

        texts = list(texts)
        short = [i for i, t in enumerate(texts) if len(t) <= COUNT_CHUNK]
        counts = [0] * len(texts)
        batch = self.encode_batch([texts[i] for i in short], add_special_tokens=add_special_tokens)
        for i, enc in zip(short, batch):
            counts[i] = len(enc.ids)
        for i, text in enumerate(texts):
            if len(text) > COUNT_CHUNK:
                counts[i] = self.count_tokens(text, add_special_tokens=add_special_tokens)
        return counts

    def tokens(self, encoding) -> list[Token]:
        specials = encoding.special_tokens_mask
        word_ids = encoding.word_ids
        return [
            Token(i, t, encoding.ids[i], encoding.type_ids[i], encoding.attention_mask[i], s, e,
                  word_ids[i], bool(specials[i]))
            for i, (t, (s, e)) in enumerate(zip(self.token_strings(encoding), encoding.offsets))
        ]


def load_tokenizer(model: ResolvedModel) -> LoadedTokenizer:
    """The tokenizer for a resolved model (fast path from tokenizer.json, else a cached conversion).

    Corrupt tokenizer files are a `ModelFileError` naming the file (`bertcli.modelfiles`): legacy files are
    checked before transformers converts them, and whatever a library raises while reading them is translated.
    """
    from bertcli.modelfiles import model_files

    source, path = tokenizer_source(model)
    tok_config = _read_json(model.file("tokenizer_config.json")) if model.tokenizer_file is None else {}
    if source == "tokenizer.json":
        from tokenizers import Tokenizer

        with model_files(f"cannot load tokenizer {path}"):
            backend = Tokenizer.from_file(str(path))
        data_specials = _specials_from_files(model, tok_config)
        kind = tokenizer_kind(model) or "unknown"
        desc = str(path)
    else:
        with model_files(f"cannot build a tokenizer from {path}"):
            backend, data_specials, kind, desc = _load_converted(model, source, path, tok_config)
    backend.no_padding()
    backend.no_truncation()
    _check_vocabulary(backend, path)
    max_len = _model_max_length(model, tok_config)
    return LoadedTokenizer(
        backend=backend,
        kind=kind,
        source=desc,
        special_tokens=data_specials,
        model_max_length=max_len,
        uses_token_types=_uses_token_types(model, kind),
    )


def _check_vocabulary(backend: Any, path: Path) -> None:
    """A tokenizer that would fail on its first text (empty vocabulary, WordPiece without its unknown token)."""
    if backend.get_vocab_size(with_added_tokens=False) == 0:
        raise ModelFileError(f"{path}: the tokenizer's vocabulary is empty")
    unk = getattr(backend.model, "unk_token", None)
    if type(backend.model).__name__ == "WordPiece" and unk and backend.token_to_id(unk) is None:
        raise ModelFileError(f"{path}: the WordPiece vocabulary lacks its unknown token {unk!r}, which every "
                             "word outside the vocabulary becomes")


def _uses_token_types(model: ResolvedModel, kind: str) -> bool:
    """Token type ids are shown when the model has more than one token type (not RoBERTa's 1, not DistilBERT,
    which has no token-type embeddings and whose tokenizer returns none)."""
    config = model.config
    if config.get("model_type") == "distilbert":
        return False
    if "type_vocab_size" in config:
        return int(config["type_vocab_size"] or 0) > 1
    return kind != "byte-level BPE"


def _model_max_length(model: ResolvedModel, tok_config: dict) -> int | None:
    value = tok_config.get("model_max_length")
    if isinstance(value, int) and 0 < value < 1_000_000:
        return value
    return position_limit(model.config)


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _token_str(value: Any) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and isinstance(value.get("content"), str):
        return value["content"]
    return None


def _specials_from_files(model: ResolvedModel, tok_config: dict) -> dict[str, str]:
    specials: dict[str, str] = {}
    sources = [tok_config]
    if model.tokenizer_file is None:
        sources.append(_read_json(model.file("special_tokens_map.json")))
    for data in sources:
        for role in SPECIAL_ROLES:
            tok = _token_str(data.get(role))
            if tok and role not in specials:
                specials[role] = tok
    return specials


def _conversion_key(model: ResolvedModel, source: str, path: Path, tok_config: dict) -> str:
    """A key that needs no transformers import: file contents plus the installed transformers version."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        tf_version = version("transformers")
    except PackageNotFoundError:
        tf_version = "none"
    h = hashlib.sha256()
    h.update(f"v{CONVERTER_VERSION}|{tf_version}|{source}|".encode())
    h.update(path.read_bytes())
    if source == "vocab.json":
        h.update((path.parent / "merges.txt").read_bytes())
    h.update(json.dumps(tok_config, sort_keys=True).encode())
    if model.tokenizer_file is None:
        for extra in ("special_tokens_map.json", "added_tokens.json"):
            if model.has(extra):
                h.update(model.file(extra).read_bytes())
        h.update(str(model.config.get("model_type")).encode())
    return h.hexdigest()[:32]


def converted_cache_dir() -> Path:
    return bertcli_cache_dir() / "tokenizers"


def _load_converted(model: ResolvedModel, source: str, path: Path, tok_config: dict):
    from tokenizers import Tokenizer

    kind = LEGACY_KINDS.get(source, "unknown")
    key = _conversion_key(model, source, path, tok_config)
    folder = converted_cache_dir() / key
    tok_file, meta_file = folder / "tokenizer.json", folder / "meta.json"
    if tok_file.is_file() and meta_file.is_file():
        try:
            meta = json.loads(meta_file.read_text(encoding="utf-8"))
            backend = Tokenizer.from_file(str(tok_file))
            return backend, meta["special_tokens"], kind, f"{path} (converted, cached at {tok_file})"
        except Exception:  # noqa: BLE001 - a broken cache entry is rebuilt
            pass
    from bertcli.modelfiles import check_config, check_legacy_tokenizer

    check_legacy_tokenizer(source, path)  # only on a cache miss: a cached conversion came from good files
    if model.has_config:  # transformers reads config.json too while converting: its errors would name vocab.txt
        check_config(model.config, model.file("config.json"))
    hf_tok = _convert_with_transformers(model, source, path)
    backend = hf_tok.backend_tokenizer
    specials = {role: str(getattr(hf_tok, role)) for role in SPECIAL_ROLES if getattr(hf_tok, role, None)}
    _store_converted(folder, backend, {"special_tokens": specials, "source": str(path), "kind": kind})
    return Tokenizer.from_str(backend.to_str()), specials, kind, f"{path} (converted, cached at {tok_file})"


def _store_converted(folder: Path, backend, meta: dict) -> None:
    """Write the converted tokenizer atomically; a cache we cannot write is only a lost speed-up."""
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=folder.parent))
        backend.save(str(tmp / "tokenizer.json"))
        (tmp / "meta.json").write_text(json.dumps(meta, ensure_ascii=False), encoding="utf-8")
        try:
            os.replace(tmp, folder)
        except OSError:  # another process won the race: keep theirs
            import shutil

            shutil.rmtree(tmp, ignore_errors=True)
    except OSError:
        pass


def _convert_with_transformers(model: ResolvedModel, source: str, path: Path):
    """Build the fast tokenizer the way ``AutoTokenizer.from_pretrained`` does."""
    _check_sentencepiece(source)
    import logging

    logging.getLogger("transformers").setLevel(logging.ERROR)
    import transformers

    try:
        if model.tokenizer_file is None and (model.has("tokenizer_config.json") or model.has("config.json")):
            extra = {"config": transformers.AutoConfig.for_model(**model.config)} if model.inferred_model_type else {}
            return transformers.AutoTokenizer.from_pretrained(str(model.path), **extra)
        # A bare tokenizer file: copy it alone into a scratch folder so nothing else beside it is picked up.
        cls = getattr(transformers, LEGACY_CLASSES[source])
        with tempfile.TemporaryDirectory(prefix="bertcli-tok-") as scratch:
            names = [path.name] + (["merges.txt"] if source == "vocab.json" else [])
            for name in names:
                target = "spiece.model" if source == "spiece.model" else name
                Path(scratch, target).write_bytes((path.parent / name).read_bytes())
            return cls.from_pretrained(scratch)
    except (ImportError, ModuleNotFoundError) as exc:
        raise MissingDependencyError(
            f"loading {path.name} needs an optional package: {exc}",
            hint="pip install sentencepiece protobuf  (core dependencies of bertcli: this install lacks them)",
        ) from exc


def _check_sentencepiece(source: str) -> None:
    if not source.endswith(".model"):
        return
    import importlib.util

    missing = [m for m in ("sentencepiece", "google.protobuf") if importlib.util.find_spec(m.split(".")[0]) is None]
    if missing:
        raise MissingDependencyError(
            f"a SentencePiece tokenizer ({source}) needs {' and '.join(m.split('.')[-1] for m in missing)}",
            hint="pip install sentencepiece protobuf  (core dependencies of bertcli: this install lacks them)",
        )

"""Contextual embeddings from any BERT-family encoder: pooling, layers, normalization, streaming.

`Embedder` turns an iterable of texts into one `Embedding` per text, in input order, holding only one window of
texts at a time (see `bertcli.batching`). Poolings: ``cls`` (row 0 of the chosen layer), ``pooler`` (the
model's pooler output, last layer only), ``mean`` and ``max`` over real tokens (padding excluded, as
sentence-transformers does), ``none`` (one vector per token).

A sentence-transformers folder (``modules.json`` with a Transformer at the root, ``1_Pooling/config.json``,
optionally a ``Normalize`` module, ``sentence_bert_config.json``'s ``max_seq_length``) gives its own defaults,
so that such a folder yields exactly the vectors ``SentenceTransformer(folder).encode`` yields.

`NpyStreamWriter` writes a ``.npy`` matrix row by row into a seekable file whose row count is not known in
advance (a fixed-size header is patched at the end): memory stays constant however many rows.

torch is imported inside functions only.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np

from bertcli.batching import DEFAULT_WINDOW, TokenBudgetBatcher, token_budget, trim_heap
from bertcli.choices import COMPUTE, ON_LONG, POOLINGS
from bertcli.errors import BadInputError, ModelFileError, UsageError
from bertcli.inputs import line_label
from bertcli.limits import token_limit
from bertcli.pooling import pool

#: sentence-transformers pooling flags → our pooling name (the ones we reproduce exactly)
_ST_POOLING_FLAGS = {
    "pooling_mode_cls_token": "cls",
    "pooling_mode_mean_tokens": "mean",
    "pooling_mode_max_tokens": "max",
}
_ST_OTHER_FLAGS = ("pooling_mode_mean_sqrt_len_tokens", "pooling_mode_weightedmean_tokens", "pooling_mode_lasttoken")


# ---------------------------------------------------------------------------------------------------------
# sentence-transformers folders


@dataclass(frozen=True)
class SentenceTransformersSetup:
    """What a sentence-transformers folder declares about turning token vectors into sentence vectors."""

    pooling: str | None  # cls / mean / max; None when the declared pooling is one we do not reproduce
    normalize: bool
    max_seq_length: int | None
    modules: tuple[str, ...]  # module type names, in order
    unsupported: tuple[str, ...] = ()  # modules or pooling modes not reproduced (vectors would differ)
    bad_max_seq_length: str | None = None  # sentence_bert_config.json's max_seq_length is unusable: why


def sentence_transformers_setup(folder: str | Path) -> SentenceTransformersSetup | None:
    """Read ``modules.json`` & co. from ``folder``; None when it is not a sentence-transformers folder.

    A folder that has ``modules.json`` promises its pooling and normalization: a ``modules.json``,
    ``1_Pooling/config.json`` or ``sentence_bert_config.json`` that cannot be read, or that says something
    impossible, is a `ModelFileError` naming the file — never silently different vectors.
    """
    folder = Path(folder)
    modules_path = folder / "modules.json"
    if not modules_path.exists():
        return None
    modules = _read_st_json(modules_path)
    if not isinstance(modules, list) or not all(isinstance(m, dict) for m in modules):
        raise ModelFileError(f"{modules_path} must hold a JSON list of modules ({{\"type\": …, \"path\": …}} each), "
                             f"not {_json_kind(modules)}")
    if not modules:
        return None
    types = tuple(str(m.get("type", "")).rsplit(".", 1)[-1] for m in modules)
    pooling: str | None = None
    normalize = False
    unsupported: list[str] = []
    for module in modules:
        kind = str(module.get("type", "")).rsplit(".", 1)[-1]
        path = str(module.get("path", ""))
        if kind == "Transformer":
            if path not in ("", "."):
                unsupported.append(f"Transformer in {path}/")
        elif kind == "Pooling":
            pooling_path = folder / path / "config.json"
            pooling_config = _read_st_json(pooling_path)
            if not isinstance(pooling_config, dict):
                raise ModelFileError(f"{pooling_path} must hold a JSON object of pooling flags, "
                                     f"not {_json_kind(pooling_config)}")
            pooling, bad = _st_pooling(pooling_config)
            if pooling is None and not bad:
                raise ModelFileError(f"{pooling_path} selects no pooling mode (pooling_mode_mean_tokens, "
                                     "pooling_mode_cls_token, … are all false or missing)")
            unsupported.extend(bad)
        elif kind == "Normalize":
            normalize = True
        else:
            unsupported.append(kind or "unknown module")
    max_seq = bad_max_seq = None
    st_path = folder / "sentence_bert_config.json"
    if st_path.exists():
        st_config = _read_st_json(st_path)
        if not isinstance(st_config, dict):
            raise ModelFileError(f"{st_path} must hold a JSON object, not {_json_kind(st_config)}")
        max_seq = st_config.get("max_seq_length")
        if max_seq is not None and (isinstance(max_seq, bool) or not isinstance(max_seq, int) or max_seq < 2):
            bad_max_seq = f"{st_path}: max_seq_length must be a whole number of tokens (at least 2), not {max_seq!r}"
            max_seq = None
    return SentenceTransformersSetup(
        pooling=pooling,
        normalize=normalize,
        max_seq_length=max_seq,
        modules=types,
        unsupported=tuple(unsupported),
        bad_max_seq_length=bad_max_seq,
    )


def _read_st_json(path: Path) -> Any:
    """A sentence-transformers JSON file that exists (a missing one is a `ModelFileError` too)."""
    from bertcli.modelfiles import describe

    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise ModelFileError(f"{path} is missing (modules.json lists it)") from exc
    except OSError as exc:
        raise ModelFileError(f"cannot read {path}: {describe(exc, with_file=False)}") from exc
    except UnicodeDecodeError as exc:
        raise ModelFileError(f"{path} is not UTF-8 text: it is corrupt") from exc
    try:
        return json.loads(text)
    except ValueError as exc:
        raise ModelFileError(f"{path} is not valid JSON ({exc})") from exc


def _json_kind(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", type(None): "null"}.get(type(value), f"a {type(value).__name__}")


def _st_pooling(config: dict) -> tuple[str | None, list[str]]:
    chosen = [name for flag, name in _ST_POOLING_FLAGS.items() if config.get(flag)]
    others = [flag for flag in _ST_OTHER_FLAGS if config.get(flag)]
    mode = config.get("pooling_mode")  # newer configs may name the mode directly
    if not chosen and not others and isinstance(mode, str):
        if mode in ("cls", "mean", "max"):
            chosen = [mode]
        else:
            others = [f"pooling_mode {mode}"]
    if len(chosen) == 1 and not others:
        return chosen[0], []
    if not chosen and not others:
        return None, []
    return None, [f"pooling {'+'.join(chosen + others)}"]


# ---------------------------------------------------------------------------------------------------------
# results


@dataclass
class Embedding:
    """The embedding of one input text."""

    index: int  # 0-based position in the input
    text: str
    vector: np.ndarray  # (hidden,) float32, or (tokens, hidden) with pooling none
    n_tokens: int  # tokens the model saw (special tokens included, after truncation)
    truncated: bool = False
    tokens: list[str] | None = None  # with pooling none


@dataclass
class EmbedStats:
    """Counters of a run (for warnings and the benchmark)."""

    texts: int = 0
    tokens: int = 0
    padded_tokens: int = 0
    batches: int = 0
    truncated: int = 0
    empty: int = 0
    first_truncated: str | None = None  # "where, line N" of the first truncated text


# ---------------------------------------------------------------------------------------------------------
# the embedder


@dataclass
class Embedder:
    """A loaded encoder + tokenizer + pooling settings. Use `load_embedder` to build one from a model ref."""

    model: Any  # a bertcli.backends.Backend for the base head (torch or ONNX)
    tokenizer: Any  # bertcli.tokenizer.LoadedTokenizer
    pooling: str = "mean"
    layer: int | None = None  # None = last; else an index into hidden_states (0 = embeddings)
    normalize: bool = False
    max_length: int | None = None
    on_long: str = "truncate"
    compute: str = "float32"  # bfloat16/float16: matmuls under torch.autocast (faster, cos ≥ 0.9999 to float32)
    batcher: TokenBudgetBatcher = field(default_factory=TokenBudgetBatcher)
    sentence_transformers: SentenceTransformersSetup | None = None
    stats: EmbedStats = field(default_factory=EmbedStats)

    def __post_init__(self) -> None:
        if self.pooling not in POOLINGS:
            raise UsageError(f"unknown --pooling {self.pooling!r}: choose one of {', '.join(POOLINGS)}")
        if self.on_long not in ON_LONG:
            raise UsageError(f"unknown --on-long {self.on_long!r}: choose truncate or error")
        if self.compute not in COMPUTE:
            raise UsageError(f"unknown --compute {self.compute!r}: choose one of {', '.join(COMPUTE)}")
        self.layer = normalize_layer(self.layer, self.num_layers)
        if self.pooling == "pooler":
            if self.layer is not None:
                raise UsageError("--pooling pooler reads the model's pooler output, which exists for the last layer "
                                 "only; use --pooling cls with --layer")
            if not self.model.has_pooler:
                detail = (" has no pooler layer" if not self.model.pooler_layer
                          else ": its checkpoint holds no pooler weights, so the pooler would be random")
                raise ModelFileError(
                    f"--pooling pooler: {self.model.resolved.display_name} has no trained pooler "
                    f"({self.model.architecture.split(' via ')[0]}{detail})",  # the class, whichever backend
                    hint="use --pooling cls, mean or max",
                )
        config = self.model.config
        self.pad_id = _pad_id(self.tokenizer, config)
        self.uses_token_types = int(getattr(config, "type_vocab_size", 0) or 0) > 0

    @property
    def backend(self) -> str:
        """The backend's name: torch or onnx."""
        return self.model.name

    @property
    def num_layers(self) -> int:
        return self.model.num_layers

    @property
    def dim(self) -> int:
        return self.model.hidden_size

    @property
    def layer_label(self) -> str:
        """The layer used, for people: 'last (6)' or '3 of 6' (0 = the embedding output)."""
        if self.layer is None:
            return f"last ({self.num_layers})"
        return f"{self.layer} of {self.num_layers}"

    # -- the stream ---------------------------------------------------------------------------------------

    def embed(
        self,
        texts: Iterable[Any],
        *,
        on_batch: Callable[[int, int], None] | None = None,
    ) -> Iterator[Embedding]:
        """Embed texts (str or `bertcli.inputs.Line`) and yield one `Embedding` each, in input order.

        ``on_batch(rows, planned)`` is called after every batch with the rows just done and the number of
        batches planned for the current window (for progress bars).
        """
        with self.model.session(self.compute):
            yield from self._stream(texts, on_batch)

    def _stream(self, texts: Iterable[Any], on_batch: Callable[[int, int], None] | None) -> Iterator[Embedding]:
        index = 0
        for window in self.batcher.windows(texts):
            strings = [getattr(t, "text", t) for t in window]
            encodings, truncated = self._encode(window, strings)
            lengths = [len(e.ids) for e in encodings]
            plan = self.batcher.plan(lengths)
            results: list = [None] * len(window)
            for batch in plan:
                outputs = self._forward([encodings[i] for i in batch])
                trim_heap()
                for i, vec in zip(batch, outputs):
                    results[i] = vec
                self.stats.batches += 1
                self.stats.padded_tokens += len(batch) * max(lengths[i] for i in batch)
                if on_batch is not None:
                    on_batch(len(batch), len(plan))
            for offset, (text, enc, vec) in enumerate(zip(strings, encodings, results)):
                yield Embedding(
                    index=index + offset,
                    text=text,
                    vector=vec,
                    n_tokens=len(enc.ids),
                    truncated=offset in truncated,
                    tokens=list(enc.tokens) if self.pooling == "none" else None,
                )
            index += len(window)

    def embed_array(self, texts: Iterable[Any]) -> np.ndarray:
        """All pooled vectors as one (n, hidden) float32 matrix (convenience for small inputs)."""
        if self.pooling == "none":
            raise UsageError("--pooling none gives one matrix per text, not one matrix")
        rows = [e.vector for e in self.embed(texts)]
        return np.stack(rows) if rows else np.zeros((0, self.dim), dtype=np.float32)

    # -- steps --------------------------------------------------------------------------------------------

    def _encode(self, window: list, strings: list[str]) -> tuple[list, set[int]]:
        """Tokenize a window (truncated to max_length); also the positions that were truncated."""
        encodings = self.tokenizer.encode_batch(strings, max_length=self.max_length)
        truncated: set[int] = set()
        for pos, (item, text, enc) in enumerate(zip(window, strings, encodings)):
            self.stats.texts += 1
            self.stats.tokens += len(enc.ids)
            if not text.strip():
                self.stats.empty += 1
            if enc.overflowing:
                where = _where(item, self.stats.texts)
                if self.on_long == "error":
                    raise BadInputError(
                        f"{where}: longer than the limit of {self.max_length} tokens",
                        hint="--on-long truncate cuts long texts to the limit",
                    )
                truncated.add(pos)
                self.stats.truncated += 1
                if self.stats.first_truncated is None:
                    self.stats.first_truncated = where
        return encodings, truncated

    def _forward(self, encodings: list) -> list[np.ndarray]:
        """One batch through the backend, pooled: one vector (or token matrix, pooling none) per encoding."""
        n = len(encodings)
        longest = max(len(e.ids) for e in encodings)
        ids = np.full((n, longest), self.pad_id, dtype=np.int64)
        mask = np.zeros((n, longest), dtype=np.int64)
        types = np.zeros((n, longest), dtype=np.int64) if self.uses_token_types else None
        for row, enc in enumerate(encodings):
            k = len(enc.ids)
            ids[row, :k] = enc.ids
            mask[row, :k] = 1
            if types is not None:
                types[row, :k] = enc.type_ids
        out = self.model.run(ids, mask, types, layer=self.layer)
        vectors = pool(out.hidden, mask, self.pooling, pooled=out.pooled, normalize=self.normalize)
        if self.pooling == "none":
            return [vectors[row, : len(enc.ids)].copy() for row, enc in enumerate(encodings)]
        return list(vectors)


def normalize_layer(layer: int | None, num_layers: int) -> int | None:
    """--layer N → an index into hidden_states (0 = embeddings … num_layers = last); None means the last."""
    if layer is None:
        return None
    if not -(num_layers + 1) <= layer <= num_layers:
        raise UsageError(
            f"--layer {layer} is out of range: this model has {num_layers} layers "
            f"(0 = the embedding output, 1…{num_layers}, or -1…-{num_layers + 1} from the end)"
        )
    index = layer if layer >= 0 else num_layers + 1 + layer
    return None if index == num_layers else index


def _pad_id(tokenizer: Any, config: Any) -> int:
    pad = getattr(config, "pad_token_id", None)
    if isinstance(pad, int):
        return pad
    token = tokenizer.special_tokens.get("pad_token")
    tid = tokenizer.token_id(token) if token else None
    return tid if tid is not None else 0


def _where(item: Any, ordinal: int) -> str:
    """`bertcli.inputs.line_label` of an input line; "text N" (its ordinal) for a plain string."""
    number = getattr(item, "number", None)
    return line_label(ordinal) if number is None else line_label(number, getattr(item, "source", None))


# ---------------------------------------------------------------------------------------------------------
# building one


@dataclass
class EmbedOptions:
    """How to embed: what `load_embedder` needs, shared by the local engine and the Ray engine's workers.

    ``pooling``/``normalize``/``max_length`` left as None take a sentence-transformers folder's own settings
    (else mean pooling, no normalization, the model's maximum length). ``max_tokens`` None picks a token
    budget for the backend and device (`bertcli.batching.token_budget`). ``backend="onnx"`` runs the encoder on ONNX Runtime (CPU; exported once into bertcli's cache, see
    `bertcli.backends.onnx`), optionally ``quantize="int8"``; its intra-op threads default to the physical cores
    / ``workers``.
    """

    pooling: str | None = None
    normalize: bool | None = None
    layer: int | None = None
    max_length: int | None = None
    on_long: str = "truncate"
    device: str = "cpu"
    threads: int | None = None
    max_tokens: int | None = None
    batch_size: int | None = None
    window: int = DEFAULT_WINDOW
    sort: bool = True
    compute: str = "float32"  # bfloat16/float16: matmuls under torch.autocast (faster, cos ≥ 0.9999 to float32)
    backend: str = "auto"  # auto | torch | onnx (bertcli.backends.choose_backend decides)
    quantize: str | None = None
    workers: int = 1

    def check(self) -> None:
        """Refuse impossible values and combinations (`UsageError`) before anything is loaded; lower-cases
        ``backend``."""
        from bertcli.backends import check_backend, check_runnable

        if self.pooling is not None and self.pooling not in POOLINGS:
            raise UsageError(f"unknown --pooling {self.pooling!r}: choose one of {', '.join(POOLINGS)}")
        if self.on_long not in ON_LONG:
            raise UsageError(f"unknown --on-long {self.on_long!r}: choose truncate or error")
        if self.max_tokens is not None and self.max_tokens < 1:
            raise UsageError("--max-tokens must be at least 1")
        if self.batch_size is not None and self.batch_size < 1:
            raise UsageError("--batch-size must be at least 1")
        self.backend = check_backend(self.backend, self.quantize)
        check_runnable(self.backend, device=self.device, compute=self.compute, layer=self.layer)


def load_embedder(resolved: Any, options: EmbedOptions | None = None, **overrides: Any) -> Embedder:
    """Load the encoder and tokenizer of ``resolved`` (a `bertcli.resolve.ResolvedModel`) as ``options`` say
    (an `EmbedOptions`; keywords build one, or override its fields)."""
    from dataclasses import replace

    from bertcli.backends import load_backend
    from bertcli.modelfiles import check_vocab_fits
    from bertcli.tokenizer import load_tokenizer

    options = replace(options or EmbedOptions(), **overrides)
    options.check()
    st = sentence_transformers_setup(resolved.path) if resolved.tokenizer_file is None else None
    pooling, normalize = _pooling_of(options, st)
    tokenizer = load_tokenizer(resolved)
    check_vocab_fits(tokenizer, resolved)
    max_length = max_length_of(options, st, resolved, tokenizer)
    model = load_backend(resolved, "base", backend=options.backend, device=options.device, threads=options.threads,
                         workers=options.workers, quantize=options.quantize, compute=options.compute,
                         features=("hidden_states",) if options.layer is not None else ())
    return Embedder(
        model=model,
        tokenizer=tokenizer,
        pooling=pooling,
        layer=options.layer,
        normalize=normalize,
        max_length=max_length,
        on_long=options.on_long,
        compute=options.compute,
        batcher=TokenBudgetBatcher(max_tokens=token_budget(options.max_tokens, model), max_batch=options.batch_size,
                                   window=options.window, sort=options.sort),
        sentence_transformers=st,
    )


def _pooling_of(options: EmbedOptions, st: SentenceTransformersSetup | None) -> tuple[str, bool]:
    """The pooling and normalization to use: the options', else the sentence-transformers folder's, else mean."""
    pooling = options.pooling
    if st is not None and st.pooling is not None and pooling is None:
        pooling = st.pooling
    normalize = options.normalize
    if normalize is None:  # the folder's Normalize module belongs to its own pooling
        normalize = bool(st and st.normalize and st.pooling is not None and pooling == st.pooling)
    return pooling or "mean", normalize


def max_length_of(options: EmbedOptions, st: SentenceTransformersSetup | None, resolved: Any,
                   tokenizer: Any) -> int | None:
    """The token limit texts are cut to: --max-length (checked against the model's), else the
    sentence-transformers folder's max_seq_length, else the model's own limit."""
    limit = token_limit(resolved.config, tokenizer.model_max_length)
    max_length = options.max_length
    if max_length is not None:
        if max_length < 2:
            raise UsageError("--max-length must be at least 2 (room for the special tokens)")
        if limit is not None and max_length > limit:
            raise UsageError(f"--max-length {max_length} is more than this model's maximum of {limit} tokens")
        return max_length
    if st and st.bad_max_seq_length:  # the folder's own limit is unusable, and nothing overrides it
        raise ModelFileError(st.bad_max_seq_length, hint="fix the file, or give --max-length N")
    if st and st.max_seq_length and limit is not None and st.max_seq_length > limit:
        raise ModelFileError(
            f"{Path(resolved.path) / 'sentence_bert_config.json'}: max_seq_length {st.max_seq_length:,} is more "
            f"than this model's maximum of {limit} tokens",
            hint=f"fix the file, or give --max-length {limit}",
        )
    return st.max_seq_length if st and st.max_seq_length else limit


def cosine_matrix(vectors: np.ndarray) -> np.ndarray:
    """Cosine similarity of every row with every row (zero rows give 0)."""
    v = np.asarray(vectors, dtype=np.float64)
    norms = np.linalg.norm(v, axis=1, keepdims=True)
    unit = np.divide(v, norms, out=np.zeros_like(v), where=norms > 0)
    return (unit @ unit.T).astype(np.float32)


# ---------------------------------------------------------------------------------------------------------
# .npy streaming

NPY_HEADER_BYTES = 128  # fixed, so the header can be rewritten in place once the row count is known


def npy_header(shape: tuple[int, ...], dtype: Any) -> bytes:
    """A format-1.0 .npy header of exactly NPY_HEADER_BYTES bytes."""
    descr = np.lib.format.dtype_to_descr(np.dtype(dtype))
    shape_repr = "(" + ", ".join(str(int(s)) for s in shape) + ("," if len(shape) == 1 else "") + ")"
    body = "{'descr': %r, 'fortran_order': False, 'shape': %s, }" % (descr, shape_repr)
    room = NPY_HEADER_BYTES - 10 - 1  # magic(6) + version(2) + length(2), newline at the end
    if len(body) > room:
        raise ValueError("shape too large for the fixed .npy header")
    text = body.ljust(room) + "\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(text)) + text.encode("latin-1")


class NpyStreamWriter:
    """Append rows of a (rows, dim) matrix to a seekable binary file; `close` writes the true row count."""

    def __init__(self, handle: IO[bytes], dim: int, dtype: str = "float32"):
        self.handle = handle
        self.dim = int(dim)
        self.dtype = np.dtype(dtype).newbyteorder("<")
        self.rows = 0
        self._start = handle.tell()
        self._write(npy_header((0, self.dim), self.dtype))

    def _write(self, data: bytes | memoryview) -> None:
        self.handle.write(data)

    def write(self, rows: np.ndarray) -> None:
        """Append rows ((k, dim) or one (dim,) vector), converted to the writer's dtype."""
        block = np.ascontiguousarray(np.atleast_2d(rows), dtype=self.dtype)
        if block.shape[1] != self.dim:
            raise ValueError(f"row width {block.shape[1]} != {self.dim}")
        self._write(memoryview(block).cast("B"))
        self.rows += block.shape[0]

    def close(self) -> None:
        """Patch the header with the final shape (the file position is left at the end)."""
        end = self.handle.tell()
        self.handle.seek(self._start)
        self._write(npy_header((self.rows, self.dim), self.dtype))
        self.handle.seek(end)

"""Weight files read without loading a model: safetensors headers, and (opt-in) pickle checkpoints.

A safetensors file is an 8-byte little-endian header length, a JSON header (tensor name → dtype, shape,
data offsets) and the raw data. Reading the header alone tells every tensor's name, shape and dtype in
microseconds, with no torch. The header is validated: a file cut short (data offsets beyond its end) or a
header that is not the JSON safetensors writes is a `ModelFileError`, not a crash later.

Tensor names are grouped by module (embeddings, the embedding projection, encoder layer i or ALBERT's shared
layer group, pooler, heads). Buffers some checkpoints carry (``embeddings.position_ids``) are listed but are
not parameters. Files written by ``save_pretrained`` omit tied copies (the MLM decoder shares the word
embeddings); `tied_weights` names them so that the file's parameters, the model's ``parameters()`` (which
counts a shared tensor once) and its ``state_dict()`` (which lists it under both names) reconcile.

Pickle (``.bin``) checkpoints can run code when unpickled: `read_pickle_weights` is only called when the user
passes ``--allow-pickle``, and then loads with ``torch.load(weights_only=True)`` — the only torch import here.
"""

from __future__ import annotations

import json
import os
import re
import struct
from collections.abc import Iterable
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from pathlib import Path

from bertcli.errors import MissingDependencyError, ModelFileError, describe

#: safetensors dtype → (bytes per element, name users know)
SAFETENSORS_DTYPES: dict[str, tuple[int, str]] = {
    "BOOL": (1, "bool"), "U8": (1, "uint8"), "I8": (1, "int8"), "F8_E4M3": (1, "float8_e4m3fn"),
    "F8_E5M2": (1, "float8_e5m2"), "I16": (2, "int16"), "U16": (2, "uint16"), "F16": (2, "float16"),
    "BF16": (2, "bfloat16"), "I32": (4, "int32"), "U32": (4, "uint32"), "F32": (4, "float32"),
    "I64": (8, "int64"), "U64": (8, "uint64"), "F64": (8, "float64"),
}

#: A header larger than this is not one safetensors would write for a BERT-sized model: treat as corrupt.
MAX_HEADER_BYTES = 100 * 1024 * 1024

#: Weight file name endings → format.
WEIGHT_FORMATS = {".safetensors": "safetensors", ".bin": "pickle", ".pt": "pickle", ".pth": "pickle",
                  ".h5": "tensorflow", ".msgpack": "flax", ".onnx": "onnx"}

#: Non-persistent buffers that older checkpoints saved with the weights; not parameters.
BUFFER_SUFFIXES = ("embeddings.position_ids", "embeddings.token_type_ids")


@dataclass
class TensorInfo:
    """One tensor as its file describes it."""

    name: str
    shape: tuple[int, ...]
    dtype: str  # torch-style name: float32, int64, …
    file: str
    module: str = ""

    @property
    def buffer(self) -> bool:
        """A non-persistent buffer some checkpoints saved (position ids), not a parameter."""
        return self.name.endswith(BUFFER_SUFFIXES)

    @property
    def numel(self) -> int:
        n = 1
        for d in self.shape:
            n *= d
        return n

    def as_record(self) -> dict:
        return {"name": self.name, "module": self.module, "shape": list(self.shape), "dtype": self.dtype,
                "parameters": 0 if self.buffer else self.numel, "buffer": self.buffer, "file": self.file}


@dataclass
class ModuleGroup:
    """The tensors of one module (e.g. ``encoder layer 3``) and their parameter count."""

    name: str
    tensors: list[TensorInfo] = field(default_factory=list)

    @property
    def parameters(self) -> int:
        return sum(t.numel for t in self.tensors if not t.buffer)


@dataclass
class TiedWeight:
    """A tensor the model has under ``name`` that the file stores only once, as ``tied_to``."""

    name: str
    tied_to: str
    numel: int

    def as_record(self) -> dict:
        return {"name": self.name, "tied_to": self.tied_to, "parameters": self.numel}


# ---------------------------------------------------------------------------------------------------------
# safetensors


def read_safetensors_header(path: str | os.PathLike, *, file_label: str | None = None) -> tuple[dict, int]:
    """(header dict without ``__metadata__`` → kept under that key, size of the data section) — validated.

    Errors name the file as ``file_label`` (default: its name)."""
    path = Path(path)
    label = file_label or path.name
    try:
        size = path.stat().st_size
        with open(path, "rb") as fh:
            head = fh.read(8)
            if len(head) < 8:
                raise ModelFileError(f"{label} is too short to be a safetensors file ({size} bytes)")
            (length,) = struct.unpack("<Q", head)
            if length > MAX_HEADER_BYTES:
                raise ModelFileError(f"{label} has a corrupt header (declared header length {length:,} bytes)")
            if 8 + length > size:
                raise ModelFileError(
                    f"{label} is truncated: its header needs {length:,} bytes but the file holds {size - 8:,} "
                    "after the length prefix",
                    hint="the download was probably interrupted: download the model again",
                )
            raw = fh.read(length)
    except OSError as exc:
        raise ModelFileError(f"cannot read {path}: {describe(exc, with_file=False)}") from exc
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelFileError(f"{label} has a corrupt header (not the JSON safetensors writes: {exc})") from exc
    if not isinstance(header, dict):
        raise ModelFileError(f"{label} has a corrupt header (a JSON {type(header).__name__}, not an object)")
    return header, size - 8 - length


def read_safetensors(path: str | os.PathLike, *, file_label: str | None = None) -> list[TensorInfo]:
    """Every tensor a safetensors file holds, from its header alone; offsets checked against the file size."""
    path = Path(path)
    label = file_label or path.name
    header, data_size = read_safetensors_header(path, file_label=label)
    tensors = []
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        if not isinstance(entry, dict):
            raise ModelFileError(f"{label} has a corrupt header: entry {name!r} is not an object")
        dtype, shape, offsets = entry.get("dtype"), entry.get("shape"), entry.get("data_offsets")
        if dtype not in SAFETENSORS_DTYPES:
            raise ModelFileError(f"{label} has a corrupt header: tensor {name!r} has unknown dtype {dtype!r}")
        if not (isinstance(shape, list) and all(isinstance(d, int) and d >= 0 for d in shape)):
            raise ModelFileError(f"{label} has a corrupt header: tensor {name!r} has shape {shape!r}")
        if not (isinstance(offsets, list) and len(offsets) == 2 and all(isinstance(o, int) for o in offsets)
                and 0 <= offsets[0] <= offsets[1]):
            raise ModelFileError(f"{label} has a corrupt header: tensor {name!r} has data offsets {offsets!r}")
        itemsize, dtype_name = SAFETENSORS_DTYPES[dtype]
        info = TensorInfo(name, tuple(shape), dtype_name, label)
        if offsets[1] - offsets[0] != info.numel * itemsize:
            raise ModelFileError(
                f"{label} has a corrupt header: tensor {name!r} {dtype}{list(shape)} needs "
                f"{info.numel * itemsize:,} bytes but its offsets span {offsets[1] - offsets[0]:,}"
            )
        if offsets[1] > data_size:
            raise ModelFileError(
                f"{label} is truncated: tensor {name!r} ends at byte {offsets[1]:,} of the data but the file "
                f"holds only {data_size:,}",
                hint="the download was probably interrupted: download the model again",
            )
        tensors.append(info)
    return tensors


# ---------------------------------------------------------------------------------------------------------
# pickle (opt-in)


def read_pickle_weights(path: str | os.PathLike, *, file_label: str | None = None) -> list[TensorInfo]:
    """Tensors of a pickle checkpoint, loaded with ``torch.load(weights_only=True)`` (memory-mapped when possible).

    Only for ``--allow-pickle``. A tensor stored twice under two names (tied weights in old checkpoints) is kept
    under its first name only, as ``parameters()`` counts it.
    """
    path = Path(path)
    label = file_label or path.name
    try:
        import torch
    except ImportError as exc:  # pragma: no cover - torch is a core dependency
        raise MissingDependencyError("reading pickle weights needs torch", hint="pip install torch") from exc
    try:
        try:
            state = torch.load(str(path), map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError as exc:
            if "mmap" not in str(exc):
                raise
            state = torch.load(str(path), map_location="cpu", weights_only=True)  # legacy (non-zip) format
    except Exception as exc:  # noqa: BLE001 - unpickling errors come in many types; the message is the detail
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelFileError(f"cannot load {label} with weights_only=True: {first}") from exc
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise ModelFileError(f"{label} does not hold a state dict (found {type(state).__name__})")
    tensors, seen = [], set()
    for name, value in state.items():
        if not isinstance(value, torch.Tensor):
            continue
        key = (value.untyped_storage().data_ptr(), value.storage_offset(), tuple(value.shape), value.dtype)
        if value.numel() and key in seen:
            continue
        seen.add(key)
        tensors.append(TensorInfo(str(name), tuple(value.shape), str(value.dtype).replace("torch.", ""), label))
    return tensors


# ---------------------------------------------------------------------------------------------------------
# grouping by module

_BASE_PREFIXES = ("bert.", "roberta.", "albert.", "electra.", "distilbert.", "deberta.", "model.")  # model.: ModernBERT
_LAYER_RE = re.compile(r"^(?:encoder\.layer|transformer\.layer|layers)\.(\d+)\.")  # DistilBERT: transformer.layer.N; ModernBERT: layers.N
_ALBERT_RE = re.compile(r"^encoder\.albert_layer_groups\.(\d+)\.albert_layers\.(\d+)\.")

#: name prefixes (after the base-model prefix is removed) → head group, in display order
HEAD_GROUPS: list[tuple[str, tuple[str, ...]]] = [
    ("head: masked LM", ("cls.predictions.", "lm_head.", "predictions.", "generator_predictions.",
                         "generator_lm_head.", "vocab_transform.", "vocab_layer_norm.", "vocab_projector.",
                         "lm_predictions.", "decoder.")),  # DistilBERT; DeBERTa-v2, ModernBERT
    ("head: next sentence prediction", ("cls.seq_relationship.",)),
    ("head: sentence order prediction", ("sop_classifier.",)),
    ("head: question answering", ("qa_outputs.",)),
    ("head: replaced token detection", ("discriminator_predictions.", "mask_predictions.")),  # ELECTRA, DeBERTa-v3
    ("head: prediction head (dense + norm)", ("head.",)),  # ModernBERT's, before its classifier or decoder
    ("head: classifier", ("classifier.", "pre_classifier.")),
]


def strip_base_prefix(name: str) -> str:
    for prefix in _BASE_PREFIXES:
        if name.startswith(prefix):
            return name[len(prefix):]
    return name


def module_of(name: str) -> tuple[tuple, str]:
    """(sort key, module label) for a tensor name."""
    if name.endswith(BUFFER_SUFFIXES):
        return (90,), "buffers"
    for i, (label, prefixes) in enumerate(HEAD_GROUPS):
        if name.startswith(prefixes):  # heads sit outside the base model's prefix
            return (60 + i,), label
    short = strip_base_prefix(name)
    if short.startswith("embeddings."):
        return (0,), "embeddings"
    if short.startswith(("embeddings_project.", "encoder.embedding_hidden_mapping_in.")):
        return (1,), "embedding projection E→H"
    m = _LAYER_RE.match(short)
    if m:
        return (10, int(m.group(1))), f"encoder layer {m.group(1)}"
    m = _ALBERT_RE.match(short)
    if m:
        return (10, int(m.group(1)), int(m.group(2))), f"shared layer group {m.group(1)} · layer {m.group(2)}"
    if short.startswith("pooler."):
        return (50,), "pooler"
    if short.startswith(("encoder.rel_embeddings.", "encoder.LayerNorm.")):  # DeBERTa-v2/v3
        return (5,), "relative position embeddings"
    if short.startswith("encoder.conv."):
        return (6,), "convolution layer"
    if short.startswith("final_norm."):  # ModernBERT (pre-norm)
        return (40,), "final norm"
    return (99,), "other"


def group_tensors(tensors: Iterable[TensorInfo]) -> list[ModuleGroup]:
    """Tensors grouped by module, modules in model order (tensor order within a module kept)."""
    groups: dict[str, tuple[tuple, ModuleGroup]] = {}
    for t in tensors:
        key, label = module_of(t.name)
        t.module = label
        if label not in groups:
            groups[label] = (key, ModuleGroup(label))
        groups[label][1].tensors.append(t)
    return [g for _, g in sorted(groups.values(), key=lambda kg: kg[0])]


def filter_tensors(tensors: Iterable[TensorInfo], pattern: str | None) -> list[TensorInfo]:
    """Tensors whose name matches a shell glob (``*`` crosses dots); a pattern without wildcards matches substrings."""
    tensors = list(tensors)
    if not pattern:
        return tensors
    if not any(c in pattern for c in "*?["):
        pattern = f"*{pattern}*"
    return [t for t in tensors if fnmatchcase(t.name, pattern)]


# ---------------------------------------------------------------------------------------------------------
# tied weights

#: (head bias present in the file, name the model also has, what it is tied to; "{word}" = word embeddings)
_TIE_RULES: list[tuple[str, str, str]] = [
    ("cls.predictions.bias", "cls.predictions.decoder.weight", "{word}"),
    ("cls.predictions.bias", "cls.predictions.decoder.bias", "cls.predictions.bias"),
    ("lm_head.bias", "lm_head.decoder.weight", "{word}"),
    ("lm_head.bias", "lm_head.decoder.bias", "lm_head.bias"),
    ("predictions.bias", "predictions.decoder.weight", "{word}"),
    ("predictions.bias", "predictions.decoder.bias", "predictions.bias"),
    ("generator_lm_head.bias", "generator_lm_head.weight", "{word}"),
    ("vocab_projector.bias", "vocab_projector.weight", "{word}"),  # DistilBERT
    ("decoder.bias", "decoder.weight", "{word}"),  # ModernBERT
]


def tied_weights(tensors: Iterable[TensorInfo], *, tie_word_embeddings: bool = True) -> list[TiedWeight]:
    """Tensors the model has but the file omits because they share another tensor (the MLM decoder).

    Follows transformers' ``_tied_weights_keys`` for BERT, RoBERTa, ALBERT, ELECTRA and DistilBERT: the decoder weight is
    the word embedding matrix (unless ``tie_word_embeddings`` is false) and the decoder bias is the head's bias.
    """
    by_name = {t.name: t for t in tensors}
    word = next((n for n in by_name if n.endswith(("embeddings.word_embeddings.weight",
                                                   "embeddings.tok_embeddings.weight"))), None)
    out = []
    for anchor, name, target in _TIE_RULES:
        if anchor not in by_name or name in by_name:
            continue
        if target == "{word}":
            if word is None or not tie_word_embeddings:
                continue
            target = word
        out.append(TiedWeight(name, target, by_name[target].numel))
    return out


def weight_format(filename: str) -> str | None:
    for suffix, fmt in WEIGHT_FORMATS.items():
        if filename.endswith(suffix):
            return fmt
    return None

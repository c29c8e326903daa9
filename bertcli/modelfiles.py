"""The one place where problems with a model's files become a `ModelFileError` that names the file.

Every loader (`runner.load_model`, `tokenizer.load_tokenizer`, `embed.load_embedder`, `backends.onnx`,
`inspect`) goes through here, so a corrupt file gives exit 6 and one line saying which file and what is wrong —
never exit 1 ("a bug") and never a library's own wording (transformers' "look at the above report!").

- `check_config` validates config.json's sizes before anything is allocated: positive integers within sane
  bounds (a ``vocab_size`` of "lots", a ``hidden_size`` of 32.5, -1 or 10^15 are refused).
- `check_weights` reads the safetensors headers (no torch, microseconds) and refuses a config whose layers or
  embedding sizes the weights do not hold (``num_hidden_layers: 1000000`` over a 2-layer file).
- `check_vocab_fits` refuses a tokenizer whose ids reach past the model's embedding rows (an IndexError at the
  first forward pass otherwise).
- `model_files(label)` is the context manager every loader wraps its library calls in: whatever the library
  raises while reading files becomes a `ModelFileError` "LABEL: what went wrong" (a permission problem says so).
- `non_finite_fields` finds NaN/Infinity in a JSON config (JSON has no NaN; Python's parser accepts it).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bertcli.errors import BertcliError, MissingDependencyError, ModelFileError, describe
from bertcli.limits import bert_names

#: size fields of a config → (smallest, largest) value accepted. The upper bounds are far above any
#: BERT-family checkpoint and stop an absurd config before it allocates (or loops over) gigabytes.
SIZE_FIELDS: dict[str, tuple[int, int]] = {
    "vocab_size": (1, 1 << 24),
    "hidden_size": (1, 1 << 16),
    "embedding_size": (1, 1 << 16),
    "num_hidden_layers": (1, 1024),
    "num_attention_heads": (1, 1024),
    "intermediate_size": (1, 1 << 18),
    "max_position_embeddings": (1, 1 << 20),
    "type_vocab_size": (0, 1 << 16),
    "num_hidden_groups": (1, 1024),
    "inner_group_num": (1, 1024),
}

#: float fields a model computes with: must be finite numbers
FLOAT_FIELDS = ("layer_norm_eps", "hidden_dropout_prob", "attention_probs_dropout_prob", "initializer_range")


@contextmanager
def model_files(label: str | Path, *, hint: str | None = None) -> Iterator[None]:
    """Turn whatever a library raises while reading model files into one `ModelFileError` naming ``label``.

    bertcli's own errors pass through; so do missing optional packages (exit 7), interrupts and memory errors.
    """
    try:
        yield
    except (BertcliError, KeyboardInterrupt, MemoryError, SystemExit):
        raise
    except (ImportError, ModuleNotFoundError) as exc:
        raise MissingDependencyError(f"reading {label} needs an optional package: {describe(exc)}") from exc
    except Exception as exc:  # noqa: BLE001 - the library's error is the detail; the file is what we add
        raise ModelFileError(f"{label}: {describe(exc)}", hint=hint) from exc


def non_finite_fields(data: Any, prefix: str = "") -> list[str]:
    """Dotted names of every NaN/Infinity float in a parsed JSON value."""
    out: list[str] = []
    if isinstance(data, float) and not math.isfinite(data):
        out.append(prefix or "value")
    elif isinstance(data, dict):
        for key, value in data.items():
            out += non_finite_fields(value, f"{prefix}.{key}" if prefix else str(key))
    elif isinstance(data, list):
        for i, value in enumerate(data):
            out += non_finite_fields(value, f"{prefix}[{i}]")
    return out


def size_problems(config: dict[str, Any]) -> list[str]:
    """What is wrong with a config's size fields (empty when all are sane), one phrase each."""
    problems = []
    for name, (low, high) in SIZE_FIELDS.items():
        if name not in config or config[name] is None:
            continue
        value = config[name]
        if isinstance(value, bool) or not isinstance(value, int):
            problems.append(f"{name} must be a whole number, not {value!r}")
        elif value < low:
            problems.append(f"{name} is {value}, but must be at least {low}")
        elif value > high:
            problems.append(f"{name} is {value:,}, far beyond any BERT-family model (at most {high:,})")
    for name in FLOAT_FIELDS:
        value = config.get(name)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            problems.append(f"{name} must be a finite number, not {value!r}")
    return problems


def check_config(config: dict[str, Any], path: str | Path) -> None:
    """Refuse (exit 6) a config whose sizes a model cannot be built from, before anything is allocated."""
    config = bert_names(config)  # DistilBERT's dim/n_heads/n_layers checked as BERT's sizes
    problems = size_problems(config)
    if problems:
        raise ModelFileError(f"{path}: {'; '.join(problems)}")
    hidden, heads = config.get("hidden_size"), config.get("num_attention_heads")
    if isinstance(hidden, int) and isinstance(heads, int) and hidden % heads:
        raise ModelFileError(f"{path}: hidden_size {hidden} is not a multiple of num_attention_heads {heads}")


def stored_layers(tensors) -> tuple[int, str]:
    """(how many encoder layers the tensors hold, what kind: "layer" or "shared layer") — 0 when unknown."""
    from bertcli.weights import module_of

    plain, shared = set(), set()
    for t in tensors:
        key, label = module_of(t.name)
        if label.startswith("encoder layer"):
            plain.add(key)
        elif label.startswith("shared layer group"):
            shared.add(key)
    return (len(shared), "shared layer") if shared else (len(plain), "layer")


def check_weights(resolved: Any) -> list:
    """Read and validate the safetensors headers of ``resolved`` (no torch); refuse sizes they do not hold.

    Returns the tensors read (empty when the model has only pickle weights, which are not read here).
    """
    files = [f for f in resolved.weight_files() if f.endswith(".safetensors")]
    if not files:
        return []
    from bertcli.weights import read_safetensors

    tensors = []
    for name in files:
        tensors += read_safetensors(resolved.file(name), file_label=str(resolved.file(name)))
    config = bert_names(resolved.config)
    label = files[0] if len(files) == 1 else f"the weight files ({', '.join(files)})"
    config_path = resolved.file("config.json")
    count, kind = stored_layers(tensors)
    if count:
        if kind == "shared layer":
            groups, inner = config.get("num_hidden_groups", 1), config.get("inner_group_num", 1)
            wanted, what = (groups * inner if isinstance(groups, int) and isinstance(inner, int) else 0,
                            f"num_hidden_groups × inner_group_num = {groups} × {inner}")
        else:
            wanted, what = config.get("num_hidden_layers"), f"num_hidden_layers {config.get('num_hidden_layers')}"
        if isinstance(wanted, int) and wanted > count:
            raise ModelFileError(
                f"{config_path} asks for {what} but {label} holds {count} {kind}(s): the config does not match "
                "these weights"
            )
    for key, tensor_name, what in (("vocab_size", "embeddings.word_embeddings.weight", "word"),
                                   ("max_position_embeddings", "embeddings.position_embeddings.weight", "position")):
        table = next((t for t in tensors if t.name.endswith(tensor_name)), None)
        wanted = config.get(key)
        if table is not None and len(table.shape) == 2 and isinstance(wanted, int) and wanted != table.shape[0]:
            raise ModelFileError(
                f"{config_path} says {key} {wanted:,} but {label} holds {table.shape[0]:,} {what} embeddings: "
                "the config does not match these weights"
            )
    return tensors


def check_model(resolved: Any) -> list:
    """`check_config` and `check_weights` together: what every model load runs before torch is imported."""
    if resolved.has_config:
        check_config(resolved.config, resolved.file("config.json"))
    return check_weights(resolved)


def check_vocab_fits(tokenizer: Any, resolved: Any) -> None:
    """Refuse a tokenizer whose token ids reach past the model's vocabulary (its embedding rows)."""
    vocab_size = resolved.config.get("vocab_size") if resolved.has_config else None
    if not isinstance(vocab_size, int) or isinstance(vocab_size, bool):
        return
    vocab = tokenizer.backend.get_vocab(with_added_tokens=True)  # ~5 ms for 30k tokens, 40 ms for 250k
    token, top = max(vocab.items(), key=lambda kv: kv[1], default=(None, -1))
    if top >= vocab_size:
        raise ModelFileError(
            f"{tokenizer.source.split(' (')[0]}: token {token!r} has id {top:,}, but the model's vocabulary (vocab_size in "
            f"config.json) has {vocab_size:,} rows: the tokenizer does not belong to these weights"
        )


# ---------------------------------------------------------------------------------------------------------
# legacy tokenizer files, checked before transformers converts them (its errors name no file)


def check_text_file(path: Path, *, what: str) -> str:
    """A tokenizer text file's content: UTF-8 and not empty, else a `ModelFileError` naming it."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ModelFileError(f"cannot read {path}: {describe(exc, with_file=False)}") from exc
    if not raw.strip():
        raise ModelFileError(f"{path} is empty: a {what} needs its entries")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ModelFileError(f"{path} is not UTF-8 text (byte 0x{raw[exc.start]:02x} at offset {exc.start}): "
                             "it is corrupt") from exc


def check_legacy_tokenizer(source: str, path: Path) -> None:
    """Validate ``vocab.txt`` / ``vocab.json`` + ``merges.txt`` / ``spiece.model`` before converting them."""
    import json

    if source == "vocab.txt":
        check_text_file(path, what="WordPiece vocabulary")
    elif source == "vocab.json":
        text = check_text_file(path, what="BPE vocabulary")
        try:
            vocab = json.loads(text)
        except ValueError as exc:
            raise ModelFileError(f"{path} is not valid JSON: {exc}") from exc
        if not isinstance(vocab, dict) or not all(isinstance(v, int) and not isinstance(v, bool)
                                                  for v in vocab.values()):
            raise ModelFileError(f"{path} must map each token to its id (a JSON object of token → number), "
                                 f"not a {type(vocab).__name__}" + (" of other values" if isinstance(vocab, dict) else ""))
        merges = path.parent / "merges.txt"
        lines = [ln for ln in check_text_file(merges, what="BPE merge list").splitlines()
                 if ln.strip() and not ln.startswith("#version")]
        bad = next((i for i, ln in enumerate(lines, 1) if len(ln.split(" ")) != 2), None)
        if bad is not None:
            raise ModelFileError(f"{merges} is corrupt: entry {bad} is not a pair of tokens ('a b')")
    elif source.endswith(".model"):
        check_sentencepiece_model(path)


def check_sentencepiece_model(path: Path) -> None:
    """A SentencePiece model that sentencepiece can load (skipped when sentencepiece is not installed)."""
    import importlib.util

    if importlib.util.find_spec("sentencepiece") is None:
        return
    import sentencepiece as spm

    sp = spm.SentencePieceProcessor()
    try:
        sp.Load(str(path))
    except (OSError, RuntimeError) as exc:
        raise ModelFileError(f"{path} is not a valid SentencePiece model (corrupt file): "
                             f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from exc

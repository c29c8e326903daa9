"""ONNX Runtime backend: export a model's head once per model, revision and head, then run it on CPU without torch.

`ensure_export` turns a resolved model with one head (`bertcli.heads.HEADS`: the encoder ``AutoModel`` for
``base``, ``AutoModelForMaskedLM`` for ``mlm`` …) into ``model.onnx`` with dynamic batch and sequence axes, inputs
``input_ids``, ``attention_mask`` (and ``token_type_ids`` where the config has token types) and the head's outputs:
``last_hidden_state`` (and ``pooler_output`` where the checkpoint holds a trained pooler) for ``base``, the
`bertcli.heads.HEAD_LOGITS` names for the others. Two ``base`` variants are separate exports, so that the plain
encoder keeps every graph optimization: ``hidden_states`` (every layer's hidden states as outputs
``hidden_states.0`` … ``hidden_states.L``, for ``--layer``) and ``attentions`` (``attentions.1`` … ``attentions.L``
beside the hidden states, for `bertcli attention`). The masked-LM head takes one more input, ``positions`` (flat
indices ``row * length + column`` of the tokens whose logits are wanted): the graph gathers those hidden states
*before* the vocabulary projection, so a fill-mask batch never holds a (batch, length, vocabulary) array.

The export lives in bertcli's own cache (``bertcli_cache_dir()/onnx/<name>-<head>-<key>/``), never in the user's
model folder, and is reused next time: the key hashes the head, the hub commit (hub models) or config.json plus
the weight files' names, sizes and modification times (folders), with the exporter's versions. A finished export
is moved into place with one ``os.replace`` of a temporary folder, so a killed export leaves nothing that looks
done. Every export is checked once against torch on a shape other than the traced one before it is kept; an
export that fails or disagrees raises `ExportError` and, for ``--backend auto``, is remembered
(`remember_failure`) so that the next run goes straight to torch instead of trying again.

`load_encoder` opens an ``onnxruntime.InferenceSession`` with its intra-op threads set explicitly (ONNX Runtime
otherwise takes every core of the host, which oversubscribes a machine shared by several workers). With
``quantize="int8"`` an int8 file is made once and cached beside the fp32 file (`bertcli.backends.precision`):
int8 weights for OpenVINO's int8 kernels when the [openvino] extra is installed, else ONNX Runtime's dynamic
quantization.

When the export is cached, running needs neither torch nor transformers: only onnxruntime and numpy.

We use torch's TorchScript-based exporter (``dynamo=False``): with torch 2.13 and transformers 5 it exports
BERT, ALBERT, RoBERTa and ELECTRA exactly (≤ 1e-5 against torch) in a second or two, and needs no extra
package; the dynamo exporter, torch's default, needs ``onnxscript``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from bertcli.backends import NOTES, BackendOutput, ConfigFacts, default_threads
from bertcli.backends.precision import int8_file_name, int8_runtime
from bertcli.errors import MissingDependencyError, ModelFileError, OutputError, UsageError
from bertcli.heads import HEAD_LOGITS, HEADS

INSTALL_HINT = "pip install onnxruntime onnx (dependencies of bertcli: reinstalling bertcli brings them back)"
EXPORT_FORMAT = 3  # bump when the exported graph's layout changes: old exports are then not reused
OPSET = 17  # LayerNormalization is a single op from 17 on
#: attention implementation traced into the graph (plain MatMul/Softmax ops)
ATTN_IMPLEMENTATION = "eager"
MODEL_FILE = "model.onnx"
META_FILE = "meta.json"
#: --quantize choices; each file name carries its recipe and version (`int8_file_name`): old files are not reused
QUANTIZE_MODES = ("int8",)
#: an export is kept only when ONNX Runtime agrees with torch this closely on a fresh shape
VERIFY_TOLERANCE = 1e-3
#: extra outputs of a ``base`` export, each a separate export: every layer's hidden states, or attention weights
FEATURES = ("hidden_states", "attentions")
#: heads whose logits are per token and vocabulary-wide: the graph takes ``positions`` and gathers before the head
GATHER_HEADS = ("mlm",)
#: heads with one row of logits per text (batch, labels), not per token: nsp and sop are the heads other
#: helpers add (next-sentence and sentence-order prediction)
PER_TEXT_HEADS = ("seqcls", "nsp", "sop")
#: the most tokens (rows × length) one ONNX Runtime run takes; bigger batches run in slices of rows (measured: qa
#: over a 25,000-word context peaks 24 MB above a short one with 4,096, 49 MB with 8,192, 28 MB on torch)
RUN_TOKENS = 4096
#: the suffix of the file that remembers a failed export beside where its folder would be
FAILED_SUFFIX = ".failed.json"


# ---------------------------------------------------------------------------------------------------------
# dependencies


def require_onnxruntime():
    """Import onnxruntime, or say which extra to install."""
    try:
        import onnxruntime
    except ImportError as exc:
        raise MissingDependencyError("--backend onnx needs ONNX Runtime, which is not installed", hint=INSTALL_HINT) from exc
    return onnxruntime


def _require_onnx():
    try:
        import onnx
    except ImportError as exc:
        raise MissingDependencyError("--quantize needs the onnx package, which is not installed", hint=INSTALL_HINT) from exc
    return onnx


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "absent"


# ---------------------------------------------------------------------------------------------------------
# cache keys


def onnx_cache_dir() -> Path:
    """Where exports live: ``bertcli_cache_dir()/onnx``."""
    from bertcli.env import bertcli_cache_dir

    return bertcli_cache_dir() / "onnx"


def check_variant(head: str, feature: str | None) -> None:
    """Refuse a head or a feature this module cannot export (a bug in the caller, not a user error)."""
    if head not in HEADS:
        raise ValueError(f"unknown head {head!r}")
    if feature is not None and (feature not in FEATURES or head != "base"):
        raise ValueError(f"no ONNX export of the {head} head with {feature!r}")


def export_key(resolved: Any, head: str = "base", feature: str | None = None) -> str:
    """A hex key naming one export of ``resolved``: same model files, head and exporter → same key."""
    check_variant(head, feature)
    parts: dict[str, Any] = {
        "format": EXPORT_FORMAT,
        "opset": OPSET,
        "attn": ATTN_IMPLEMENTATION,
        "head": head,
        "feature": feature,
        "torch": _version("torch"),
        "transformers": _version("transformers"),
    }
    if getattr(resolved, "commit", None):
        parts["hub"] = f"{resolved.repo_id}@{resolved.commit}"
    else:
        config = Path(resolved.path) / "config.json"
        try:
            parts["config_sha256"] = hashlib.sha256(config.read_bytes()).hexdigest()
        except OSError as exc:
            raise ModelFileError(f"cannot read {config}: {exc.strerror or exc}") from exc
        weights = []
        for name in sorted(resolved.weight_files()):
            st = (Path(resolved.path) / name).stat()
            weights.append([name, st.st_size, st.st_mtime_ns])
        parts["weights"] = weights
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:20]


def export_dir(resolved: Any, head: str = "base", feature: str | None = None) -> Path:
    """The cache folder of ``resolved``'s export for ``head`` (and ``feature``); it may not exist yet."""
    name = (getattr(resolved, "repo_id", None) or Path(resolved.path).name or "model").replace("/", "--")
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)[:60]
    variant = head + (f"+{feature}" if feature else "")
    return onnx_cache_dir() / f"{safe}-{variant}-{export_key(resolved, head, feature)}"


def is_exported(resolved: Any, head: str = "base", feature: str | None = None) -> bool:
    """Whether a finished export of this model, head and feature is in the cache (files only: nothing imported)."""
    return _complete(export_dir(resolved, head, feature))


def failure_file(resolved: Any, head: str = "base", feature: str | None = None) -> Path:
    """Where a failed export of this model, head and feature is remembered (``--backend auto`` reads it)."""
    folder = export_dir(resolved, head, feature)
    return folder.parent / f"{folder.name}{FAILED_SUFFIX}"


def remembered_failure(resolved: Any, head: str = "base", feature: str | None = None) -> str | None:
    """The message of an earlier export of this model, head and feature that failed, or None."""
    try:
        return json.loads(failure_file(resolved, head, feature).read_text(encoding="utf-8"))["error"]
    except (OSError, ValueError, KeyError, TypeError):
        return None


def remember_failure(resolved: Any, head: str, feature: str | None, message: str) -> None:
    """Note in the cache that this export fails, so ``--backend auto`` does not spend seconds on it again
    (best effort: a cache that cannot be written only costs the retry). ``--backend onnx`` still tries."""
    path = failure_file(resolved, head, feature)
    with contextlib.suppress(OSError):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"error": message, "torch": _version("torch"),
                                    "transformers": _version("transformers")}) + "\n", encoding="utf-8")


# ---------------------------------------------------------------------------------------------------------
# export


class ExportError(ModelFileError):
    """The exporter cannot turn this model into ONNX, or its graph disagrees with torch (exit 6). Loading the
    model worked: torch can run it, so ``--backend auto`` falls back to torch and remembers the failure."""


@dataclass
class OnnxExport:
    """An export on disk: its folder, the graph file to run, its metadata, and whether this call made it."""

    folder: Path
    path: Path
    meta: dict[str, Any]
    created: bool = False
    rebuilt: str | None = None  # why a corrupt cached export was thrown away and made again
    openvino: str | None = None  # the OpenVINO mode that runs ``path`` (the int8 weights file), None: ONNX Runtime

    @property
    def input_names(self) -> list[str]:
        return list(self.meta["inputs"])

    @property
    def has_pooler(self) -> bool:
        return bool(self.meta.get("has_pooler"))


def ensure_export(resolved: Any, head: str = "base", *, feature: str | None = None, quantize: str | None = None,
                  allow_pickle: bool = False) -> OnnxExport:
    """The cached export of ``resolved`` for ``head`` (made now if absent); with ``quantize="int8"`` the int8
    file. A failed export raises `ExportError`, and is remembered (`remembered_failure`)."""
    if quantize is not None and quantize not in QUANTIZE_MODES:
        raise UsageError(f"unknown --quantize {quantize!r}: choose {', '.join(QUANTIZE_MODES)}")
    require_onnxruntime()
    folder = export_dir(resolved, head, feature)
    created = False
    rebuilt = None
    meta = _read_meta(folder) if _complete(folder) else None
    if meta is None and _complete(folder):
        rebuilt = f"{folder / META_FILE} is corrupt"
        shutil.rmtree(folder, ignore_errors=True)
    if meta is None:
        try:
            _export_into_cache(resolved, folder, head=head, feature=feature, allow_pickle=allow_pickle)
        except ExportError as exc:
            remember_failure(resolved, head, feature, str(exc))
            raise
        with contextlib.suppress(OSError):
            failure_file(resolved, head, feature).unlink()
        created = True
        meta = _read_meta(folder)
        if meta is None:
            raise ModelFileError(f"the ONNX export just written to {folder} cannot be read back")
    path = folder / MODEL_FILE
    openvino = None
    if quantize is not None:
        runtime = int8_runtime()
        qpath = folder / int8_file_name(runtime)
        if not qpath.is_file():
            NOTES.info(f"quantizing the ONNX export to {quantize} for {_RUNTIME_NAMES[runtime]} once "
                       f"(cached in {folder})")
            _quantize(path, qpath, runtime)
            created = True
        path = qpath
        openvino = quantize if runtime == "openvino" else None
    return OnnxExport(folder=folder, path=path, meta=meta, created=created, rebuilt=rebuilt, openvino=openvino)


_RUNTIME_NAMES = {"openvino": "OpenVINO", "onnxruntime": "ONNX Runtime"}


def _read_meta(folder: Path) -> dict[str, Any] | None:
    """The export's meta.json, or None when it cannot be read or lacks what running needs."""
    try:
        meta = json.loads((folder / META_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(meta, dict) or not all(k in meta for k in ("inputs", "outputs", "hidden_size", "num_layers")):
        return None
    return meta


def _complete(folder: Path) -> bool:
    return (folder / META_FILE).is_file() and (folder / MODEL_FILE).is_file()


def _export_into_cache(resolved: Any, folder: Path, *, head: str, feature: str | None, allow_pickle: bool) -> None:
    """Export into a temporary folder beside ``folder`` and move it into place in one rename.

    A cache folder that cannot be written is an `OutputError` (exit 9) naming it: the export is what makes
    the ONNX backend fast, so it is not silently redone in a temporary folder on every run.
    """
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", suffix=".part", dir=folder.parent))
    except OSError as exc:
        from bertcli.modelfiles import describe

        raise OutputError(
            f"cannot write the ONNX export into bertcli's cache {folder.parent}: {describe(exc, with_file=False)}",
            hint="set BERTCLI_CACHE to a writable folder",
        ) from exc
    what = f"'s {HEADS[head][1]}" if head != "base" else {None: "", "hidden_states": " (every layer's output)",
                                                            "attentions": " (with attention weights)"}[feature]
    announce = f"exporting {resolved.display_name}{what} to ONNX once (cached in {folder})"
    try:
        meta = export_model(resolved, tmp / MODEL_FILE, head, feature=feature, allow_pickle=allow_pickle,
                            announce=announce)
        (tmp / META_FILE).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
        try:
            os.replace(tmp, folder)
        except OSError:
            if not _complete(folder):  # not a lost race with another process: a real failure
                raise
    except OSError as exc:
        raise OutputError(f"cannot write the ONNX export to {folder.parent}: {exc.strerror or exc}",
                          hint="set BERTCLI_CACHE to a writable folder") from exc
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _example_inputs(n: int, length: int, *, vocab_size: int, pad_id: int, token_types: bool, seed: int):
    """Token ids with real padding (the last row is half padding), as numpy int64 arrays."""
    rng = np.random.default_rng(seed)
    low = min(5, max(vocab_size - 1, 1))
    ids = rng.integers(low, max(vocab_size, low + 1), size=(n, length), dtype=np.int64)
    ids[ids == pad_id] = low
    mask = np.ones((n, length), dtype=np.int64)
    half = max(1, length // 2)
    ids[-1, half:] = pad_id
    mask[-1, half:] = 0
    inputs = {"input_ids": ids, "attention_mask": mask}
    if token_types:
        inputs["token_type_ids"] = np.zeros((n, length), dtype=np.int64)
    return inputs


def real_positions(mask: np.ndarray) -> np.ndarray:
    """The flat indices (``row * length + column``) of the real (unpadded) tokens of ``mask``, as int64."""
    return np.flatnonzero(np.asarray(mask).reshape(-1)).astype(np.int64)


def output_names(head: str, feature: str | None, *, num_layers: int, with_pooler: bool) -> list[str]:
    """The graph's outputs for a head and feature: hidden states (and pooler) for base, else the head's logits."""
    if head != "base":
        return list(HEAD_LOGITS[head])
    names = ["last_hidden_state"] + (["pooler_output"] if with_pooler else [])
    if feature == "hidden_states":
        names += [f"hidden_states.{i}" for i in range(num_layers + 1)]
    elif feature == "attentions":
        names += [f"attentions.{i}" for i in range(1, num_layers + 1)]
    return names


def _output_axes(name: str, head: str) -> dict[int, str]:
    """The dynamic axes of an output (batch, sequence, positions)."""
    if name.startswith("attentions."):
        return {0: "batch", 2: "sequence", 3: "sequence"}
    if name == "pooler_output" or head in PER_TEXT_HEADS:
        return {0: "batch"}
    if head in GATHER_HEADS:
        return {0: "positions"}
    return {0: "batch", 1: "sequence"}


@contextlib.contextmanager
def _gathering(model: Any):
    """Within the block, ``model``'s encoder hands its head only the hidden states at ``slot.positions`` (flat
    indices), as a (1, positions, hidden) batch: per-token heads (the masked-LM head) then compute their logits
    for those tokens only. The encoder is put back afterwards."""
    import torch

    prefix = getattr(model, "base_model_prefix", "")
    inner = getattr(model, prefix, None)
    if not prefix or not isinstance(inner, torch.nn.Module):
        raise ValueError(f"{type(model).__name__} has no base model to gather from")

    class Gathered(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = inner
            self.positions = None

        def forward(self, *args, **kwargs):
            out = self.inner(*args, **kwargs)
            hidden = out[0]
            out["last_hidden_state"] = hidden.reshape(-1, hidden.shape[-1]).index_select(0, self.positions)[None]
            return out

    slot = Gathered()
    setattr(model, prefix, slot)
    try:
        yield slot
    finally:
        setattr(model, prefix, inner)


def _model_outputs(out: Any, head: str, feature: str | None, names: list[str]) -> tuple:
    """The tensors of a transformers output in the order of ``names`` (see `output_names`)."""
    values = []
    for name in names:
        if name.startswith("hidden_states."):
            values.append(out.hidden_states[int(name.split(".")[1])])
        elif name.startswith("attentions."):
            values.append(out.attentions[int(name.split(".")[1]) - 1])
        elif head in GATHER_HEADS:
            values.append(getattr(out, name)[0])  # (1, positions, vocab) → (positions, vocab)
        else:
            values.append(getattr(out, name))
    return tuple(values)


def export_model(resolved: Any, dest: Path, head: str = "base", *, feature: str | None = None,
                 allow_pickle: bool = False, announce: str | None = None) -> dict[str, Any]:
    """Export ``resolved`` with ``head`` (and ``feature``) to the file ``dest``; returns the metadata to keep
    beside it. ``announce`` goes to `bertcli.backends.NOTES` once the model has loaded (a model that cannot
    load says only its error).

    A model that cannot load raises what `bertcli.runner.load_model` raises (torch would fail the same way);
    one that cannot be exported, or whose graph disagrees with torch, raises `ExportError` naming the
    architecture.
    """
    from bertcli.runner import load_model

    check_variant(head, feature)
    started = time.perf_counter()
    loaded = load_model(resolved, head, device="cpu", allow_pickle=allow_pickle,
                        attn_implementation=ATTN_IMPLEMENTATION)
    import torch

    if announce:
        NOTES.info(announce)
    model = loaded.model
    config = model.config
    arch = f"{type(model).__name__} (model_type {getattr(config, 'model_type', '?')})"
    token_types = int(getattr(config, "type_vocab_size", 0) or 0) > 0
    with_pooler = head == "base" and loaded.has_pooler
    num_layers = int(config.num_hidden_layers)
    input_names = ["input_ids", "attention_mask"] + (["token_type_ids"] if token_types else [])
    gather = head in GATHER_HEADS
    input_names += ["positions"] if gather else []
    names = output_names(head, feature, num_layers=num_layers, with_pooler=with_pooler)
    flags = {"output_hidden_states": feature == "hidden_states", "output_attentions": feature == "attentions"}
    pad_id = getattr(config, "pad_token_id", None)
    pad_id = pad_id if isinstance(pad_id, int) else 0
    vocab_size = int(getattr(config, "vocab_size", 2) or 2)

    class Exported(torch.nn.Module):
        def __init__(self, inner, slot=None):
            super().__init__()
            self.inner = inner
            self.slot = slot

        def forward(self, *args):
            inputs = dict(zip(input_names, args))
            if self.slot is not None:
                self.slot.positions = inputs.pop("positions")
            out = self.inner(**inputs, return_dict=True, **flags)
            return _model_outputs(out, head, feature, names)

    example = _example_inputs(2, 8, vocab_size=vocab_size, pad_id=pad_id, token_types=token_types, seed=0)
    example["positions"] = real_positions(example["attention_mask"])
    args = tuple(torch.from_numpy(example[name]) for name in input_names)
    axes = {name: {0: "batch", 1: "sequence"} for name in input_names}
    axes.update({"positions": {0: "positions"}} if gather else {})
    axes.update({name: _output_axes(name, head) for name in names})
    try:
        with contextlib.ExitStack() as stack:
            slot = stack.enter_context(_gathering(model)) if gather else None
            wrapper = Exported(model, slot).eval()  # the wrapper's mode too: export restores it onto every submodule
            stack.enter_context(warnings.catch_warnings())
            warnings.simplefilter("ignore")
            for scope in (_quiet_torch_onnx(), torch.inference_mode(False), torch.no_grad()):
                stack.enter_context(scope)
            torch.onnx.export(
                wrapper, args, str(dest), dynamo=False, input_names=input_names, output_names=names,
                dynamic_axes=axes, opset_version=OPSET, do_constant_folding=True,
            )
    except Exception as exc:  # noqa: BLE001 - any exporter failure becomes one clear line
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
        raise ExportError(
            f"cannot export {resolved.display_name} ({arch}) to ONNX: {first}",
            hint="use --backend torch for this model",
        ) from exc
    check = _example_inputs(3, 11, vocab_size=vocab_size, pad_id=pad_id, token_types=token_types, seed=1)
    diff = _verify(model, dest, check, input_names, names, head=head, flags=flags, feature=feature)
    if not diff <= VERIFY_TOLERANCE:
        raise ExportError(
            f"the ONNX export of {resolved.display_name} ({arch}) disagrees with torch "
            f"(max difference {diff:.3g} on real tokens)",
            hint="use --backend torch for this model",
        )
    return _export_meta(resolved, model, head=head, feature=feature, inputs=input_names, outputs=names,
                        with_pooler=with_pooler, seconds=time.perf_counter() - started, diff=diff)


def _export_meta(resolved: Any, model: Any, *, head: str, feature: str | None, inputs: list[str], outputs: list[str],
                 with_pooler: bool, seconds: float, diff: float) -> dict[str, Any]:
    """meta.json of an export: what it holds (head, inputs, outputs, sizes) and how it was made."""
    config = model.config
    return {
        "format": EXPORT_FORMAT,
        "model": resolved.display_name,
        "source": str(resolved.path),
        "repo_id": getattr(resolved, "repo_id", None),
        "commit": getattr(resolved, "commit", None),
        "head": head,
        "feature": feature,
        "architecture": type(model).__name__,
        "model_type": getattr(config, "model_type", None),
        "inputs": inputs,
        "outputs": outputs,
        "has_pooler": with_pooler,
        "pooler_layer": getattr(model, "pooler", None) is not None,
        "hidden_size": int(config.hidden_size),
        "num_layers": int(config.num_hidden_layers),
        "opset": OPSET,
        "attn_implementation": ATTN_IMPLEMENTATION,
        "torch": _version("torch"),
        "transformers": _version("transformers"),
        "onnxruntime": _version("onnxruntime"),
        "export_seconds": round(seconds, 3),
        "verify_max_abs_diff": float(diff),
    }


def export_encoder(resolved: Any, dest: Path, *, allow_pickle: bool = False) -> dict[str, Any]:
    """`export_model` of the ``base`` head (the encoder)."""
    return export_model(resolved, dest, "base", allow_pickle=allow_pickle)


@contextlib.contextmanager
def _quiet_torch_onnx():
    """torch's exporter logs through `logging` and prints diagnostics; keep them off the user's stderr."""
    import logging

    loggers = [logging.getLogger(name) for name in ("torch.onnx", "torch._dynamo", "torch.export")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def _verify(model: Any, path: Path, inputs: dict[str, np.ndarray], input_names, names, *, head: str,
            flags: dict, feature: str | None) -> float:
    """Largest |ONNX − torch| over real (unpadded) tokens, against the unmodified torch model: for a gathering
    head, its full logits taken at the real tokens afterwards."""
    import torch

    real = inputs["attention_mask"].astype(bool)
    feed = {name: inputs[name] for name in input_names if name != "positions"}
    if "positions" in input_names:
        feed["positions"] = real_positions(real)
    got = _session(path, threads=1).run(names, feed)
    with torch.no_grad():
        out = model(**{k: torch.from_numpy(v) for k, v in feed.items() if k != "positions"}, return_dict=True, **flags)
    diff = 0.0
    for name, value in zip(names, got):
        if head in GATHER_HEADS and not name.startswith(("hidden_states.", "attentions.")):
            want = getattr(out, name).numpy()[real]
        else:
            want = _model_outputs(out, head, feature, [name])[0].numpy()
        diff = max(diff, _masked_max_diff(value, want, real))
    return diff


def _masked_max_diff(got: np.ndarray, want: np.ndarray, real: np.ndarray) -> float:
    """max |got − want| where the values belong to real tokens (per-token outputs) or everywhere (the rest)."""
    delta = np.abs(got - want)
    if delta.ndim == 4 and delta.shape[2:] == real.shape[1:] * 2:  # attentions: real queries × real keys
        delta = delta * (real[:, None, :, None] & real[:, None, None, :])
    elif delta.ndim >= 2 and delta.shape[:2] == real.shape:
        delta = delta[real]
    return float(delta.max()) if delta.size else 0.0


def _quantize(source: Path, dest: Path, runtime: str) -> None:
    """The int8 file of ``source`` for ``runtime`` into ``dest`` (written under a temporary name, then renamed)."""
    _require_onnx()
    from bertcli.backends.precision import int8_weights, quantize_int8

    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    os.close(fd)
    try:
        with warnings.catch_warnings(), _quiet_logger("onnxruntime.quantization"):
            warnings.simplefilter("ignore")
            # int8 dense layers; attention (and, for ONNX Runtime, outlier channels) in float32
            (int8_weights if runtime == "openvino" else quantize_int8)(source, Path(tmp))
        os.replace(tmp, dest)
    except OSError as exc:
        raise ModelFileError(f"cannot write the quantized model {dest}: {exc.strerror or exc}") from exc
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)


@contextlib.contextmanager
def _quiet_logger(name: str):
    import logging

    logger = logging.getLogger(name)
    level = logger.level
    logger.setLevel(logging.ERROR)
    root = logging.getLogger()
    root_level = root.level
    root.setLevel(max(root_level, logging.ERROR))
    try:
        yield
    finally:
        logger.setLevel(level)
        root.setLevel(root_level)


# ---------------------------------------------------------------------------------------------------------
# running


def _session(path: Path, *, threads: int, openvino: str | None = None):
    """An ONNX Runtime session over ``path``, or OpenVINO's in mode ``openvino`` (bfloat16, int8)."""
    if openvino is not None:
        from bertcli.backends.precision import openvino_session

        return openvino_session(path, threads=threads, mode=openvino)
    ort = require_onnxruntime()
    options = ort.SessionOptions()
    options.intra_op_num_threads = int(threads)
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


@dataclass
class OnnxEncoder:
    """An ONNX Runtime session over one export (any head). `run` maps numpy inputs to the encoder's numpy outputs,
    `outputs` to any named outputs."""

    export: OnnxExport
    session: Any
    threads: int
    quantize: str | None = None
    input_names: list[str] = field(default_factory=list)
    output_names: list[str] = field(default_factory=list)

    @property
    def has_pooler(self) -> bool:
        return "pooler_output" in self.output_names

    @property
    def uses_token_types(self) -> bool:
        return "token_type_ids" in self.input_names

    @property
    def gathers(self) -> bool:
        """The graph takes ``positions`` (the masked-LM head) and returns logits at those tokens only."""
        return "positions" in self.input_names

    @property
    def pooler(self) -> bool | None:
        """Truthy when the model class has a pooler layer (exported only when its weights were trained)."""
        return True if self.export.meta.get("pooler_layer") else None

    def feed(self, input_ids: np.ndarray, attention_mask: np.ndarray, token_type_ids: np.ndarray | None = None,
             positions: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """The session's inputs: zero token types where the graph takes them and none were given."""
        feed = {"input_ids": input_ids, "attention_mask": attention_mask}
        if self.uses_token_types:
            feed["token_type_ids"] = token_type_ids if token_type_ids is not None else np.zeros_like(input_ids)
        if self.gathers:
            feed["positions"] = positions if positions is not None else np.arange(input_ids.size, dtype=np.int64)
        return feed

    def outputs(self, names: list[str], feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The named outputs (ONNX Runtime computes only what they need)."""
        return dict(zip(names, self.session.run(names, feed)))

    def run(
        self, input_ids: np.ndarray, attention_mask: np.ndarray, token_type_ids: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """(last_hidden_state, pooler_output or None) as float32 arrays for int64 inputs of shape (n, len)."""
        names = ["last_hidden_state"] + (["pooler_output"] if self.has_pooler else [])
        out = self.outputs(names, self.feed(input_ids, attention_mask, token_type_ids))
        return out["last_hidden_state"], out.get("pooler_output")


def load_encoder(
    resolved: Any,
    head: str = "base",
    *,
    feature: str | None = None,
    quantize: str | None = None,
    threads: int | None = None,
    workers: int = 1,
    allow_pickle: bool = False,
    compute: str = "float32",
) -> OnnxEncoder:
    """An `OnnxEncoder` for ``resolved``'s ``head`` (and ``feature``), exporting it first if not cached.

    ``threads`` is ONNX Runtime's intra-op thread count; None means physical cores / ``workers``.
    ``compute="bfloat16"`` runs the float32 export with OpenVINO in bfloat16 instead (the [openvino] extra).
    """
    if threads is not None and threads < 1:
        raise UsageError("--threads must be at least 1")
    if quantize is not None and compute != "float32":
        raise UsageError(f"--quantize {quantize} and --compute {compute} are two precision modes: choose one")
    from bertcli.modelfiles import model_files

    def ensure():
        return ensure_export(resolved, head, feature=feature, quantize=quantize, allow_pickle=allow_pickle)

    def open_session(export: OnnxExport):
        # bfloat16: OpenVINO runs the float32 export; int8: the file's own runtime (`ensure_export`)
        mode = compute if compute != "float32" else export.openvino
        with model_files(export.path):
            return _session(export.path, threads=threads, openvino=mode)

    export = ensure()
    threads = threads or default_threads(workers)
    try:
        session = open_session(export)
    except ModelFileError as exc:
        if export.created:  # made just now and still unreadable: nothing to rebuild
            raise
        shutil.rmtree(export.folder, ignore_errors=True)  # a corrupt cached export: make it again, once
        export = ensure()
        export.rebuilt = str(exc)
        session = open_session(export)
    outputs = [o.name for o in session.get_outputs()]
    inputs = [i.name for i in session.get_inputs()]
    return OnnxEncoder(export=export, session=session, threads=threads, quantize=quantize,
                       input_names=inputs, output_names=outputs)


@dataclass
class OnnxBackend(ConfigFacts):
    """`bertcli.backends.Backend` over `OnnxEncoder` sessions of one head: no torch, no transformers.

    ``layer=`` and ``attention_layer=`` read the ``hidden_states`` / ``attentions`` exports of the base head
    (loaded with ``features=``, or opened — and if need be exported — on first use).
    """

    encoder: OnnxEncoder
    resolved: Any
    config: Any  # config.json's values as attributes, sizes from the export's metadata
    head: str = "base"
    name: str = "onnx"
    device: str = "cpu"
    variants: dict[str, OnnxEncoder] = field(default_factory=dict)  # feature → session
    options: dict[str, Any] = field(default_factory=dict)  # how to open more variants (threads, quantize …)

    @classmethod
    def load(cls, resolved: Any, head: str = "base", *, features: tuple[str, ...] = (), quantize: str | None = None,
             threads: int | None = None, workers: int = 1, allow_pickle: bool = False,
             compute: str = "float32") -> OnnxBackend:
        """`load_encoder` of ``head`` wrapped as a backend; ``features`` opens those base variants now;
        ``compute`` bfloat16 runs the export with OpenVINO."""
        from types import SimpleNamespace

        if head != "base" and quantize is not None:
            raise UsageError("--quantize int8 applies to the encoder (embed) only")
        options = {"quantize": quantize, "threads": threads, "workers": workers, "allow_pickle": allow_pickle,
                   "compute": compute}
        main = features[0] if features and head == "base" else None  # a variant holds the plain outputs too
        encoder = load_encoder(resolved, head, feature=main, **options)
        meta = encoder.export.meta
        config = SimpleNamespace(**{**resolved.config, "hidden_size": meta["hidden_size"],
                                    "num_hidden_layers": meta["num_layers"]})
        backend = cls(encoder=encoder, resolved=resolved, config=config, head=head, options=options,
                      variants={main: encoder} if main else {})
        for feature in features:
            backend.variant(feature)
        return backend

    def variant(self, feature: str) -> OnnxEncoder:
        """The session of the base export with ``feature`` (opened once; exported first if not cached)."""
        if self.head != "base":
            raise UsageError(f"--layer and attention weights come from the encoder, not the {self.head} head")
        if feature not in self.variants:
            self.variants[feature] = load_encoder(self.resolved, "base", feature=feature, **self.options)
        return self.variants[feature]

    @property
    def export(self) -> OnnxExport:
        return self.encoder.export

    @property
    def has_pooler(self) -> bool:
        return self.encoder.has_pooler

    @property
    def pooler_layer(self) -> bool:
        """The model class has a pooler layer (exported only when its weights were trained)."""
        return bool(self.encoder.pooler)

    @property
    def accepts_token_types(self) -> bool:
        return self.encoder.uses_token_types

    @property
    def architecture(self) -> str:
        return f"{self.encoder.export.meta.get('architecture', 'encoder')} via ONNX"

    def session(self, compute: str = "float32"):
        return contextlib.nullcontext()

    def run(self, input_ids: np.ndarray, attention_mask: np.ndarray, token_type_ids: np.ndarray | None = None, *,
            layer: int | None = None, attention_layer: int | None = None,
            positions: tuple[list[int], list[int]] | None = None) -> BackendOutput:
        """One forward pass (see `bertcli.backends.Backend.run`); a batch of more than `RUN_TOKENS` tokens runs
        in slices of rows, as the eager attention's (rows, heads, length, length) arrays would otherwise grow with
        the whole batch (qa's 64 windows of 384 tokens). Rows are independent: the answers are the same."""
        step = max(1, RUN_TOKENS // max(1, input_ids.shape[1]))
        if input_ids.shape[0] <= step:
            return self._run(input_ids, attention_mask, token_type_ids, layer=layer,
                             attention_layer=attention_layer, positions=positions)
        parts, order = [], []
        for a in range(0, input_ids.shape[0], step):
            b, sub = a + step, None
            if positions is not None:
                keep = [i for i, row in enumerate(positions[0]) if a <= row < a + step]
                if not keep:
                    continue
                order += keep
                sub = ([positions[0][i] - a for i in keep], [positions[1][i] for i in keep])
            parts.append(self._run(input_ids[a:b], attention_mask[a:b],
                                   None if token_type_ids is None else token_type_ids[a:b], layer=layer,
                                   attention_layer=attention_layer, positions=sub))
        return _concatenate(parts, np.argsort(order) if positions is not None else None)

    def _run(self, input_ids: np.ndarray, attention_mask: np.ndarray, token_type_ids: np.ndarray | None = None, *,
             layer: int | None = None, attention_layer: int | None = None,
             positions: tuple[list[int], list[int]] | None = None) -> BackendOutput:
        if self.head != "base":
            return BackendOutput(logits=self._logits(input_ids, attention_mask, token_type_ids, positions))
        inputs = (input_ids, attention_mask, token_type_ids)
        base = ["last_hidden_state"] + (["pooler_output"] if self.has_pooler else [])
        result = BackendOutput()
        if layer is None and attention_layer is None:
            out = self.encoder.outputs(base, self.encoder.feed(*inputs))
            result.hidden, result.pooled = out["last_hidden_state"], out.get("pooler_output")
        if layer is not None:
            name = f"hidden_states.{range(self.num_layers + 1)[layer]}"
            encoder = self.variant("hidden_states")
            out = encoder.outputs([name] + base[1:], encoder.feed(*inputs))
            result.hidden, result.pooled = out[name], out.get("pooler_output")
        if attention_layer is not None:
            name = f"attentions.{range(self.num_layers)[attention_layer] + 1}"
            encoder = self.variant("attentions")
            out = encoder.outputs([name] + (base if layer is None else []), encoder.feed(*inputs))
            result.attentions = out[name]
            if layer is None:
                result.hidden, result.pooled = out["last_hidden_state"], out.get("pooler_output")
        return result

    def _logits(self, input_ids, attention_mask, token_type_ids, positions) -> dict[str, np.ndarray]:
        """The head's logits; at ``positions`` only (gathered in the graph for the masked-LM head, sliced right
        after the run for the others, whose logits are a few numbers per token)."""
        encoder = self.encoder
        flat = None
        if positions is not None and encoder.gathers:
            rows, cols = (np.asarray(p, dtype=np.int64) for p in positions)
            flat = rows * input_ids.shape[1] + cols
        out = encoder.outputs(list(HEAD_LOGITS[self.head]), encoder.feed(input_ids, attention_mask, token_type_ids, flat))
        for name, value in out.items():
            if encoder.gathers and positions is None:  # every token was gathered: back to (batch, length, …)
                out[name] = value.reshape(input_ids.shape + value.shape[1:])
            elif positions is not None and not encoder.gathers:
                out[name] = value[list(positions[0]), list(positions[1])]
        return out


def _concatenate(parts: list[BackendOutput], inverse: np.ndarray | None) -> BackendOutput:
    """The outputs of row slices as one (``inverse``: the order of logits taken at positions, slice by slice)."""
    def joined(values):
        return np.concatenate(values) if values and values[0] is not None else None

    out = BackendOutput(hidden=joined([p.hidden for p in parts]), pooled=joined([p.pooled for p in parts]),
                        attentions=joined([p.attentions for p in parts]))
    for name in parts[0].logits:
        value = np.concatenate([p.logits[name] for p in parts])
        out.logits[name] = value[inverse] if inverse is not None else value
    return out

"""ONNX Runtime backend: export an encoder once per model and revision, then run it on CPU without torch.

`ensure_export` turns a resolved model's encoder (transformers ``AutoModel``) into ``model.onnx`` with dynamic
batch and sequence axes, inputs ``input_ids``, ``attention_mask`` (and ``token_type_ids`` where the config has
token types) and outputs ``last_hidden_state`` (and ``pooler_output`` where the checkpoint holds a trained
pooler). The export lives in bertcli's own cache (``bertcli_cache_dir()/onnx/<name>-<key>/``), never in the
user's model folder, and is reused next time: the key hashes the hub commit (hub models) or config.json plus the
weight files' names, sizes and modification times (folders), with the exporter's versions. A finished export is
moved into place with one ``os.replace`` of a temporary folder, so a killed export leaves nothing that looks
done. Every export is checked once against torch on a shape other than the traced one before it is kept.

`load_encoder` opens an ``onnxruntime.InferenceSession`` with its intra-op threads set explicitly (ONNX Runtime
otherwise takes every core of the host, which oversubscribes a machine shared by several workers). With
``quantize="int8"`` the export is dynamically quantized (``onnxruntime.quantization.quantize_dynamic``, int8
weights) and cached beside the fp32 file.

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

from bertcli.backends import BackendOutput, ConfigFacts, default_threads
from bertcli.backends.precision import int8_file_name
from bertcli.errors import MissingDependencyError, ModelFileError, OutputError, UsageError

INSTALL_HINT = "pip install 'bertcli[onnx]'"
EXPORT_FORMAT = 2  # bump when the exported graph's layout changes: old exports are then not reused
OPSET = 17  # LayerNormalization is a single op from 17 on
#: attention implementation traced into the graph (plain MatMul/Softmax ops)
ATTN_IMPLEMENTATION = "eager"
MODEL_FILE = "model.onnx"
META_FILE = "meta.json"
QUANTIZED_FILES = {"int8": int8_file_name()}  # carries the int8 recipe's version: old files are not reused
#: an export is kept only when ONNX Runtime agrees with torch this closely on a fresh shape
VERIFY_TOLERANCE = 1e-3


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


def export_key(resolved: Any) -> str:
    """A hex key naming one export of ``resolved``: same model files and same exporter → same key."""
    parts: dict[str, Any] = {
        "format": EXPORT_FORMAT,
        "opset": OPSET,
        "attn": ATTN_IMPLEMENTATION,
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


def export_dir(resolved: Any) -> Path:
    """The cache folder of ``resolved``'s export (it may not exist yet)."""
    name = (getattr(resolved, "repo_id", None) or Path(resolved.path).name or "model").replace("/", "--")
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)[:60]
    return onnx_cache_dir() / f"{safe}-{export_key(resolved)}"


# ---------------------------------------------------------------------------------------------------------
# export


@dataclass
class OnnxExport:
    """An export on disk: its folder, the graph file to run, its metadata, and whether this call made it."""

    folder: Path
    path: Path
    meta: dict[str, Any]
    created: bool = False
    rebuilt: str | None = None  # why a corrupt cached export was thrown away and made again

    @property
    def input_names(self) -> list[str]:
        return list(self.meta["inputs"])

    @property
    def has_pooler(self) -> bool:
        return bool(self.meta.get("has_pooler"))


def ensure_export(resolved: Any, *, quantize: str | None = None, allow_pickle: bool = False) -> OnnxExport:
    """The cached export of ``resolved`` (made now if absent); with ``quantize="int8"`` the int8 file."""
    if quantize is not None and quantize not in QUANTIZED_FILES:
        raise UsageError(f"unknown --quantize {quantize!r}: choose {', '.join(QUANTIZED_FILES)}")
    require_onnxruntime()
    folder = export_dir(resolved)
    created = False
    rebuilt = None
    meta = _read_meta(folder) if _complete(folder) else None
    if meta is None and _complete(folder):
        rebuilt = f"{folder / META_FILE} is corrupt"
        shutil.rmtree(folder, ignore_errors=True)
    if meta is None:
        _export_into_cache(resolved, folder, allow_pickle=allow_pickle)
        created = True
        meta = _read_meta(folder)
        if meta is None:
            raise ModelFileError(f"the ONNX export just written to {folder} cannot be read back")
    path = folder / MODEL_FILE
    if quantize is not None:
        qpath = folder / QUANTIZED_FILES[quantize]
        if not qpath.is_file():
            _quantize(path, qpath)
            created = True
        path = qpath
    return OnnxExport(folder=folder, path=path, meta=meta, created=created, rebuilt=rebuilt)


def _read_meta(folder: Path) -> dict[str, Any] | None:
    """The export's meta.json, or None when it cannot be read or lacks what running needs."""
    try:
        meta = json.loads((folder / META_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(meta, dict) or not all(k in meta for k in ("inputs", "hidden_size", "num_layers")):
        return None
    return meta


def _complete(folder: Path) -> bool:
    return (folder / META_FILE).is_file() and (folder / MODEL_FILE).is_file()


def _export_into_cache(resolved: Any, folder: Path, *, allow_pickle: bool) -> None:
    """Export into a temporary folder beside ``folder`` and move it into place in one rename.

    A cache folder that cannot be written is an `OutputError` (exit 9) naming it: the export is what makes
    ``--backend onnx`` fast, so it is not silently redone in a temporary folder on every run.
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
    try:
        meta = export_encoder(resolved, tmp / MODEL_FILE, allow_pickle=allow_pickle)
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


def export_encoder(resolved: Any, dest: Path, *, allow_pickle: bool = False) -> dict[str, Any]:
    """Export ``resolved``'s encoder to the file ``dest``; returns the metadata to keep beside it.

    Raises `ModelFileError` naming the architecture when it cannot be exported or the export disagrees with
    torch.
    """
    from bertcli.runner import load_model

    started = time.perf_counter()
    loaded = load_model(resolved, "base", device="cpu", allow_pickle=allow_pickle,
                        attn_implementation=ATTN_IMPLEMENTATION)
    import torch

    model = loaded.model
    config = model.config
    arch = f"{type(model).__name__} (model_type {getattr(config, 'model_type', '?')})"
    token_types = int(getattr(config, "type_vocab_size", 0) or 0) > 0
    with_pooler = loaded.has_pooler
    input_names = ["input_ids", "attention_mask"] + (["token_type_ids"] if token_types else [])
    output_names = ["last_hidden_state"] + (["pooler_output"] if with_pooler else [])
    pad_id = getattr(config, "pad_token_id", None)
    pad_id = pad_id if isinstance(pad_id, int) else 0
    vocab_size = int(getattr(config, "vocab_size", 2) or 2)

    class Encoder(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, *args):
            out = self.inner(**dict(zip(input_names, args)), return_dict=True)
            return (out.last_hidden_state, out.pooler_output) if with_pooler else (out.last_hidden_state,)

    wrapper = Encoder(model).eval()  # the wrapper's own mode too: export restores it onto every submodule
    example = _example_inputs(2, 8, vocab_size=vocab_size, pad_id=pad_id, token_types=token_types, seed=0)
    args = tuple(torch.from_numpy(example[name]) for name in input_names)
    axes = {name: {0: "batch", 1: "sequence"} for name in input_names}
    axes["last_hidden_state"] = {0: "batch", 1: "sequence"}
    if with_pooler:
        axes["pooler_output"] = {0: "batch"}
    try:
        with warnings.catch_warnings(), _quiet_torch_onnx(), torch.inference_mode(False), torch.no_grad():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                wrapper, args, str(dest), dynamo=False, input_names=input_names, output_names=output_names,
                dynamic_axes=axes, opset_version=OPSET, do_constant_folding=True,
            )
    except Exception as exc:  # noqa: BLE001 - any exporter failure becomes one clear line
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
        raise ModelFileError(
            f"cannot export {resolved.display_name} ({arch}) to ONNX: {first}",
            hint="use --backend torch for this model",
        ) from exc
    check = _example_inputs(3, 11, vocab_size=vocab_size, pad_id=pad_id, token_types=token_types, seed=1)
    diff = _verify(wrapper, dest, check, input_names, output_names)
    if not diff <= VERIFY_TOLERANCE:
        raise ModelFileError(
            f"the ONNX export of {resolved.display_name} ({arch}) disagrees with torch "
            f"(max difference {diff:.3g} on real tokens)",
            hint="use --backend torch for this model",
        )
    seconds = time.perf_counter() - started
    return {
        "format": EXPORT_FORMAT,
        "model": resolved.display_name,
        "source": str(resolved.path),
        "repo_id": getattr(resolved, "repo_id", None),
        "commit": getattr(resolved, "commit", None),
        "architecture": type(model).__name__,
        "model_type": getattr(config, "model_type", None),
        "inputs": input_names,
        "outputs": output_names,
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


def _verify(wrapper: Any, path: Path, inputs: dict[str, np.ndarray], input_names, output_names) -> float:
    """Largest |ONNX − torch| over real (unpadded) tokens and pooler outputs."""
    import torch

    session = _session(path, threads=1)
    got = session.run(output_names, {name: inputs[name] for name in input_names})
    with torch.no_grad():
        want = wrapper(*(torch.from_numpy(inputs[name]) for name in input_names))
    real = inputs["attention_mask"].astype(bool)
    diff = float(np.abs(got[0] - want[0].numpy())[real].max())
    if len(got) > 1:
        diff = max(diff, float(np.abs(got[1] - want[1].numpy()).max()))
    return diff


def _quantize(source: Path, dest: Path) -> None:
    """Dynamic int8 quantization of ``source`` into ``dest`` (written under a temporary name, then renamed)."""
    _require_onnx()
    from bertcli.backends.precision import quantize_int8

    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    os.close(fd)
    try:
        with warnings.catch_warnings(), _quiet_logger("onnxruntime.quantization"):
            warnings.simplefilter("ignore")
            quantize_int8(source, Path(tmp))  # int8 dense layers, outlier channels and attention in float32
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


def _session(path: Path, *, threads: int, compute: str = "float32"):
    if compute != "float32":  # bfloat16: OpenVINO runs the same export (backends/precision.py)
        from bertcli.backends.precision import openvino_session

        return openvino_session(path, threads=threads, compute=compute)
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
    """An ONNX Runtime session over an exported encoder. `run` maps numpy inputs to numpy outputs."""

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
    def pooler(self) -> bool | None:
        """Truthy when the model class has a pooler layer (exported only when its weights were trained)."""
        return True if self.export.meta.get("pooler_layer") else None

    def run(
        self, input_ids: np.ndarray, attention_mask: np.ndarray, token_type_ids: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """(last_hidden_state, pooler_output or None) as float32 arrays for int64 inputs of shape (n, len)."""
        feed = {"input_ids": input_ids, "attention_mask": attention_mask}
        if self.uses_token_types:
            feed["token_type_ids"] = token_type_ids if token_type_ids is not None else np.zeros_like(input_ids)
        out = self.session.run(self.output_names, feed)
        return out[0], (out[1] if len(out) > 1 else None)


def load_encoder(
    resolved: Any,
    *,
    quantize: str | None = None,
    threads: int | None = None,
    workers: int = 1,
    allow_pickle: bool = False,
    compute: str = "float32",
) -> OnnxEncoder:
    """An `OnnxEncoder` for ``resolved`` (exporting it first if not cached).

    ``threads`` is ONNX Runtime's intra-op thread count; None means physical cores / ``workers``.
    ``compute="bfloat16"`` runs the float32 export with OpenVINO in bfloat16 instead (the [openvino] extra).
    """
    if threads is not None and threads < 1:
        raise UsageError("--threads must be at least 1")
    if quantize is not None and compute != "float32":
        raise UsageError(f"--quantize {quantize} and --compute {compute} are two precision modes: choose one")
    from bertcli.modelfiles import model_files

    export = ensure_export(resolved, quantize=quantize, allow_pickle=allow_pickle)
    threads = threads or default_threads(workers)
    try:
        with model_files(export.path):
            session = _session(export.path, threads=threads, compute=compute)
    except ModelFileError as exc:
        if export.created:  # made just now and still unreadable: nothing to rebuild
            raise
        shutil.rmtree(export.folder, ignore_errors=True)  # a corrupt cached export: make it again, once
        export = ensure_export(resolved, quantize=quantize, allow_pickle=allow_pickle)
        export.rebuilt = str(exc)
        with model_files(export.path):
            session = _session(export.path, threads=threads, compute=compute)
    outputs = [o.name for o in session.get_outputs()]
    inputs = [i.name for i in session.get_inputs()]
    return OnnxEncoder(export=export, session=session, threads=threads, quantize=quantize,
                       input_names=inputs, output_names=outputs)


@dataclass
class OnnxBackend(ConfigFacts):
    """`bertcli.backends.Backend` over an `OnnxEncoder` (the ``base`` head): no torch, no transformers."""

    encoder: OnnxEncoder
    resolved: Any
    config: Any  # config.json's values as attributes, sizes from the export's metadata
    head: str = "base"
    name: str = "onnx"
    device: str = "cpu"

    @classmethod
    def load(cls, resolved: Any, *, quantize: str | None = None, threads: int | None = None, workers: int = 1,
             allow_pickle: bool = False, compute: str = "float32") -> OnnxBackend:
        """`load_encoder` wrapped as a backend."""
        from types import SimpleNamespace

        encoder = load_encoder(resolved, quantize=quantize, threads=threads, workers=workers, allow_pickle=allow_pickle,
                               compute=compute)
        meta = encoder.export.meta
        config = SimpleNamespace(**{**resolved.config, "hidden_size": meta["hidden_size"],
                                    "num_hidden_layers": meta["num_layers"]})
        return cls(encoder=encoder, resolved=resolved, config=config)

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
        if layer is not None:
            raise UsageError("--layer needs --backend torch: the ONNX export holds the last layer only")
        if attention_layer is not None:
            raise UsageError("attention weights need --backend torch")
        hidden, pooled = self.encoder.run(input_ids, attention_mask, token_type_ids)
        return BackendOutput(hidden=hidden, pooled=pooled)

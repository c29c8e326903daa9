"""Inference backends: ``onnx`` (ONNX Runtime, CPU), ``torch`` (transformers), and ``auto`` (the default) choosing.

A backend is a loaded model for one head behind one small interface, `Backend`: right-padded token ids,
attention mask and token types in (numpy int64 arrays of shape (batch, length)), numpy arrays out
(`BackendOutput`: the hidden states of a layer and the pooler output for the ``base`` head, the head's logits for
the others). Everything above it — pooling (`bertcli.pooling`), span decoding, label scores — is written once, on
numpy, so a head gives the same numbers whichever backend runs it.

Implementations: `bertcli.backends.torch.TorchBackend` and `bertcli.backends.onnx.OnnxBackend`, each for every
head of `bertcli.heads.HEADS`. `load_backend` picks one through `choose_backend`, the one decision every
model-running command goes through: ``auto`` runs ONNX Runtime (exporting the model's head once into bertcli's
cache, announced on stderr) unless ONNX cannot serve the run — a device other than the CPU, ``--compute``
bfloat16/float16, onnxruntime missing, or an export that failed before — and then runs torch. Each
implementation's heavy imports happen inside its functions: importing this package costs nothing.

Messages for the user (the one-off export) go to the ``bertcli.notes`` logger (`NOTES`): `bertcli.output` shows
its INFO records as status lines on stderr (silenced by ``-q``) and its DEBUG records (why ``auto`` chose torch)
under ``--debug``; the core never imports the output layer.
"""

from __future__ import annotations

import logging
import os
import sys
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING, Any, ContextManager, Protocol

from bertcli.errors import ModelFileError, OutputError, UsageError

if TYPE_CHECKING:  # numpy is not imported here: option declarations read BACKENDS at start-up
    import numpy as np

BACKENDS = ("auto", "torch", "onnx")
DEFAULT_BACKEND = "auto"  # what --backend is when not given, for every model-running command
QUANTIZE = ("int8",)
#: --compute values --backend onnx runs: float32 on ONNX Runtime, bfloat16 on OpenVINO (bertcli[openvino])
ONNX_COMPUTE = ("float32", "bfloat16")

#: the logger of messages for the user (see the module docstring)
NOTES = logging.getLogger("bertcli.notes")


def check_backend(backend: str, quantize: str | None = None) -> str:
    """Validate ``--backend`` / ``--quantize``; returns the backend name in lower case (``auto`` with
    ``--quantize`` is ``onnx``: only ONNX Runtime runs int8 weights)."""
    name = (backend or DEFAULT_BACKEND).lower()
    if name not in BACKENDS:
        raise UsageError(f"unknown --backend {backend!r}: choose {', '.join(BACKENDS)}")
    if quantize is not None:
        if quantize not in QUANTIZE:
            raise UsageError(f"unknown --quantize {quantize!r}: choose {', '.join(QUANTIZE)}")
        if name == "torch":
            raise UsageError("--quantize int8 works with --backend onnx only")
        name = "onnx"
    return name


def check_runnable(backend: str, *, device: str | None = "cpu", compute: str = "float32", layer: int | None = None) -> None:
    """Refuse (`UsageError`) what an explicit ``--backend onnx`` cannot do: ONNX runs on the CPU, in float32 (or
    int8 weights). (``auto`` runs torch for those instead; ``layer`` is served by both.)"""
    if backend != "onnx":
        return
    if (device or "auto").lower() not in ("cpu", "auto"):
        raise UsageError(f"--backend onnx runs on the CPU: use --device cpu (or --backend torch for {device})")
    if compute not in ONNX_COMPUTE:
        raise UsageError(f"--compute {compute} needs --backend torch; --backend onnx computes in float32 or bfloat16 "
                         "(or --quantize int8)")


def gpu_visible() -> bool:
    """Whether torch could run on a GPU here, judged without importing torch: a CPU-only torch build (``+cpu``)
    never can; otherwise an NVIDIA or AMD device node not hidden by ``CUDA_VISIBLE_DEVICES=""``, or Apple
    silicon (MPS)."""
    from importlib import metadata

    try:
        if metadata.version("torch").endswith("+cpu"):
            return False
    except metadata.PackageNotFoundError:
        return False
    if sys.platform == "darwin":
        import platform

        return platform.machine() == "arm64"
    if os.environ.get("CUDA_VISIBLE_DEVICES", None) == "":
        return False
    return any(os.path.exists(node) for node in ("/dev/nvidiactl", "/dev/kfd"))


@dataclass(frozen=True)
class BackendChoice:
    """What `choose_backend` decided: the backend that runs, whether this run makes the ONNX export (the
    variants still missing from the cache), and why ``auto`` chose torch."""

    name: str  # "torch" or "onnx"
    missing: tuple[tuple[str, str | None], ...] = ()  # (head, feature) exports this run makes first
    reason: str | None = None  # auto → torch: what ONNX cannot serve


def choose_backend(resolved: Any, head: str = "base", *, backend: str = DEFAULT_BACKEND, device: str | None = "cpu",
                   compute: str = "float32", features: tuple[str, ...] = (), quantize: str | None = None) -> BackendChoice:
    """The one decision of which backend runs ``resolved``'s ``head`` (with the base ``features``
    ``hidden_states`` / ``attentions``): ``torch`` and ``onnx`` as asked (an ONNX run it cannot do is a
    `UsageError`), ``auto`` ONNX unless `_onnx_cannot_serve` says why not. Reads files only: nothing heavy is
    imported."""
    name = check_backend(backend, quantize)
    if name == "torch":
        return BackendChoice("torch")
    if name == "auto":
        reason = _onnx_cannot_serve(resolved, head, device=device, compute=compute, features=features)
        if reason is not None:
            return BackendChoice("torch", reason=reason)
    check_runnable("onnx", device=device, compute=compute)
    from bertcli.backends import onnx

    wanted = _variants(head, features)
    try:
        missing = tuple(v for v in wanted if not onnx.is_exported(resolved, *v))
    except ModelFileError:  # config.json unreadable: loading says what is wrong, in the same words as torch
        missing = tuple(wanted)
    return BackendChoice("onnx", missing=missing)


def _variants(head: str, features: tuple[str, ...]) -> list[tuple[str, str | None]]:
    """The exports (head, feature) a run needs: the base variants asked for (each holds the plain encoder's
    outputs too), else the head's own."""
    return [("base", feature) for feature in features] if features and head == "base" else [(head, None)]


def _onnx_cannot_serve(resolved: Any, head: str, *, device: str | None, compute: str,
                       features: tuple[str, ...]) -> str | None:
    """Why ``--backend auto`` runs torch for this run, or None when ONNX Runtime can serve it."""
    from importlib.util import find_spec

    kind = (device or "auto").lower()
    if kind not in ("cpu", "auto"):
        return f"--device {device} (ONNX Runtime runs on the CPU here)"
    if kind == "auto" and gpu_visible():
        return "--device auto and a GPU is visible (ONNX Runtime runs on the CPU here)"
    if compute not in ONNX_COMPUTE:
        return f"--compute {compute} (the ONNX export computes in float32, or bfloat16 with OpenVINO)"
    if compute != "float32" and find_spec("openvino") is None:
        return f"--compute {compute} without OpenVINO (pip install 'bertcli[openvino]' runs it on the export)"
    if find_spec("onnxruntime") is None:
        return "onnxruntime is not installed"
    if not getattr(resolved, "has_config", True):
        return "the model has no config.json"
    from bertcli.backends import onnx

    for variant in _variants(head, features):
        failed = onnx.remembered_failure(resolved, *variant)
        if failed is not None:
            return f"its ONNX export failed before ({failed})"
    return None


@lru_cache(maxsize=1)
def physical_cores() -> int:
    """Physical cores this process may run on (hyper-threads counted once); at least 1.

    Reads Linux's CPU topology for the CPUs in our affinity mask; elsewhere falls back to ``os.cpu_count()``.
    """
    try:
        cpus = sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)
    cores = set()
    for cpu in cpus:
        base = f"/sys/devices/system/cpu/cpu{cpu}/topology"
        try:
            with open(f"{base}/physical_package_id") as pkg, open(f"{base}/core_id") as core:
                cores.add((pkg.read().strip(), core.read().strip()))
        except OSError:
            cores.add(("cpu", str(cpu)))
    return max(1, len(cores))


def default_threads(workers: int = 1) -> int:
    """Intra-op threads for one of ``workers`` processes sharing this machine: physical cores / workers."""
    return max(1, physical_cores() // max(1, workers))


# ---------------------------------------------------------------------------------------------------------
# the interface


class ConfigFacts:
    """`num_layers` and `hidden_size` as a backend's ``config`` (a transformers config, or the ONNX export's
    stand-in for one) gives them: the same two facts for every implementation."""

    config: Any

    @property
    def num_layers(self) -> int:
        return int(self.config.num_hidden_layers)

    @property
    def hidden_size(self) -> int:
        return int(self.config.hidden_size)


@dataclass
class BackendOutput:
    """What one forward pass gives back, as numpy arrays on the CPU (batch first, padded as the input)."""

    hidden: np.ndarray | None = None  # (batch, length, hidden) float32: the asked-for layer (base head)
    pooled: np.ndarray | None = None  # (batch, hidden) float32: the pooler output, where the model has one
    logits: dict[str, np.ndarray] = field(default_factory=dict)  # head outputs by name: "logits", "start_logits", …
    attentions: np.ndarray | None = None  # (batch, heads, length, length) float32 of the asked-for layer


class Backend(Protocol):
    """A model loaded for one head, run on numpy inputs. See the module docstring."""

    name: str  # "torch" or "onnx"
    head: str  # a key of bertcli.heads: base, mlm, qa, rtd
    resolved: Any  # bertcli.resolve.ResolvedModel

    @property
    def config(self) -> Any: ...  # config.json's values as attributes (num_hidden_layers, hidden_size, …)

    @property
    def num_layers(self) -> int: ...

    @property
    def hidden_size(self) -> int: ...

    @property
    def architecture(self) -> str: ...  # the class that runs, for messages ("BertModel", "BertModel via ONNX")

    @property
    def device(self) -> str: ...  # "cpu", "cuda:0", "mps"

    @property
    def has_pooler(self) -> bool: ...  # a pooler layer with trained weights (base head)

    @property
    def pooler_layer(self) -> bool: ...  # the model class has a pooler layer, trained or not (for messages)

    @property
    def accepts_token_types(self) -> bool: ...  # the model takes token_type_ids

    def session(self, compute: str = "float32") -> ContextManager[Any]:
        """A scope for a stream of `run` calls: torch's inference mode, and with ``compute`` bfloat16/float16
        its matmuls under autocast (ONNX computes in float32 only: a no-op)."""
        ...

    def run(
        self,
        input_ids: np.ndarray,
        attention_mask: np.ndarray,
        token_type_ids: np.ndarray | None = None,
        *,
        layer: int | None = None,
        attention_layer: int | None = None,
        positions: tuple[list[int], list[int]] | None = None,
    ) -> BackendOutput:
        """One forward pass. ``layer``: the hidden states of that layer (0 = embeddings) instead of the last;
        ``attention_layer``: also that layer's attention weights; ``positions`` ((rows, columns)): keep the logits
        at these tokens only (shape (len(rows), …)), so a masked-LM head never copies a whole vocabulary per token.
        """
        ...


def load_backend(
    resolved: Any,
    head: str = "base",
    *,
    backend: str = DEFAULT_BACKEND,
    device: str = "cpu",
    tokenizer: Any = None,
    threads: int | None = None,
    workers: int = 1,
    quantize: str | None = None,
    attn_implementation: str | None = None,
    compute: str = "float32",
    features: tuple[str, ...] = (),
) -> Backend:
    """``resolved`` loaded for ``head`` on the backend `choose_backend` picks (``backend``: auto, torch, onnx).

    ``features``: base-head extras this run reads (``hidden_states`` for ``layer=``, ``attentions`` for
    ``attention_layer=``): ONNX exports them separately, torch loads eager attention for ``attentions``.
    torch: on ``device`` (its intra-op threads set to ``threads``), ``attn_implementation`` passed to
    transformers, ``compute`` applied by `Backend.session`. onnx: CPU only, ``threads`` intra-op threads
    (default: physical cores / ``workers``), ``quantize`` int8 weights, ``compute`` bfloat16 runs the export
    with OpenVINO. Under ``auto`` an export that fails (`bertcli.backends.onnx.ExportError`) is remembered and
    torch runs instead.
    """
    choice = choose_backend(resolved, head, backend=backend, device=device, compute=compute, features=features,
                            quantize=quantize)
    if choice.name == "onnx":
        try:
            return _load_onnx(resolved, head, choice, tokenizer=tokenizer, threads=threads, workers=workers,
                              quantize=quantize, features=features, compute=compute)
        except Exception as exc:
            from bertcli.backends.onnx import ExportError

            explicit = (backend or DEFAULT_BACKEND).lower() == "onnx" or quantize is not None
            if explicit or not isinstance(exc, (ExportError, OutputError)):  # a cache that cannot be written
                raise                                                        # is no reason to fail under auto
            NOTES.debug(f"running torch: the ONNX export failed ({exc})")
    elif choice.reason:
        NOTES.debug(f"running torch: {choice.reason}")
    from bertcli.backends.torch import TorchBackend

    if "attentions" in features and attn_implementation is None:
        attn_implementation = "eager"  # the implementation that returns attention weights
    return TorchBackend.load(resolved, head, device=device, tokenizer=tokenizer, threads=threads,
                             attn_implementation=attn_implementation)


def _load_onnx(resolved: Any, head: str, choice: BackendChoice, *, tokenizer: Any, threads: int | None,
               workers: int, quantize: str | None, features: tuple[str, ...], compute: str = "float32") -> Backend:
    """The ONNX backend, after the checks torch's loader makes (head, model files, vocabulary); an export this
    run makes is announced by `bertcli.backends.onnx` once the model has loaded."""
    from bertcli.backends import onnx
    from bertcli.heads import check_head
    from bertcli.modelfiles import check_vocab_fits

    if choice.missing:  # what torch checks before loading fails here, in its words
        from bertcli.runner import preflight

        preflight(resolved, head, tokenizer=tokenizer)
    else:
        if resolved.has_config:
            check_head(resolved, head)
        if tokenizer is not None:
            check_vocab_fits(tokenizer, resolved)
    return onnx.OnnxBackend.load(resolved, head, features=features, quantize=quantize, threads=threads,
                                 workers=workers, compute=compute)

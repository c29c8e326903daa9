"""Inference backends: ``torch`` (transformers, the default) and ``onnx`` (ONNX Runtime, CPU).

A backend is a loaded model for one head behind one small interface, `Backend`: right-padded token ids,
attention mask and token types in (numpy int64 arrays of shape (batch, length)), numpy arrays out
(`BackendOutput`: the hidden states of a layer and the pooler output for the ``base`` head, the head's logits for
the others). Everything above it — pooling (`bertcli.pooling`), span decoding, label scores — is written once, on
numpy, so a head gives the same numbers whichever backend runs it.

Implementations: `bertcli.backends.torch.TorchBackend` (every head) and `bertcli.backends.onnx.OnnxBackend` (the
``base`` head so far). `load_backend` picks one by name. Each one's heavy imports happen inside its functions:
importing this package costs nothing.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING, Any, ContextManager, Protocol

from bertcli.errors import UsageError

if TYPE_CHECKING:  # numpy is not imported here: option declarations read BACKENDS at start-up
    import numpy as np

BACKENDS = ("torch", "onnx")
DEFAULT_BACKEND = "torch"  # what --backend is when not given, for every model-running command
QUANTIZE = ("int8",)
#: --compute values --backend onnx runs: float32 on ONNX Runtime, bfloat16 on OpenVINO (bertcli[openvino])
ONNX_COMPUTE = ("float32", "bfloat16")


def check_backend(backend: str, quantize: str | None = None) -> str:
    """Validate ``--backend`` / ``--quantize``; returns the backend name in lower case."""
    name = (backend or "torch").lower()
    if name not in BACKENDS:
        raise UsageError(f"unknown --backend {backend!r}: choose {' or '.join(BACKENDS)}")
    if quantize is not None:
        if quantize not in QUANTIZE:
            raise UsageError(f"unknown --quantize {quantize!r}: choose {', '.join(QUANTIZE)}")
        if name != "onnx":
            raise UsageError("--quantize int8 works with --backend onnx only")
    return name


def check_runnable(backend: str, *, device: str | None = "cpu", compute: str = "float32", layer: int | None = None) -> None:
    """Refuse (`UsageError`) what ``backend`` cannot do: ONNX runs on the CPU, in float32 (or int8 weights), and
    its export holds the last layer only."""
    if backend != "onnx":
        return
    if (device or "auto").lower() not in ("cpu", "auto"):
        raise UsageError(f"--backend onnx runs on the CPU: use --device cpu (or --backend torch for {device})")
    if compute not in ONNX_COMPUTE:
        raise UsageError(f"--compute {compute} needs --backend torch; --backend onnx computes in float32 or bfloat16 "
                         "(or --quantize int8)")
    if layer is not None:
        raise UsageError("--layer needs --backend torch: the ONNX export holds the last layer only")


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
    backend: str = "torch",
    device: str = "cpu",
    tokenizer: Any = None,
    threads: int | None = None,
    workers: int = 1,
    quantize: str | None = None,
    attn_implementation: str | None = None,
    compute: str = "float32",
) -> Backend:
    """``resolved`` loaded for ``head`` on the named backend (see `check_backend`).

    torch: on ``device`` (its intra-op threads set to ``threads``), ``attn_implementation`` passed to transformers (``eager`` returns attention weights). onnx:
    CPU only, ``threads`` intra-op threads (default: physical cores / ``workers``), ``quantize`` int8 weights,
    ``compute`` bfloat16 runs the export with OpenVINO (torch: ``compute`` is applied by `Backend.session`).
    """
    name = check_backend(backend, quantize)
    if name == "onnx":
        if head != "base":
            raise UsageError(f"--backend onnx runs the encoder only (the {head} head needs --backend torch)")
        from bertcli.backends.onnx import OnnxBackend

        return OnnxBackend.load(resolved, quantize=quantize, threads=threads, workers=workers, compute=compute)
    from bertcli.backends.torch import TorchBackend

    return TorchBackend.load(resolved, head, device=device, tokenizer=tokenizer, threads=threads,
                             attn_implementation=attn_implementation)

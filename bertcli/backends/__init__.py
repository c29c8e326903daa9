"""Inference backends for encoders: ``torch`` (transformers, the default) and ``onnx`` (ONNX Runtime, CPU).

A backend only turns token ids into the encoder's outputs (``last_hidden_state``, ``pooler_output``); pooling,
batching and output stay in the commands' core modules. Backends are chosen by name; each one's heavy imports
happen inside its functions.
"""

from __future__ import annotations

import os
from functools import lru_cache

from bertcli.errors import UsageError

BACKENDS = ("torch", "onnx")
QUANTIZE = ("int8",)


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

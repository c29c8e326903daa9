"""Bench: `bertcli qa` vs transformers 4.57's question-answering pipeline — time, memory and equal answers.

200 questions over 2-3 kB contexts (2-3 windows of 384 tokens each) on the tiny QA model of
tests/fixtures/trained_qa.py. transformers 5 has no QA pipeline, so the baseline runs in a bench-only venv
(`.bench-venv`: torch==2.13.0, the CPU build on this machine's disk, and transformers 4.57.*), created here when
missing; bertcli runs from the project's .venv. Both read the same questions.jsonl and write JSON Lines.

Checked: answer text and character offsets equal the pipeline's for all 200 questions, both with null answers
(bertcli's default vs handle_impossible_answer=True) and without (--no-null vs the pipeline's default) — or, where
the context holds the answer word more than once, a tie: the same word (the model is uncased) elsewhere with a
score within `TIE_TOLERANCE`, which float rounding breaks one way or the other (ONNX Runtime and torch sum in
different orders; torch alone breaks one such tie differently from the pipeline).
Timed: whole processes (imports, model load, all questions), best of N, after one warm-up run of bertcli that
makes its ONNX export (timed apart: the first run of a model); peak RSS of each process.
Writes bench/out/qa.json. Run: .venv/bin/python bench/bench_qa.py [--repeat N]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

from common import OUT, ROOT, bench_env  # the script's folder is on sys.path
BENCH_VENV = ROOT / ".bench-venv"
BENCH_PY = BENCH_VENV / "bin" / "python"
QUESTIONS = 200
#: two answers are a tie when their texts are the same word and their scores this close
TIE_TOLERANCE = 1e-4

PIPELINE_SCRIPT = r'''
import json, sys
from transformers import pipeline
from transformers.utils import logging
logging.set_verbosity_error()
model, questions, out, null = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4] == "null"
qa = pipeline("question-answering", model=model, tokenizer=model, device="cpu")
with open(questions, encoding="utf-8") as src, open(out, "w", encoding="utf-8") as dst:
    for line in src:
        rec = json.loads(line)
        got = qa(question=rec["question"], context=rec["context"], handle_impossible_answer=null)
        dst.write(json.dumps({"id": rec["id"], **got}) + "\n")
'''

RSS_WRAPPER = r'''
import resource, subprocess, sys, time
start = time.perf_counter()
rc = subprocess.run(sys.argv[1:]).returncode
print(time.perf_counter() - start, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, rc)
'''


def ensure_bench_venv() -> None:
    """Create .bench-venv with transformers 4.57 (the last release with the QA pipeline) when missing."""
    if BENCH_PY.exists():
        check = subprocess.run([str(BENCH_PY), "-c", "import transformers, torch; print(transformers.__version__)"],
                               capture_output=True, text=True)
        if check.returncode == 0 and check.stdout.startswith("4.57."):
            return
    print("creating .bench-venv (torch==2.13.0, transformers 4.57) …", file=sys.stderr)
    base = getattr(sys, "_base_executable", None) or sys.executable
    subprocess.run([base, "-m", "venv", str(BENCH_VENV)], check=True)
    subprocess.run([str(BENCH_PY), "-m", "pip", "install", "--disable-pip-version-check", "-q",
                    "torch==2.13.0", "transformers==4.57.*"], check=True)


def make_questions(model: Path, path: Path) -> None:
    """200 (id, question, context) records, contexts of 2-3 kB, one context in ten without an answer."""
    sys.path.insert(0, str(ROOT))
    from tests.fixtures.trained_qa import make_example

    vocab = (model / "vocab.txt").read_text(encoding="utf-8").splitlines()
    rng = random.Random(2024)
    with path.open("w", encoding="utf-8") as out:
        for n in range(QUESTIONS):
            size = rng.randint(2000, 3000)
            while True:
                question, context, _ = make_example(rng, vocab, fillers=size // 30, answerable=n % 10 != 9)
                if 2000 <= len(context.encode()) <= 3000:
                    break
                size = rng.randint(2000, 3000)
            out.write(json.dumps({"id": n, "question": question, "context": context}) + "\n")


def timed(cmd: list[str], env: dict) -> tuple[float, float]:
    """(seconds, peak RSS in MB) of one whole process."""
    proc = subprocess.run([sys.executable, "-c", RSS_WRAPPER, *cmd], capture_output=True, text=True, env=env)
    seconds, rss_kb, rc = proc.stdout.split()
    if rc != "0":
        raise SystemExit(f"failed ({rc}): {' '.join(cmd)}\n{proc.stderr[-2000:]}")
    return float(seconds), int(rss_kb) / 1024


def read(path: Path) -> dict:
    return {rec["id"]: rec for rec in map(json.loads, path.read_text(encoding="utf-8").splitlines())}


def compare(ours: dict, theirs: dict) -> dict:
    """Counts of equal answers/offsets, of ties (the same word elsewhere, scores within `TIE_TOLERANCE`), of
    no-answer calls, and the largest score difference."""
    same = ties = 0
    for o, t in ((ours[i], theirs[i]) for i in theirs):
        if (o["answer"], o["start"], o["end"]) == (t["answer"], t["start"], t["end"]):
            same += 1
        elif o["answer"].lower() == t["answer"].lower() and abs(o["score"] - t["score"]) <= TIE_TOLERANCE:
            ties += 1
    no_answer = sum(ours[i]["no_answer"] for i in ours)
    worst = max(abs(ours[i]["score"] - theirs[i]["score"]) for i in theirs)
    return {"questions": len(theirs), "same_answer_and_offsets": same, "ties_elsewhere": ties,
            "no_answer": no_answer, "max_score_diff": worst}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per side (best is kept)")
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    cache = OUT / "qa-bertcli-cache"  # a fresh bertcli cache: the warm-up run below makes the ONNX export
    shutil.rmtree(cache, ignore_errors=True)
    env = bench_env(BERTCLI_CACHE=str(cache))

    ensure_bench_venv()
    sys.path.insert(0, str(ROOT))
    from tests.fixtures.trained_qa import build_trained_qa

    model = build_trained_qa(OUT / "qa-model")
    questions = OUT / "qa-questions.jsonl"
    make_questions(model, questions)
    script = OUT / "qa_pipeline.py"
    script.write_text(PIPELINE_SCRIPT, encoding="utf-8")

    def run_bertcli(out: Path, null: bool) -> tuple[float, float]:
        cmd = [sys.executable, "-m", "bertcli", "qa", "-m", str(model), "--input", str(questions), "--device", "cpu",
               "--format", "jsonl", "--quiet"] + ([] if null else ["--no-null"])
        # stdout goes to `out` through a tiny wrapper (no shell)
        wrapper = [sys.executable, "-c", "import subprocess, sys; "
                   "sys.exit(subprocess.run(sys.argv[2:], stdout=open(sys.argv[1], 'w')).returncode)", str(out), *cmd]
        return timed(wrapper, env)

    def run_pipeline(out: Path, null: bool) -> tuple[float, float]:
        return timed([str(BENCH_PY), str(script), str(model), str(questions), str(out), "null" if null else "span"], env)

    results: dict = {"machine": f"{os.cpu_count()} CPU cores", "questions": QUESTIONS, "model": "trained tiny BERT QA "
                     "(hidden 64, 2 layers)", "windows": "384 tokens, stride 128 (the pipeline's defaults)"}
    first = run_bertcli(OUT / "qa-bertcli.jsonl", False)  # makes the ONNX export: the first run of a model
    results["bertcli_first_run"] = {"seconds": round(first[0], 3), "peak_rss_mb": round(first[1], 1)}
    best: dict[str, tuple[float, float]] = {"bertcli": (float("inf"), 0.0), "pipeline": (float("inf"), 0.0)}
    # interleave the sides so that a busy machine slows both alike
    for _ in range(args.repeat):
        for name, runner, null in (("bertcli", run_bertcli, False), ("pipeline", run_pipeline, False)):
            seconds, rss = runner(OUT / f"qa-{name}.jsonl", null)
            best[name] = (min(best[name][0], seconds), max(best[name][1], rss))
    for name, runner, null in (("bertcli-null", run_bertcli, True), ("pipeline-null", run_pipeline, True)):
        best[name] = runner(OUT / f"qa-{name}.jsonl", null)

    results["timing"] = {name: {"seconds": round(s, 3), "peak_rss_mb": round(r, 1)} for name, (s, r) in best.items()}
    results["ratio_time"] = round(best["bertcli"][0] / best["pipeline"][0], 3)
    results["ratio_rss"] = round(best["bertcli"][1] / best["pipeline"][1], 3)
    results["no_null_vs_pipeline_default"] = compare(read(OUT / "qa-bertcli.jsonl"), read(OUT / "qa-pipeline.jsonl"))
    results["null_vs_handle_impossible_answer"] = compare(read(OUT / "qa-bertcli-null.jsonl"),
                                                          read(OUT / "qa-pipeline-null.jsonl"))
    (OUT / "qa.json").write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")

    print(f"qa: {QUESTIONS} questions over 2-3 kB contexts, tiny QA model, best of {args.repeat}, {results['machine']}")
    print(f"{'run':<16}{'seconds':>10}{'peak RSS MB':>14}")
    for name, (s, r) in best.items():
        print(f"{name:<16}{s:>10.2f}{r:>14.0f}")
    print(f"bertcli / pipeline: time {results['ratio_time']:.2f}x, memory {results['ratio_rss']:.2f}x")
    for key in ("no_null_vs_pipeline_default", "null_vs_handle_impossible_answer"):
        c = results[key]
        print(f"{key}: {c['same_answer_and_offsets']}/{c['questions']} same answer and offsets, "
              f"{c['ties_elsewhere']} ties (the same word elsewhere), {c['no_answer']} no-answer, "
              f"max score diff {c['max_score_diff']:.2e}")
    print(f"bertcli's first run (ONNX export): {first[0]:.2f} s")
    ok = all(results[k]["same_answer_and_offsets"] + results[k]["ties_elsewhere"] == QUESTIONS
             for k in ("no_null_vs_pipeline_default", "null_vs_handle_impossible_answer"))
    if not ok:
        raise SystemExit("bertcli's answers differ from the pipeline's")


if __name__ == "__main__":
    main()

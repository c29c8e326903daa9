"""Bench: `bertcli tag` vs a script calling transformers' token-classification pipeline — time and equal entities.

2,000 lines (10-30 words, names, places and organisations among them) through a realistic tagger: a
BertForTokenClassification built once in bench/out/tag-model from the real all-MiniLM-L6-v2 folder's config,
encoder weights and tokenizer, with a random classifier (seed 0; the "O" label's bias raised so that most tokens
are O, as in real NER). Both sides are whole processes (imports, model load, all lines), interleaved so that a
busy machine slows both alike, best of N:

- bertcli: ``python -m bertcli tag -m MODEL --file lines.txt -f jsonl`` (aggregation simple, the default);
- the script: ``pipeline("token-classification", aggregation_strategy="simple")`` called on the list of lines
  with its default batch size, one JSON line per input.

Checked: for every line the same entity groups, words and offsets, scores within 1e-4 (bertcli batches padded
windows; the pipeline runs one text at a time). Writes bench/out/tag.json.
Run: .venv/bin/python bench/bench_tag.py [--repeat N]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path

from common import OUT, ROOT, bench_env, cpu_name  # the script's folder is on sys.path
LINES = 2000
LABELS = {0: "O", 1: "B-PER", 2: "I-PER", 3: "B-LOC", 4: "I-LOC", 5: "B-ORG", 6: "I-ORG", 7: "B-MISC", 8: "I-MISC"}
TOKENIZER_FILES = ("tokenizer.json", "vocab.txt", "tokenizer_config.json", "special_tokens_map.json")

PIPELINE_SCRIPT = r'''
import json, sys
from transformers import pipeline
from transformers.utils import logging
logging.set_verbosity_error()
model, lines, out = sys.argv[1], sys.argv[2], sys.argv[3]
tagger = pipeline("token-classification", model=model, aggregation_strategy="simple", device="cpu")
texts = open(lines, encoding="utf-8").read().splitlines()
with open(out, "w", encoding="utf-8") as dst:
    for n, entities in enumerate(tagger(texts), start=1):
        dst.write(json.dumps({"line": n, "entities": [{**e, "score": float(e["score"])} for e in entities]}) + "\n")
'''

NAMES = ["John Smith", "Maria Garcia", "Angela Merkel", "Satya Nadella", "Ada Lovelace", "Kofi Annan", "Li Wei"]
PLACES = ["Paris", "New York", "Berlin", "Nairobi", "São Paulo", "Tokyo", "the Rhine valley", "Lake Geneva"]
ORGS = ["Google", "the United Nations", "Siemens", "the World Bank", "Microsoft", "Médecins Sans Frontières"]
WORDS = ("the a report said that new plans were announced on Monday after talks with officials about trade "
         "energy prices schools and the weather which remained unusually warm for the season while markets rose "
         "slightly and analysts expected further changes next year").split()


def build_model(dest: Path) -> Path:
    """BertForTokenClassification = MiniLM's encoder + a seeded random classifier, with MiniLM's tokenizer."""
    if (dest / "model.safetensors").exists():
        return dest
    import torch
    from transformers import BertConfig, BertForTokenClassification, BertModel

    sys.path.insert(0, str(ROOT))
    from bench.common import minilm

    source = minilm()
    config = BertConfig.from_pretrained(source, id2label=LABELS, label2id={v: k for k, v in LABELS.items()})
    config.architectures = ["BertForTokenClassification"]
    torch.manual_seed(0)
    model = BertForTokenClassification(config)
    model.bert.load_state_dict(BertModel.from_pretrained(source, add_pooling_layer=False).state_dict())
    with torch.no_grad():
        model.classifier.bias[0] += 0.35  # most tokens "O" (~85% here), as a real tagger's
    dest.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(dest)
    for name in TOKENIZER_FILES:
        if (source / name).exists():
            shutil.copy(source / name, dest / name)
    return dest


def make_lines(path: Path) -> None:
    rng = random.Random(7)
    with path.open("w", encoding="utf-8") as out:
        for _ in range(LINES):
            words = [rng.choice(WORDS) for _ in range(rng.randint(10, 30))]
            for pool in (NAMES, PLACES, ORGS):
                if rng.random() < 0.7:
                    words.insert(rng.randrange(len(words) + 1), rng.choice(pool))
            text = " ".join(words)
            out.write(text[0].upper() + text[1:] + ".\n")


def timed(cmd: list[str], out: Path, env: dict) -> float:
    start = time.perf_counter()
    with out.open("w", encoding="utf-8") as dst:
        proc = subprocess.run(cmd, stdout=dst, stderr=subprocess.PIPE, text=True, env=env)
    seconds = time.perf_counter() - start
    if proc.returncode:
        raise SystemExit(f"failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stderr[-2000:]}")
    return seconds


def compare(ours: Path, theirs: Path) -> dict:
    a = [json.loads(line)["entities"] for line in ours.read_text(encoding="utf-8").splitlines()]
    b = [json.loads(line)["entities"] for line in theirs.read_text(encoding="utf-8").splitlines()]
    assert len(a) == len(b) == LINES, (len(a), len(b))
    key = lambda e: (e["entity_group"], e["word"], e["start"], e["end"])  # noqa: E731
    same = sum([key(e) for e in x] == [key(e) for e in y] for x, y in zip(a, b))
    worst = max((abs(e["score"] - f["score"]) for x, y in zip(a, b) for e, f in zip(x, y)), default=0.0)
    assert sum(map(len, b)) > LINES, "the tagger found (almost) no entities: the check would say nothing"
    return {"lines": LINES, "lines_with_the_same_entities": same, "entities": sum(map(len, b)),
            "max_score_diff": worst}


def main() -> None:
    sys.path.insert(0, str(ROOT))

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per side (best is kept)")
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    env = bench_env()
    model = build_model(OUT / "tag-model")
    lines = OUT / "tag-lines.txt"
    make_lines(lines)
    script = OUT / "tag_pipeline.py"
    script.write_text(PIPELINE_SCRIPT, encoding="utf-8")
    sides = {
        "bertcli": [sys.executable, "-m", "bertcli", "tag", "-m", str(model), "--file", str(lines), "--device", "cpu",
                    "-f", "jsonl", "-q"],
        "pipeline": [sys.executable, str(script), str(model), str(lines), "/dev/stdout"],
    }
    load_before = os.getloadavg()
    walls: dict[str, list[float]] = {name: [] for name in sides}
    for _ in range(args.repeat):
        for name, cmd in sides.items():
            walls[name].append(timed(cmd, OUT / f"tag-{name}.jsonl", env))
    best = {name: min(w) for name, w in walls.items()}
    results = {
        "cpu": cpu_name(), "cores": os.cpu_count(), "load_before": [round(x, 1) for x in load_before],
        "model": "BertForTokenClassification: all-MiniLM-L6-v2 encoder + random classifier (9 labels)",
        "lines": LINES, "runs": {k: [round(x, 2) for x in v] for k, v in walls.items()},
        "best_seconds": {k: round(v, 2) for k, v in best.items()},
        "ratio": round(best["bertcli"] / best["pipeline"], 3),
        "check": compare(OUT / "tag-bertcli.jsonl", OUT / "tag-pipeline.jsonl"),
        "load_after": [round(x, 1) for x in os.getloadavg()],
    }
    (OUT / "tag.json").write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()

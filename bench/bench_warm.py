"""Bench: a warm single input per model command — bertcli (default backend) vs a minimal transformers script.

Issue 17's target: with its model warm (exported and cached by an earlier run), each command answers one input in
≤ 0.15× the time of the shortest transformers script doing the same job. Whole processes, interleaved (bertcli,
script, bertcli, script …), after one untimed warm-up run of each (the export, the tokenizer, the OS file cache).

Models, MiniLM-sized (6 layers, 384 wide, its vocabulary and tokenizer): the real all-MiniLM-L6-v2 for
`embed`; random-init BertForMaskedLM (fill-mask), BertForQuestionAnswering (qa), ElectraForPreTraining
(detect) and BertForSequenceClassification (classify) built once from MiniLM's config into --models.
`classify` is timed only where this checkout has the command.

Writes bench/out/warm.json. Run: .venv/bin/python bench/bench_warm.py [--repeat N] [--models DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import PY, bench_env, cpu_name, minilm, save  # noqa: E402

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json")
HEADS = {"mlm": "BertForMaskedLM", "qa": "BertForQuestionAnswering", "rtd": "ElectraForPreTraining",
         "seqcls": "BertForSequenceClassification"}

#: the shortest honest transformers script per command: load, tokenize, one forward pass, the answer printed
SCRIPTS = {
    "embed": r'''
import sys, torch
from transformers import AutoModel, AutoTokenizer
tok = AutoTokenizer.from_pretrained(sys.argv[1]); model = AutoModel.from_pretrained(sys.argv[1]).eval()
enc = tok([sys.argv[2]], return_tensors="pt")
with torch.inference_mode():
    hidden = model(**enc).last_hidden_state
mask = enc["attention_mask"].unsqueeze(-1).float()
vec = torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1), dim=-1)
print(vec[0, :4].tolist())
''',
    "fill-mask": r'''
import sys, torch
from transformers import AutoModelForMaskedLM, AutoTokenizer
tok = AutoTokenizer.from_pretrained(sys.argv[1]); model = AutoModelForMaskedLM.from_pretrained(sys.argv[1]).eval()
enc = tok([sys.argv[2]], return_tensors="pt")
with torch.inference_mode():
    logits = model(**enc).logits
pos = (enc["input_ids"][0] == tok.mask_token_id).nonzero()[0, 0]
top = logits[0, pos].softmax(-1).topk(5)
print([(tok.convert_ids_to_tokens(int(i)), float(s)) for s, i in zip(top.values, top.indices)])
''',
    "qa": r'''
import sys, torch
from transformers import AutoModelForQuestionAnswering, AutoTokenizer
tok = AutoTokenizer.from_pretrained(sys.argv[1])
model = AutoModelForQuestionAnswering.from_pretrained(sys.argv[1]).eval()
enc = tok(sys.argv[2], sys.argv[3], return_tensors="pt", return_offsets_mapping=True)
offsets = enc.pop("offset_mapping")[0]
with torch.inference_mode():
    out = model(**enc)
context = torch.tensor([s == 1 for s in enc.sequence_ids(0)])
start = out.start_logits[0].masked_fill(~context, -1e9).argmax()
end = start + out.end_logits[0, start:].masked_fill(~context[start:], -1e9)[:30].argmax()
print(sys.argv[3][offsets[start][0]:offsets[end][1]])
''',
    "detect": r'''
import sys, torch
from transformers import AutoModelForPreTraining, AutoTokenizer
tok = AutoTokenizer.from_pretrained(sys.argv[1]); model = AutoModelForPreTraining.from_pretrained(sys.argv[1]).eval()
enc = tok([sys.argv[2]], return_tensors="pt")
with torch.inference_mode():
    probs = model(**enc).logits[0].sigmoid()
print([(t, round(float(p), 3)) for t, p in zip(tok.convert_ids_to_tokens(enc["input_ids"][0]), probs)])
''',
    "classify": r'''
import sys, torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer
tok = AutoTokenizer.from_pretrained(sys.argv[1])
model = AutoModelForSequenceClassification.from_pretrained(sys.argv[1]).eval()
enc = tok([sys.argv[2]], return_tensors="pt")
with torch.inference_mode():
    probs = model(**enc).logits[0].softmax(-1)
print({model.config.id2label[i]: float(p) for i, p in enumerate(probs)})
''',
}

TEXT = "It was a great day at the beach with my family."
MASKED = "It was a great [MASK] at the beach with my family."
QUESTION = "Where was it great?"
CONTEXT = "It was a great day at the beach with my family, and we stayed until the sun went down."


def build_models(folder: Path) -> dict[str, Path]:
    """MiniLM-sized random-init folders for each head (built once; reused when present)."""
    import torch
    import transformers

    base = minilm()
    config = json.loads((base / "config.json").read_text())
    out = {}
    for head, arch in HEADS.items():
        dest = folder / arch
        out[head] = dest
        if (dest / "config.json").is_file():
            continue
        torch.manual_seed(0)
        if head == "rtd":
            cfg = transformers.ElectraConfig(**{k: config[k] for k in (
                "vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
                "max_position_embeddings", "type_vocab_size")}, embedding_size=config["hidden_size"])
        else:
            cfg = transformers.BertConfig(**{k: v for k, v in config.items() if k not in ("architectures",)})
            if head == "seqcls":
                cfg.id2label, cfg.label2id = {0: "negative", 1: "positive"}, {"negative": 0, "positive": 1}
        model = getattr(transformers, arch)(cfg).eval()
        tmp = dest.with_suffix(".part")
        shutil.rmtree(tmp, ignore_errors=True)
        model.save_pretrained(tmp)
        for name in TOKENIZER_FILES:
            if (base / name).is_file():
                shutil.copy(base / name, tmp / name)
        tmp.rename(dest)
    return out


def jobs(models: dict[str, Path], scripts_dir: Path, has_classify: bool) -> dict[str, tuple[list[str], list[str]]]:
    """command → (bertcli argv, transformers script argv)."""
    bert = [PY, "-m", "bertcli"]
    embed_model = str(minilm())
    out = {
        "embed": ([*bert, "embed", "-m", embed_model, TEXT, "-f", "json"], [embed_model, TEXT]),
        "fill-mask": ([*bert, "fill-mask", "-m", str(models["mlm"]), MASKED, "-f", "json"], [str(models["mlm"]), MASKED]),
        "qa": ([*bert, "qa", "-m", str(models["qa"]), "--question", QUESTION, "--context", CONTEXT, "-f", "json"],
               [str(models["qa"]), QUESTION, CONTEXT]),
        "detect": ([*bert, "detect", "-m", str(models["rtd"]), TEXT, "-f", "json"], [str(models["rtd"]), TEXT]),
    }
    if has_classify:
        out["classify"] = ([*bert, "classify", "-m", str(models["seqcls"]), TEXT, "-f", "json"],
                           [str(models["seqcls"]), TEXT])
    result = {}
    for name, (cli, args) in out.items():
        script = scripts_dir / f"{name}.py"
        script.write_text(SCRIPTS[name])
        result[name] = (cli, [PY, str(script), *args])
    return result


def timed(cmd: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    proc = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, check=False)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:6])} failed: {proc.stderr.decode(errors='replace')[-1500:]}")
    return wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--models", type=Path, default=Path("/tmp/bertcli-bench-warm-models"))
    parser.add_argument("--cache", type=Path, default=Path("/tmp/bertcli-bench-warm-cache"))
    args = parser.parse_args()
    args.models.mkdir(parents=True, exist_ok=True)
    models = build_models(args.models)
    env = bench_env(BERTCLI_CACHE=str(args.cache))
    has_classify = subprocess.run([PY, "-m", "bertcli", "classify", "--help"], env=env, capture_output=True).returncode == 0
    table = jobs(models, args.models, has_classify)
    for cli, script in table.values():  # warm-up, untimed: the export, the tokenizer, the OS file cache
        timed(cli, env)
        timed(script, env)
    times: dict[str, dict[str, list[float]]] = {name: {"bertcli": [], "transformers": []} for name in table}
    load_before = os.getloadavg()
    for _ in range(args.repeat):
        for name, (cli, script) in table.items():
            times[name]["bertcli"].append(timed(cli, env))
            times[name]["transformers"].append(timed(script, env))
    results = {}
    for name, runs in times.items():
        ours, theirs = statistics.median(runs["bertcli"]), statistics.median(runs["transformers"])
        results[name] = {"bertcli_median_s": ours, "transformers_median_s": theirs, "ratio": ours / theirs,
                         "bertcli_min_s": min(runs["bertcli"]), "transformers_min_s": min(runs["transformers"]),
                         "runs": runs}
        print(f"{name:10s} bertcli {ours:6.2f} s   transformers {theirs:6.2f} s   ratio {ours / theirs:.3f}×")
    cpu = cpu_name()
    save("warm", {"results": results, "repeat": args.repeat, "cpu": cpu, "cores": os.cpu_count(),
                  "loadavg_before": load_before, "loadavg_after": os.getloadavg(), "classify": has_classify})
    print(f"CPU: {cpu} ({os.cpu_count()} cores); load average before {load_before[0]:.1f}, after "
          f"{os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()

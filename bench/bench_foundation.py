"""Issue 3 benchmarks: start-up of tokenize/--help/config vs an AutoTokenizer script; 20k-line throughput.

Targets: whole-process time ≤ 0.15× a 4-line AutoTokenizer script; ≥ 0.8× the throughput of a raw `tokenizers`
encode_batch script writing the same JSON Lines; memory that does not grow with input length.
"""

from __future__ import annotations

import random
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import PY, best_of, minilm, save  # noqa: E402

M = str(minilm())
BERTCLI = [PY, "-m", "bertcli"]
N_START = 7

SCRIPT = f"""from transformers import AutoTokenizer
tok = AutoTokenizer.from_pretrained({M!r})
enc = tok("It was a great day")
print(enc["input_ids"])
"""

# The raw script writes exactly what `bertcli tokenize -f jsonl` writes (same fields, same JSON layout).
RAW = f"""import sys, json
from tokenizers import Tokenizer
tok = Tokenizer.from_file({M + '/tokenizer.json'!r}); tok.no_padding(); tok.no_truncation()
out = sys.stdout
batch = []
def flush(batch):
    for text, enc in zip(batch, tok.encode_batch(batch)):
        out.write(json.dumps({{"text": text, "tokens": enc.tokens, "input_ids": enc.ids,
                              "token_type_ids": enc.type_ids, "attention_mask": enc.attention_mask,
                              "offsets": enc.offsets, "word_ids": enc.word_ids,
                              "special_tokens_mask": enc.special_tokens_mask}},
                             ensure_ascii=False, separators=(", ", ": ")) + "\\n")
for line in sys.stdin.buffer:
    batch.append(line.decode("utf-8").rstrip("\\n"))
    if len(batch) == 1024:
        flush(batch); batch = []
flush(batch)
"""

RAW_IDS = f"""import sys
from tokenizers import Tokenizer
tok = Tokenizer.from_file({M + '/tokenizer.json'!r}); tok.no_padding(); tok.no_truncation()
out = sys.stdout
batch = []
def flush(batch):
    for enc in tok.encode_batch(batch):
        out.write(" ".join(map(str, enc.ids)) + "\\n")
for line in sys.stdin.buffer:
    batch.append(line.decode("utf-8").rstrip("\\n"))
    if len(batch) == 1024:
        flush(batch); batch = []
flush(batch)
"""

WORDS = ("the of and to in is was for on that with as by at it from be this have an are which or not but one "
         "all were they there had been has their more will would about who also into than other some its time "
         "city model language beautiful great day sudden epiphany learning intelligence research system").split()


def corpus(n: int, seed: int = 7) -> bytes:
    rng = random.Random(seed)
    lines = []
    for _ in range(n):
        k = rng.randint(4, 60)
        lines.append(" ".join(rng.choice(WORDS) for _ in range(k)).capitalize() + ".")
    return ("\n".join(lines) + "\n").encode()


def main() -> None:
    results: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp, "autotok.py")
        script.write_text(SCRIPT)
        raw = Path(tmp, "raw.py")
        raw.write_text(RAW)
        raw_ids = Path(tmp, "raw_ids.py")
        raw_ids.write_text(RAW_IDS)
        base, base_rss, _ = best_of(N_START, [PY, str(script)])
        results["autotokenizer_script_s"] = base
        for name, args in {
            "tokenize": ["tokenize", "-m", M, "It was a great day", "-f", "ids"],
            "help": ["--help"],
            "config": ["config", M, "-f", "json"],
        }.items():
            wall, rss, _ = best_of(N_START, BERTCLI + args)
            results[f"{name}_s"] = wall
            results[f"{name}_ratio"] = wall / base
        # throughput: 20,000 lines → JSON Lines
        data = corpus(20_000)
        raw_wall, raw_rss, _ = best_of(3, [PY, str(raw)], stdin=data)
        cli_wall, cli_rss, _ = best_of(3, BERTCLI + ["tokenize", "-m", M, "-f", "jsonl"], stdin=data)
        raw_ids_wall, _, _ = best_of(3, [PY, str(raw_ids)], stdin=data)
        ids_wall, _, _ = best_of(3, BERTCLI + ["tokenize", "-m", M, "-f", "ids"], stdin=data)
        results.update(raw_20k_s=raw_wall, bertcli_jsonl_20k_s=cli_wall, bertcli_ids_20k_s=ids_wall,
                       raw_ids_20k_s=raw_ids_wall,
                       throughput_ratio_jsonl=raw_wall / cli_wall, throughput_ratio_ids=raw_ids_wall / ids_wall,
                       raw_rss_kib=raw_rss, bertcli_rss_20k_kib=cli_rss)
        # memory vs input length: 20k vs 200k lines
        big = corpus(200_000)
        _, rss_200k, _ = best_of(1, BERTCLI + ["tokenize", "-m", M, "-f", "jsonl"], stdin=big)
        results["bertcli_rss_200k_kib"] = rss_200k
    save("foundation", results)
    print(f"AutoTokenizer 4-line script : {results['autotokenizer_script_s']:.3f} s (best of {N_START})")
    for name in ("tokenize", "help", "config"):
        print(f"bertcli {name:<8}            : {results[name + '_s']:.3f} s  = {results[name + '_ratio']:.3f}× (target ≤ 0.15×)")
    print(f"20k lines → JSON Lines: raw tokenizers script {raw_wall:.2f} s, bertcli {cli_wall:.2f} s "
          f"→ {results['throughput_ratio_jsonl']:.2f}× its throughput (target ≥ 0.8×)")
    print(f"20k lines → ids: raw script {raw_ids_wall:.2f} s, bertcli -f ids {ids_wall:.2f} s "
          f"→ {results['throughput_ratio_ids']:.2f}×")
    print(f"peak RSS: 20k lines {results['bertcli_rss_20k_kib'] / 1024:.0f} MiB, 200k lines {rss_200k / 1024:.0f} MiB")


if __name__ == "__main__":
    main()

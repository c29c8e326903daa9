"""Bench: `bertcli download` vs `hf download` of a ~50 MB BERT (safetensors) from the local fake hub.

Target (issue 4): bertcli takes at most 1.1x the time of `hf download`. Both are whole processes (interpreter
start, imports, revision + listing requests, transfer, exit) into a fresh cache each run, in the same run, interleaved,
best of N; peak RSS via /usr/bin/time. The model is a random-init BertModel sized to ~50 MB, saved with
save_pretrained, plus the tiny WordPiece tokenizer of the test fixtures. Prints a table, writes
bench/out/download.json.
"""

from __future__ import annotations

import os
import platform
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import PY, best_of, save  # noqa: E402
from tests.hubserver import FakeHub, publish  # noqa: E402

TARGET = 1.1
N = int(os.environ.get("BENCH_N", "3"))
REPO = "bench/bert-50mb"


def build_model(dest: Path) -> Path:
    """A random-init BERT of ~50 MB (fp32 safetensors) with a small WordPiece vocab."""
    import torch
    from transformers import BertConfig, BertModel

    from tests.fixtures.tiny_models import _write_wordpiece

    torch.manual_seed(0)
    dest.mkdir(parents=True, exist_ok=True)
    vocab_size = _write_wordpiece(dest)
    config = BertConfig(vocab_size=vocab_size, hidden_size=512, num_hidden_layers=4, num_attention_heads=8,
                        intermediate_size=2048, max_position_embeddings=512)
    BertModel(config).save_pretrained(dest)
    return dest


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="bench-download-"))
    try:
        model = build_model(work / "model")
        size = sum(p.stat().st_size for p in model.iterdir())
        hub = FakeHub().start()
        publish(hub, REPO, model)
        env = {**os.environ, "HF_ENDPOINT": hub.url, "HF_HUB_OFFLINE": "0", "TRANSFORMERS_OFFLINE": "0",
               "HF_HOME": str(work / "home"), "HF_HUB_DISABLE_TELEMETRY": "1", "HF_HUB_DISABLE_UPDATE_CHECK": "1",
               "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
        hf = str(Path(PY).with_name("hf"))
        counter = iter(range(10_000))

        def fresh(cmd: list[str]) -> list[str]:
            cache = work / f"cache{next(counter)}"
            return [*cmd, "--cache-dir", str(cache)]

        commands = {"hf download": [hf, "download", REPO, "--quiet"],
                    "bertcli download": [PY, "-m", "bertcli", "download", REPO, "-q"]}
        runs: dict[str, list[float]] = {name: [] for name in commands}
        peaks = dict.fromkeys(commands, 0)
        for _ in range(N):  # interleaved, so that load from other processes hits both alike
            for name, cmd in commands.items():
                wall, rss, _ = best_of(1, fresh(cmd), env=env)
                runs[name].append(wall)
                peaks[name] = max(peaks[name], rss)
        results = {name: {"best_s": min(r), "runs_s": r, "peak_rss_kib": peaks[name]} for name, r in runs.items()}
        hub.stop()
        ratio = results["bertcli download"]["best_s"] / results["hf download"]["best_s"]
        print(f"download of a {size / 1e6:.1f} MB BERT from the local hub (best of {N}, fresh cache each run)")
        print(f"{'command':<18} {'best s':>8} {'peak RSS MiB':>13}")
        for name, r in results.items():
            print(f"{name:<18} {r['best_s']:>8.3f} {r['peak_rss_kib'] / 1024:>13.0f}")
        print(f"ratio bertcli/hf = {ratio:.2f}x (target <= {TARGET}x): {'OK' if ratio <= TARGET else 'MISSED'}")
        save("download", {"model_bytes": size, "n": N, "results": results, "ratio": ratio, "target": TARGET,
                          "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.python_version()}"})
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

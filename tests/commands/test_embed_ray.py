"""`bertcli embed --engine ray` from the command line: output folder, bad rows on stderr, errors, two nodes.

Every Ray runtime here binds loopback (or addresses inside network namespaces the test makes itself).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import numpy as np
import pytest

LOOPBACK = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
REPO = Path(__file__).resolve().parents[2]


def _needs_ray():
    pytest.importorskip("ray", reason="the ray extra (ray[data]) is not installed")
    pytest.importorskip("pyarrow", reason="the ray extra (pyarrow) is not installed")


def _vectors(folder: Path):
    import pyarrow.parquet as pq

    tables = [pq.read_table(p) for p in sorted(folder.glob("part-*.parquet"))]
    ids = [i for t in tables for i in t.column("id").to_pylist()]
    vecs = np.concatenate([np.asarray(t.column("vector").combine_chunks().flatten()).reshape(t.num_rows, -1)
                           for t in tables])
    return ids, vecs


def test_engine_ray_cli_equals_local_and_reports_bad_rows(run_cli, tiny_models, tmp_path):
    _needs_ray()
    good = [f"the cat number {i} sat on the mat" + " again" * (i % 7) for i in range(30)]
    lines = [g.encode() for g in good]
    lines.insert(4, b"")
    lines.insert(11, b"na\xefve bytes")
    (tmp_path / "in.txt").write_bytes(b"\n".join(lines) + b"\n")
    (tmp_path / "good.txt").write_text("\n".join(good) + "\n")
    model = tiny_models["bert_base_only"]
    ray = run_cli("embed", "-m", model, "--engine", "ray", "--workers", "2", "--file", "in.txt", "-o", "vecs",
                  "--shard-rows", "8", env=LOOPBACK, timeout=300)
    assert ray.returncode == 0, ray.stderr
    assert ray.stdout == ""
    err = ray.stderr.splitlines()
    assert "warning: 2 bad row(s) left out, by id: 4 (empty), 11 (not UTF-8 (byte 0xef at column 3)) " \
           "(all listed in manifest.json)" in err
    assert sum(line.startswith("shard 0000") and "rows/s" in line for line in err) == 4
    assert err[-1].startswith("wrote 30 × 32 float32 to vecs/ (4 shards; ")
    assert "Traceback" not in ray.stderr
    manifest = json.loads((tmp_path / "vecs" / "manifest.json").read_text())
    assert manifest["bad"] == [{"id": 4, "reason": "empty"}, {"id": 11, "reason": "not UTF-8 (byte 0xef at column 3)"}]
    assert (manifest["rows"], manifest["input_rows"], manifest["dim"], manifest["pooling"]) == (30, 32, 32, "mean")

    local = run_cli("embed", "-m", model, "--file", "good.txt", "-o", "local.npy")
    assert local.returncode == 0, local.stderr
    want = np.load(tmp_path / "local.npy")
    ids, got = _vectors(tmp_path / "vecs")
    assert ids == [i for i in range(32) if i not in (4, 11)]
    cos = (got * want).sum(1) / np.linalg.norm(got, axis=1) / np.linalg.norm(want, axis=1)
    assert cos.min() >= 0.9999


def test_engine_ray_usage_errors(run_cli, tiny_models, tmp_path):
    model = tiny_models["bert_base_only"]
    cases = [
        (["--engine", "ray", "x"], "error: --engine ray reads --file FILE, FOLDER or GLOB, not TEXT arguments"),
        (["--engine", "ray", "--file", "in.txt"], "error: --engine ray needs -o FOLDER for its Parquet shards and manifest.json"),
        (["--engine", "spark", "x"], "error: Invalid value for '--engine': 'spark' is not one of 'local', 'ray'; see 'bertcli embed --help'"),
        (["--engine", "ray", "--file", "in.txt", "-o", "v", "--similarity"], "error: --similarity is for the local engine"),
    ]
    for args, message in cases:
        proc = run_cli("embed", "-m", model, *args)
        assert (proc.returncode, proc.stderr) == (2, message + "\n")


def test_engine_ray_without_ray_names_the_extra(run_cli, tiny_models, tmp_path):
    blocker = tmp_path / "blocker"
    (blocker / "ray").mkdir(parents=True)
    (blocker / "ray" / "__init__.py").write_text("raise ImportError('No module named ray (simulated)')\n")
    (tmp_path / "in.txt").write_text("hello\n")
    pythonpath = os.pathsep.join([str(blocker), str(REPO)])
    proc = run_cli("embed", "-m", tiny_models["bert_base_only"], "--engine", "ray", "--file", "in.txt", "-o", "v",
                   env={"PYTHONPATH": pythonpath})
    assert proc.returncode == 7
    assert proc.stderr == ("error: --engine ray needs Ray Data and pyarrow, which are not installed; "
                           "pip install 'bertcli[ray]'\n")
    assert not (tmp_path / "v").exists()


def test_engine_ray_model_that_cannot_load_fails_at_once(run_cli, tmp_path):
    _needs_ray()
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text('{"model_type": "bert", "vocab_size": 10}')
    (broken / "vocab.txt").write_text("[PAD]\n[UNK]\n[CLS]\n[SEP]\nhello\n")
    (tmp_path / "in.txt").write_text("hello\n")
    proc = run_cli("embed", "-m", broken, "--engine", "ray", "--file", "in.txt", "-o", "v", env=LOOPBACK)
    assert proc.returncode == 6
    assert proc.stderr.count("\n") == 1 and "has no weights" in proc.stderr and "Traceback" not in proc.stderr


# ---------------------------------------------------------------------------------------------------------
# a real two-node cluster: two network namespaces joined by a veth pair


def _sh(*args: str, check: bool = True, **kwargs) -> subprocess.CompletedProcess:
    proc = subprocess.run(list(args), capture_output=True, text=True, timeout=120, **kwargs)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(args)} failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return proc


def _netns_unavailable() -> str | None:
    if shutil.which("ip") is None:
        return "the `ip` tool (iproute2) is not installed"
    probe = f"bcprobe{os.getpid()}"
    made = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True)
    if made.returncode != 0:
        return f"cannot make network namespaces here (`ip netns add`: {made.stderr.strip() or made.returncode})"
    subprocess.run(["ip", "netns", "del", probe], capture_output=True)
    return None


def _kill_namespace_processes(ns: str) -> None:
    """Stop the Ray processes living in OUR namespace, by pid (never `ray stop`, which would hit others)."""
    for sig in ("-TERM", "-KILL"):
        pids = _sh("ip", "netns", "pids", ns, check=False).stdout.split()
        if not pids:
            return
        subprocess.run(["kill", sig, *pids], capture_output=True)
        time.sleep(2)


def _ray_client_logs(ray_tmp: str) -> str:
    """The tail of the head's Ray Client server logs: why a ray:// join failed is written there, not to the client."""
    tails = []
    for log in sorted(Path(ray_tmp).glob("session_latest/logs/ray_client_server*")):
        lines = log.read_text(errors="replace").splitlines()[-15:]
        if lines:
            tails.append(f"--- {log.name}\n" + "\n".join(lines))
    return "\n" + "\n".join(tails) if tails else ""


@pytest.mark.skipif(os.environ.get("BERTCLI_SKIP_NETNS") == "1", reason="BERTCLI_SKIP_NETNS=1")
def test_two_node_cluster_in_network_namespaces(tiny_models, tmp_path):
    _needs_ray()
    reason = _netns_unavailable()
    if reason:
        pytest.skip(reason)
    tag = uuid.uuid4().hex[:5]
    ns_a, ns_b = f"bca{tag}", f"bcb{tag}"
    # a busy CI machine can take over the default 30 s to join through Ray Client: this test is about the three
    # addresses working, not about the join's time limit
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "PYTHONPATH": str(REPO), "BERTCLI_RAY_CONNECT_TIMEOUT": "150"}
    # ... and the same on the head's side: its Ray Client proxy waits 30 s for the per-client server it starts,
    # which gives up after 30 s without a client. Only the head started in this test's namespace sees these.
    head_env = {**env, "RAY_CLIENT_SERVER_CHECK_CHANNEL_TIMEOUT_S": "60", "TIMEOUT_FOR_SPECIFIC_SERVER_S": "60"}
    env.pop("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", None)  # set for loopback runtimes; it forbids `ray start` clusters
    ray_bin = str(Path(sys.executable).with_name("ray"))
    head, port = "10.231.0.1", "6399"
    import tempfile

    ray_tmp = tempfile.mkdtemp(prefix="bcray", dir="/tmp")  # short: Ray's unix socket paths must stay < 108 bytes
    try:
        _sh("ip", "netns", "add", ns_a)
        _sh("ip", "netns", "add", ns_b)
        _sh("ip", "link", "add", f"{ns_a}v", "type", "veth", "peer", "name", f"{ns_b}v")
        for ns, addr in ((ns_a, head), (ns_b, "10.231.0.2")):
            _sh("ip", "link", "set", f"{ns}v", "netns", ns)
            _sh("ip", "-n", ns, "addr", "add", f"{addr}/24", "dev", f"{ns}v")
            _sh("ip", "-n", ns, "link", "set", f"{ns}v", "up")
            _sh("ip", "-n", ns, "link", "set", "lo", "up")
        _sh("ip", "netns", "exec", ns_a, ray_bin, "start", "--head", f"--node-ip-address={head}", f"--port={port}",
            "--num-cpus=1", "--include-dashboard=false", "--disable-usage-stats",
            f"--temp-dir={ray_tmp}", env=head_env)
        _sh("ip", "netns", "exec", ns_b, ray_bin, "start", f"--address={head}:{port}", "--node-ip-address=10.231.0.2",
            "--num-cpus=1", "--disable-usage-stats", env=env)
        texts = [f"line {i} of the two node test" for i in range(40)]
        (tmp_path / "in.txt").write_text("\n".join(texts) + "\n")
        model = tiny_models["bert_base_only"]
        from bertcli.embed import load_embedder
        from bertcli.resolve import resolve_model

        want = load_embedder(resolve_model(str(model))).embed_array(texts)
        # The three ways to name a cluster: its GCS address; `auto` (found through the address file `ray start`
        # wrote in its temp dir, which RAY_TMPDIR points at); and Ray Client (`ray://`, port 10001 by default).
        for label, address, extra in (("gcs", f"{head}:{port}", {}), ("auto", "auto", {"RAY_TMPDIR": ray_tmp}),
                                      ("client", f"ray://{head}:10001", {})):
            cmd = ["ip", "netns", "exec", ns_a, sys.executable, "-m", "bertcli", "embed", "-m", str(model), "--engine",
                   "ray", "--address", address, "--workers", "2", "--file", "in.txt", "-o", f"vecs-{label}",
                   "--shard-rows", "5"]
            proc = subprocess.run(cmd, capture_output=True, text=True, env={**env, **extra}, cwd=tmp_path, timeout=300)
            if proc.returncode == 8 and label == "client":
                # Ray's own client server fails to start a session now and then (1 run in 11 here, and once in
                # CI: "Initialization failure from server"); bertcli reports it as it should (exit 8, the server's
                # cause). What this test checks is that the address works: the join is tried once more.
                proc = subprocess.run(cmd, capture_output=True, text=True, env={**env, **extra}, cwd=tmp_path,
                                      timeout=300)
            assert proc.returncode == 0, f"--address {address}: {proc.stderr}{_ray_client_logs(ray_tmp)}"
            ids, got = _vectors(tmp_path / f"vecs-{label}")
            assert ids == list(range(40)), address
            cos = (got * want).sum(1) / np.linalg.norm(got, axis=1) / np.linalg.norm(want, axis=1)
            assert cos.min() >= 0.9999, address
    finally:
        for ns in (ns_b, ns_a):
            _kill_namespace_processes(ns)
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        shutil.rmtree(ray_tmp, ignore_errors=True)

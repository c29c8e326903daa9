"""Issue 13 (hardening) in the cache, hub and Ray areas: each case asserts the exit code, the one-line message
and that nothing was lost or replaced.

Cache folders are laid out by hand (the hub cache layout: blobs/, refs/, snapshots/ of relative links), so no
server or download is needed; Ray cases stop before a runtime starts wherever the check allows it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import pytest

COMMIT = "0123456789abcdef0123456789abcdef01234567"


def cache_repo(hub: Path, repo_id: str, files: dict[str, bytes], *, commit: str = COMMIT, ref: str = "main") -> Path:
    """A cached model repo as huggingface_hub writes it: blobs named by their git sha1, relative snapshot links."""
    folder = hub / ("models--" + repo_id.replace("/", "--"))
    (folder / "refs").mkdir(parents=True, exist_ok=True)
    (folder / "refs" / ref).parent.mkdir(parents=True, exist_ok=True)
    (folder / "refs" / ref).write_text(commit)
    for name, data in files.items():
        etag = hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()
        (folder / "blobs").mkdir(exist_ok=True)
        (folder / "blobs" / etag).write_bytes(data)
        link = folder / "snapshots" / commit / name
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(Path("../../blobs") / etag)
    return folder


BERT_FILES = {"config.json": b'{"model_type": "bert", "hidden_size": 8}', "vocab.txt": b"[PAD]\n[UNK]\nhello\n"}


def _intact(folder: Path) -> bool:
    """Every snapshot link of the repo still resolves to its blob, and its ref is there."""
    links = list((folder / "snapshots").rglob("*"))
    return (folder / "refs" / "main").is_file() and bool(links) and all(p.resolve().is_file() for p in links
                                                                          if p.is_symlink())


# ---------------------------------------------------------------------------------------------------------
# item 2: `cache rm` removes only the named repo, whatever the order huggingface_hub lists repos in


@pytest.mark.parametrize("first", ["named", "other"])
def test_rm_plan_touches_only_the_named_repo_whatever_the_scan_order(first, tmp_path, monkeypatch):
    from bertcli import cache

    hub = tmp_path / "hub"
    named = cache_repo(hub, "org/model", BERT_FILES)
    other = cache_repo(hub, "mirror/model", BERT_FILES)  # the same commit hash
    real_scan = cache._scan

    def ordered_scan(cache_dir=None):  # the scan's repos in a fixed order instead of a set's
        root, info = real_scan(cache_dir)
        repos = sorted(info.repos, key=lambda r: (r.repo_id == "org/model") == (first == "other"))
        assert [r.repo_id for r in repos][0] == ("org/model" if first == "named" else "mirror/model")
        return root, dataclasses.replace(info, repos=tuple(repos))

    monkeypatch.setattr(cache, "_scan", ordered_scan)
    plan = cache.plan_removal("org/model", cache_dir=hub)
    assert plan.repo_id == "org/model" and plan.commits == [COMMIT] and plan.whole_repo
    assert plan.paths == [named]
    cache.remove(plan)
    assert not named.exists() and _intact(other)


def test_rm_two_repos_one_commit(run_cli, tmp_path):
    hub = tmp_path / "hub"
    legacy = cache_repo(hub, "bert-base-uncased", BERT_FILES)
    current = cache_repo(hub, "google-bert/bert-base-uncased", BERT_FILES)
    mirror = cache_repo(hub, "mirror/bert", BERT_FILES)
    listed = json.loads(run_cli("--cache-dir", hub, "cache", "ls", "-f", "json").stdout)
    assert sorted(r["repo"] for r in listed) == ["bert-base-uncased", "google-bert/bert-base-uncased", "mirror/bert"]

    # the legacy id as `cache ls` shows it names its own folder, not the current id's
    gone = run_cli("--cache-dir", hub, "cache", "rm", "bert-base-uncased", "-y", "-f", "json")
    assert gone.returncode == 0, gone.stderr
    assert gone.stderr.startswith("removed bert-base-uncased: freed ") and gone.stderr.count("\n") == 1
    assert json.loads(gone.stdout)["repo"] == "bert-base-uncased"
    assert not legacy.exists() and _intact(current) and _intact(mirror)

    gone = run_cli("--cache-dir", hub, "cache", "rm", "mirror/bert", "-y")
    assert gone.returncode == 0 and gone.stderr.startswith("removed mirror/bert: freed ")
    assert not mirror.exists() and _intact(current)
    ok = run_cli("--cache-dir", hub, "cache", "verify", "google-bert/bert-base-uncased")
    assert ok.returncode == 0 and ok.stderr == "2 files verified\n"

    # once the legacy folder is gone, the legacy id means the current repo again (as everywhere in bertcli)
    gone = run_cli("--cache-dir", hub, "cache", "rm", "bert-base-uncased", "-y")
    assert gone.returncode == 0 and gone.stderr.startswith("removed google-bert/bert-base-uncased: freed ")
    assert not current.exists()


def test_rm_one_revision_shared_with_another_repo(run_cli, tmp_path):
    """@REV of a repo with two revisions: only that repo's snapshot and ref go, the twin keeps the same commit."""
    hub = tmp_path / "hub"
    two = cache_repo(hub, "org/two", BERT_FILES)
    cache_repo(hub, "org/two", {"config.json": b'{"model_type": "bert", "hidden_size": 16}'},
               commit="f" * 40, ref="dev")
    twin = cache_repo(hub, "org/twin", BERT_FILES)
    gone = run_cli("--cache-dir", hub, "cache", "rm", f"org/two@{COMMIT[:10]}", "-y", "-f", "json")
    assert gone.returncode == 0, gone.stderr
    assert json.loads(gone.stdout)["commits"] == [COMMIT]
    assert not (two / "snapshots" / COMMIT).exists() and (two / "snapshots" / ("f" * 40)).is_dir()
    assert _intact(twin)


# ---------------------------------------------------------------------------------------------------------
# items 9 and 11: what `cache verify` says of a folder, and `cache ls` of a cache folder that is not there


def test_verify_of_a_local_folder_says_what_verify_checks(run_cli, tmp_path):
    hub = tmp_path / "hub"
    cache_repo(hub, "org/model", BERT_FILES)
    (tmp_path / "folder").mkdir()
    proc = run_cli("--cache-dir", hub, "cache", "verify", "./folder")
    assert (proc.returncode, proc.stdout) == (2, "")
    assert proc.stderr == ("error: cache verify checks cached hub models (their files against the hashes the hub "
                           "gave): ./folder is a local folder, not a hub repo id; for a model folder, `bertcli "
                           "inspect ./folder --tensors` reads its weights' headers and sizes\n")
    # checked before the cache is read: the same with a cache that does not exist
    assert run_cli("--cache-dir", tmp_path / "nope", "cache", "verify", "./folder").stderr == proc.stderr


def test_ls_of_a_cache_folder_that_does_not_exist(run_cli, tmp_path):
    missing = tmp_path / "nonexistent"
    for args in (["cache", "ls"], ["cache", "ls", "--all", "-f", "json"], ["cache", "rm", "org/x", "-y"],
                 ["cache", "verify", "org/x"]):
        proc = run_cli("--cache-dir", missing, *args)
        assert (proc.returncode, proc.stdout) == (3, ""), args
        assert proc.stderr == (f"error: the hub cache folder {missing} does not exist; --cache-dir, HF_HUB_CACHE or "
                               "HF_HOME name the cache; `bertcli download MODEL` fills it\n"), args
    assert not missing.exists()
    (tmp_path / "afile").write_text("x")
    proc = run_cli("--cache-dir", tmp_path / "afile", "cache", "ls")
    assert proc.returncode == 3 and proc.stderr.startswith(f"error: the hub cache folder {tmp_path / 'afile'} is "
                                                           "not a folder;")


# ---------------------------------------------------------------------------------------------------------
# items 9 and 10: Ray edges (all fail before a Ray runtime starts, except the one that joins a silent port)

LOOPBACK = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}


def _needs_ray():
    pytest.importorskip("ray", reason="the ray extra (ray[data]) is not installed")
    pytest.importorskip("pyarrow", reason="the ray extra (pyarrow) is not installed")


def _one_line(proc, code: int, message: str) -> None:
    assert (proc.returncode, proc.stdout) == (code, ""), proc.stderr
    assert proc.stderr == message + "\n"


def test_ray_refusals_before_any_work(run_cli, tiny_models, tmp_path):
    _needs_ray()
    model = tiny_models["bert_base_only"]
    (tmp_path / "in.txt").write_text("hello\nworld\n")
    (tmp_path / "in.jsonl").write_text('{"body": "hello", "doc": "a"}\n{"body": "world", "doc": "b"}\n')
    ray = ("embed", "-m", model, "--engine", "ray")
    _one_line(run_cli(*ray, "--file", "in.txt", "-o", "v", "--id-column", "doc", env=LOOPBACK), 2,
              "error: --id-column needs .jsonl or .parquet input: in.txt is a text file (one text a "
              "line, no fields); leave out --id-column: text rows are numbered from 0")
    _one_line(run_cli(*ray, "--file", "in.txt", "-o", "v", "--text-column", "body", env=LOOPBACK), 2,
              "error: --text-column names a field of .jsonl or .parquet input: in.txt is a text file (one text a "
              "line, no fields); leave out --text-column")
    _one_line(run_cli(*ray, "--file", "in.jsonl", "-o", "v", "--text-column", "nope", env=LOOPBACK), 5,
              "error: in.jsonl has no field 'nope' in its first 2 record(s) (fields: 'body', 'doc'); "
              "name the text and id fields with --text-column and --id-column")
    _one_line(run_cli(*ray, "--file", "in.jsonl", "-o", "v", "--text-column", "body", "--id-column", "id",
                      env=LOOPBACK), 5,
              "error: in.jsonl has no field 'id' in its first 2 record(s) (fields: 'body', 'doc'); "
              "name the text and id fields with --text-column and --id-column")
    _one_line(run_cli(*ray, "--file", "in.txt", "-o", "v", "-f", "npy", env=LOOPBACK), 2,
              "error: --engine ray writes Parquet shards and manifest.json into the -o folder: --format npy is for "
              "the local engine (read the shards with pyarrow or pandas)")
    _one_line(run_cli(*ray, "--file", "in.txt", "-o", "v.npy", env=LOOPBACK), 2,
              "error: --engine ray writes a folder of Parquet shards: -o v.npy names a .npy file; give -o a folder "
              "name, or drop --engine ray to write one file")
    _one_line(run_cli(*ray, "--file", "in.txt", "-o", "v", "--address", "127.0.0.1:xx", env=LOOPBACK), 2,
              "error: --address '127.0.0.1:xx' is not HOST:PORT, ray://HOST:PORT or auto")
    assert not (tmp_path / "v").exists() and not (tmp_path / "v.npy").exists()


def test_ray_address_nobody_answers_fails_fast_with_exit_8(run_cli, tiny_models, tmp_path):
    _needs_ray()
    import socket
    import time

    from tests.hubserver import free_port

    (tmp_path / "in.txt").write_text("hello\n")
    ray = ("embed", "-m", tiny_models["bert_base_only"], "--engine", "ray", "--file", "in.txt", "-o", "v")
    port = free_port()
    started = time.monotonic()
    _one_line(run_cli(*ray, "--address", f"127.0.0.1:{port}", env=LOOPBACK), 8,
              f"error: cannot reach the Ray cluster at 127.0.0.1:{port}: connection refused; check the address (the "
              "head's `ray start --head` prints it) and that the port is open from here")
    assert time.monotonic() - started < 60  # it hung for minutes before

    # a port that accepts connections but is no Ray head: joining gives up after the timeout (30 s; 3 s here)
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        address = f"127.0.0.1:{silent.getsockname()[1]}"
        proc = run_cli(*ray, "--address", address, env={**LOOPBACK, "BERTCLI_RAY_CONNECT_TIMEOUT": "3"}, timeout=90)
    assert (proc.returncode, proc.stdout) == (8, "")
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert errors == [f"error: joining the Ray cluster at {address} took more than 3s; is a Ray head listening there "
                      "(its GCS port, or ray://HOST:10001 for Ray Client)?"]
    assert "Traceback" not in proc.stderr


def test_ray_output_of_child_processes_goes_to_stderr(tmp_path):
    """The Ray run happens with file descriptor 1 on stderr: whatever Ray's processes print, stdout stays data."""
    import subprocess
    import sys

    from tests.conftest import REPO_ROOT

    code = ("import os, sys\nfrom bertcli.commands.embed import _stdout_to_stderr\nprint('data before', flush=True)\n"
            "with _stdout_to_stderr():\n    print('python noise', flush=True)\n    os.system('echo native noise')\n"
            "print('data after')\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                          env={"PYTHONPATH": str(REPO_ROOT), "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "data before\ndata after\n"
    assert proc.stderr == "python noise\nnative noise\n"


def test_starting_ray_keeps_bertclis_sigterm_handler():
    """ray.init puts in its own SIGTERM handler (exit 15); bertcli's (temp files removed, exit 143) must stay."""
    _needs_ray()
    import signal

    import ray

    from bertcli.ray_engine import start_ray

    def ours(signum, frame):  # pragma: no cover - never called
        raise KeyboardInterrupt

    before = signal.signal(signal.SIGTERM, ours)
    try:
        assert start_ray(None, cpus=1) is True
        assert signal.getsignal(signal.SIGTERM) is ours
    finally:
        ray.shutdown()
        signal.signal(signal.SIGTERM, before)

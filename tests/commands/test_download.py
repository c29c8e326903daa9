"""`bertcli download` end to end in subprocesses, against the local fake hub (tests/hubserver.py)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

from bertcli.hub import format_bytes
from tests.conftest import REPO_ROOT
from tests.hubserver import fake_hub, free_port, publish  # noqa: F401 - fixture

REPO = "org/tiny-bert"
FILES = ["config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "vocab.txt"]


def _env(fake, tmp_path, **extra):
    return fake.env(tmp_path / "hub", COLUMNS="250", **extra)


def test_download_prints_path_json_record_and_refuses_pickle(run_cli, fake_hub, tiny_bert_fast, tmp_path):
    commit = publish(fake_hub, REPO, tiny_bert_fast, extra={"pytorch_model.bin": b"pickle"})
    publish(fake_hub, "org/bin-only", tiny_bert_fast, extra={"pytorch_model.bin": b"pickle"}, drop=("model.safetensors",))
    env = _env(fake_hub, tmp_path)
    proc = run_cli("download", REPO, "-q", env=env)
    snapshot = tmp_path / "hub" / "models--org--tiny-bert" / "snapshots" / commit
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, f"{snapshot}\n", "")
    assert sorted(os.listdir(snapshot)) == FILES
    rec = json.loads(run_cli("download", REPO, "--format", "json", env=env).stdout)
    size = sum((tiny_bert_fast / f).stat().st_size for f in FILES)
    assert rec == {"repo": REPO, "revision": "main", "commit": commit, "path": str(snapshot), "files": FILES,
                   "bytes": size, "downloaded_bytes": 0}
    refused = run_cli("download", "org/bin-only", env=env)
    assert refused.returncode == 2 and refused.stdout == ""
    assert refused.stderr.startswith("error: org/bin-only has no safetensors weights, only pickle ones "
                                     "(pytorch_model.bin); loading a pickle can run arbitrary code")
    assert refused.stderr.rstrip().endswith("pass --allow-pickle if you trust this repo")
    allowed = run_cli("download", "org/bin-only", "--allow-pickle", "pytorch_model.bin", "config.json", env=env)
    assert allowed.returncode == 0
    assert sorted(os.listdir(allowed.stdout.strip())) == ["config.json", "pytorch_model.bin"]


def test_dry_run_progress_lines_and_path_tricks(run_cli, fake_hub, tiny_bert_fast, tmp_path):
    publish(fake_hub, REPO, tiny_bert_fast)
    env = _env(fake_hub, tmp_path)
    run_cli("download", REPO, "config.json", "-q", env=env)
    plan = run_cli("download", REPO, "--dry-run", "-f", "jsonl", env=env)
    assert [json.loads(line) for line in plan.stdout.splitlines()] == [
        {"file": f, "size": (tiny_bert_fast / f).stat().st_size, "cached": f == "config.json",
         "will_download": f != "config.json"} for f in FILES]
    assert "would fetch 4 file(s)" in plan.stderr and "1 already cached" in plan.stderr
    full = run_cli("download", REPO, env=env)
    assert full.returncode == 0
    lines = full.stderr.splitlines()
    to_fetch = sum((tiny_bert_fast / f).stat().st_size for f in FILES[1:])
    assert lines[0] == f"downloading org/tiny-bert: 5 files, {format_bytes(to_fetch)}"
    assert lines[1].startswith("fetched ")
    for trick in ("../etc", "/etc/passwd", "org/../../x", "org/name/../../etc"):
        bad = run_cli("download", trick, env=env)
        assert bad.returncode == 3, trick
        assert "is neither an alias, an existing path, nor a valid hub repo id" in bad.stderr
    bad_file = run_cli("download", REPO, "../../secret", env=env)
    assert bad_file.returncode == 2 and "not a file path inside a repo" in bad_file.stderr


def test_errors_unreachable_and_offline(run_cli, fake_hub, tiny_bert_fast, tmp_path):
    publish(fake_hub, REPO, tiny_bert_fast, gated=True, tokens=("hf_good",))
    env = _env(fake_hub, tmp_path)
    missing = run_cli("download", "org/nope", env=env)
    assert (missing.returncode, missing.stderr) == (
        3, "error: no such model on the hub: org/nope; check the id, or pass a token if private\n")
    gated = run_cli("download", REPO, env=env)
    assert gated.returncode == 8
    assert gated.stderr.splitlines()[-1] == ("error: org/tiny-bert is gated and no token was sent (401): accept its "
                                             "terms on the hub page, then pass a token; --token or HF_TOKEN")
    ok = run_cli("download", REPO, "-q", env=_env(fake_hub, tmp_path, HF_TOKEN="hf_good"))
    assert ok.returncode == 0
    down = run_cli("download", REPO, env=_env(fake_hub, tmp_path / "other", HF_ENDPOINT=f"http://127.0.0.1:{free_port()}"))
    assert down.returncode == 8 and "Traceback" not in down.stderr
    assert down.stderr.startswith("error: cannot reach the hub for org/tiny-bert")
    assert "use --offline if the model is cached" in down.stderr
    fake_hub.clear_log()
    cached = run_cli("download", REPO, "--offline", env=env)
    assert cached.returncode == 0 and cached.stdout == ok.stdout and fake_hub.requests == []
    absent = run_cli("download", "org/other", "--offline", env=env)
    assert absent.returncode == 4 and fake_hub.requests == []
    # what helps is the network or a folder you have, not "run bertcli download org/other" (what just failed)
    assert absent.stderr == (f"error: org/other is not (completely) downloaded in {tmp_path / 'hub'} and offline "
                             "mode is on (--offline); downloading needs the hub: run it again with the network and "
                             "without --offline, or point --local-dir (or a command's -m) at a folder that already "
                             "holds the model\n")
    have = tmp_path / "have"
    have.mkdir()
    (have / "config.json").write_text('{"model_type": "bert"}')
    local = run_cli("download", "org/other", "--offline", "--local-dir", have, env=env)
    assert local.returncode == 0 and local.stdout == f"{have}\n" and fake_hub.requests == []


def test_four_concurrent_downloads_make_one_snapshot(fake_hub, tiny_bert_fast, tmp_path):
    commit = publish(fake_hub, REPO, tiny_bert_fast)
    fake_hub.throttle = 400_000  # ~0.4 s for the weights: the four processes overlap
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT), **_env(fake_hub, tmp_path))
    procs = [subprocess.Popen([sys.executable, "-m", "bertcli", "download", REPO, "-q"], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(4)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0, 0], outs
    snapshot = tmp_path / "hub" / "models--org--tiny-bert" / "snapshots" / commit
    assert {out for out, _ in outs} == {f"{snapshot}\n"}
    for name in FILES:
        assert (snapshot / name).read_bytes() == (tiny_bert_fast / name).read_bytes()
    blobs = tmp_path / "hub" / "models--org--tiny-bert" / "blobs"
    assert sorted(p.name for p in blobs.iterdir()) == sorted(fake_hub.file(REPO, f).etag for f in FILES)
    assert sorted(os.listdir(tmp_path / "hub" / "models--org--tiny-bert" / "snapshots")) == [commit]


def _hold_lock(path):
    code = ("import sys, time, filelock; lock = filelock.FileLock(sys.argv[1]); lock.acquire(); "
            "print('locked', flush=True); time.sleep(120)")
    proc = subprocess.Popen([sys.executable, "-c", code, str(path)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline() == "locked\n"
    return proc


def test_lock_wait_timeout_and_stale_lock_of_a_killed_process(run_cli, fake_hub, tiny_bert_fast, tmp_path):
    publish(fake_hub, REPO, tiny_bert_fast)
    env = _env(fake_hub, tmp_path)
    lock = tmp_path / "hub" / ".locks" / "models--org--tiny-bert" / f"{fake_hub.file(REPO, 'config.json').etag}.lock"
    lock.parent.mkdir(parents=True)
    holder = _hold_lock(lock)
    try:
        started = time.monotonic()
        waited = run_cli("download", REPO, "config.json", "--lock-timeout", "2", env=env)
        assert time.monotonic() - started < 30
    finally:
        holder.kill()  # SIGKILL: the lock file stays behind, as after a crash
        holder.wait()
    assert waited.returncode == 8 and waited.stdout == ""
    assert f"waiting for another process downloading org/tiny-bert (lock {lock}); waiting up to 2s" in waited.stderr
    assert f"error: another process kept the download lock {lock} for 2s (--lock-timeout 2)" in waited.stderr
    assert lock.exists()  # stale lock file of the killed process
    started = time.monotonic()
    after = run_cli("download", REPO, "config.json", "--lock-timeout", "5", env=env)
    assert after.returncode == 0 and "waiting" not in after.stderr and time.monotonic() - started < 20


def test_killed_mid_download_then_rerun_completes(fake_hub, tiny_bert_fast, tmp_path, run_cli):
    commit = publish(fake_hub, REPO, tiny_bert_fast)
    fake_hub.throttle = 50_000  # the weights take ~3.5 s
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT), **_env(fake_hub, tmp_path))
    proc = subprocess.Popen([sys.executable, "-m", "bertcli", "download", REPO, "-q"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while not fake_hub.log("GET", "/cdn/") and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    snapshot = tmp_path / "hub" / "models--org--tiny-bert" / "snapshots" / commit
    assert not (snapshot / "model.safetensors").exists()  # never a partial file in the snapshot
    fake_hub.throttle = None
    again = run_cli("download", REPO, "-q", env=_env(fake_hub, tmp_path))
    assert again.returncode == 0 and again.stdout == f"{snapshot}\n"
    assert (snapshot / "model.safetensors").read_bytes() == (tiny_bert_fast / "model.safetensors").read_bytes()


def test_tokenize_and_config_through_the_hub(run_cli, fake_hub, tiny_bert_fast, tmp_path):
    publish(fake_hub, REPO, tiny_bert_fast)
    env = _env(fake_hub, tmp_path)
    text = "It was a great day"
    local = run_cli("tokenize", "-m", str(tiny_bert_fast), text, "-f", "json", env=env)
    remote = run_cli("tokenize", "-m", REPO, text, "-f", "json", env=env)
    assert remote.returncode == 0 and json.loads(remote.stdout) == json.loads(local.stdout)
    assert remote.stderr.splitlines()[0] == f"{REPO} is not cached: downloading it into {tmp_path / 'hub'}"
    assert remote.stderr.splitlines()[1].startswith("downloading org/tiny-bert: 5 files, ")
    fake_hub.clear_log()
    cfg = json.loads(run_cli("config", "-m", REPO, "-f", "json", "--offline", env=env).stdout)
    assert cfg["model"] == REPO and cfg["family"] == "BERT" and cfg["config"]["hidden_size"] == 32
    assert cfg["commit"] == fake_hub.repos[REPO].refs["main"] and fake_hub.requests == []

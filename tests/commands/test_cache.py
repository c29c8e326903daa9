"""`bertcli cache ls/rm/verify` in subprocesses, on a cache filled from the local fake hub."""

from __future__ import annotations

import json

from tests.hubserver import fake_hub, publish  # noqa: F401 - fixture

FILES = ["config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "vocab.txt"]


def _fill(run_cli, fake, tmp_path, tiny_bert_fast, tiny_albert):
    bert = publish(fake, "org/tiny-bert", tiny_bert_fast)
    albert = publish(fake, "org/tiny-albert", tiny_albert)
    fake.add_repo("org/not-bert", {"config.json": b'{"model_type": "gpt2"}'})
    env = fake.env(tmp_path / "hub", COLUMNS="250")
    for repo in ("org/tiny-bert", "org/tiny-albert", "org/not-bert"):
        assert run_cli("download", repo, "-q", env=env).returncode == 0
    return env, bert, albert


def test_ls_rm(run_cli, fake_hub, tiny_bert_fast, tiny_albert, tmp_path):
    env, bert, albert = _fill(run_cli, fake_hub, tmp_path, tiny_bert_fast, tiny_albert)
    records = json.loads(run_cli("cache", "ls", "-f", "json", env=env).stdout)
    assert [(r["repo"], r["family"]) for r in records] == [("org/tiny-albert", "ALBERT"), ("org/tiny-bert", "BERT")]
    rev = records[1]["revisions"][0]
    assert (rev["commit"], rev["refs"], rev["files"], rev["weights"]) == (bert, ["main"], FILES, "complete")
    assert rev["size"] == records[1]["size"] == sum((tiny_bert_fast / f).stat().st_size for f in FILES)
    everything = json.loads(run_cli("cache", "ls", "--all", "-f", "json", env=env).stdout)
    assert [r["repo"] for r in everything] == ["org/not-bert", "org/tiny-albert", "org/tiny-bert"]
    table = run_cli("cache", "ls", "-f", "table", env=env).stdout
    assert "org/tiny-bert" in table and "complete" in table and "(main)" in table

    dry = json.loads(run_cli("cache", "rm", "org/tiny-bert", "--dry-run",
                             "-f", "json", env=env).stdout)
    assert dry["removed"] is False and dry["freed_bytes"] == rev["size"] and dry["whole_repo"] is True
    # stdin is not a terminal here: no question is asked
    gone = run_cli("cache", "rm", "org/tiny-bert", "-f", "json", env=env)
    assert gone.returncode == 0 and json.loads(gone.stdout)["freed_bytes"] == rev["size"]
    assert gone.stderr == f"removed org/tiny-bert: freed {rev['size'] / 1000:.1f} KB\n"
    assert not (tmp_path / "hub" / "models--org--tiny-bert").exists()
    assert (tmp_path / "hub" / "models--org--tiny-albert").is_dir() and (tmp_path / "hub" / "models--org--not-bert").is_dir()
    again = run_cli("cache", "rm", "org/tiny-bert", "-y", env=env)
    assert again.returncode == 3 and "org/tiny-bert is not in the cache" in again.stderr
    outside = tmp_path / "keep.txt"
    outside.write_text("precious")
    for trick in ("../keep.txt", "org/../../keep.txt", "../hub"):  # no such path: not a repo id either
        bad = run_cli("cache", "rm", trick, "-y", env=env)
        assert bad.returncode == 3 and "not a valid hub repo id" in bad.stderr.replace("nor a valid", "not a valid"), trick
    for trick, kind in ((str(outside), "file"), ("..", "folder"), (".", "folder")):  # paths that exist: refused
        bad = run_cli("cache", "rm", trick, "-y", env=env)
        assert (bad.returncode, bad.stderr) == (2, f"error: cache rm removes cached hub models only: {trick} is a "
                                                   f"local {kind}, not a hub repo id; it never deletes anything "
                                                   "outside the hub cache\n"), trick
    assert outside.read_text() == "precious" and (tmp_path / "hub" / "models--org--tiny-albert").is_dir()
    one_rev = run_cli("cache", "rm", f"org/tiny-albert@{albert[:10]}", "-y", "-f", "json", env=env)
    assert one_rev.returncode == 0 and json.loads(one_rev.stdout)["commits"] == [albert]


def test_verify_catches_truncated_blob(run_cli, fake_hub, tiny_bert_fast, tiny_albert, tmp_path):
    env, bert, _ = _fill(run_cli, fake_hub, tmp_path, tiny_bert_fast, tiny_albert)
    ok = run_cli("cache", "verify", "org/tiny-bert", "-f", "jsonl", env=env)
    assert ok.returncode == 0 and ok.stderr == "5 files verified\n"
    assert [(r["file"], r["status"], r["check"]) for r in map(json.loads, ok.stdout.splitlines())] == [
        ("config.json", "ok", "git-sha1"), ("model.safetensors", "ok", "sha256"), ("tokenizer.json", "ok", "git-sha1"),
        ("tokenizer_config.json", "ok", "git-sha1"), ("vocab.txt", "ok", "git-sha1")]
    weights = tmp_path / "hub" / "models--org--tiny-bert" / "snapshots" / bert / "model.safetensors"
    blob = weights.resolve()
    blob.write_bytes(blob.read_bytes()[:50_000])
    bad = run_cli("cache", "verify", "org/tiny-bert", "-f", "jsonl", env=env)
    assert bad.returncode == 6
    rows = {r["file"]: r for r in map(json.loads, bad.stdout.splitlines())}
    assert rows["model.safetensors"]["status"] == "corrupt"
    assert rows["model.safetensors"]["detail"] == "truncated: 50000 bytes, the hub lists 173472"
    assert bad.stderr == ("error: 1 of 5 cached files failed verification: model.safetensors (truncated: 50000 bytes, "
                          "the hub lists 173472); run `bertcli cache rm org/tiny-bert -y` and download it again\n")
    ls = json.loads(run_cli("cache", "ls", "-f", "json", env=env).stdout)
    assert [r["revisions"][0]["weights"] for r in ls if r["repo"] == "org/tiny-bert"] == ["incomplete"]


def _rm_on_terminal(repo: str, answer: bytes, env: dict[str, str]) -> tuple[int, str]:
    """`bertcli cache rm REPO` with a pseudo-terminal as stdin, answering the question with ``answer``."""
    import os
    import pty
    import subprocess
    import sys

    from tests.conftest import REPO_ROOT

    leader, follower = pty.openpty()
    full_env = {**os.environ, **env, "PYTHONPATH": str(REPO_ROOT)}
    try:
        proc = subprocess.Popen([sys.executable, "-m", "bertcli", "cache", "rm", repo], stdin=follower,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=full_env)
        os.write(leader, answer)
        _, err = proc.communicate(timeout=60)
    finally:
        os.close(leader)
        os.close(follower)
    return proc.returncode, err.decode()


def test_rm_asks_on_a_terminal(run_cli, fake_hub, tiny_bert_fast, tiny_albert, tmp_path):
    env, _, _ = _fill(run_cli, fake_hub, tmp_path, tiny_bert_fast, tiny_albert)
    folder = tmp_path / "hub" / "models--org--tiny-bert"
    size = json.loads(run_cli("cache", "rm", "org/tiny-bert", "--dry-run", "-f", "json", env=env).stdout)["freed_bytes"]
    question = f"Remove org/tiny-bert ({size / 1000:.1f} KB) from the cache? [y/N]:"  # click writes the last space with input()

    code, err = _rm_on_terminal("org/tiny-bert", b"n\n", env)
    assert code == 2 and err == question + "error: nothing removed (not confirmed)\n"
    assert folder.is_dir()
    code, err = _rm_on_terminal("org/tiny-bert", b"\n", env)  # the default is no
    assert code == 2 and folder.is_dir()

    code, err = _rm_on_terminal("org/tiny-bert", b"y\n", env)
    assert code == 0 and err == question + f"removed org/tiny-bert: freed {size / 1000:.1f} KB\n"
    assert not folder.exists() and (tmp_path / "hub" / "models--org--tiny-albert").is_dir()


def _cache_repo(hub, repo_id, model_type="bert"):
    from tests.test_hardening_cache_ray import cache_repo

    return cache_repo(hub, repo_id, {"config.json": b'{"model_type": "%s"}' % model_type.encode()})


def test_ls_empty_cache_says_what_is_true(run_cli, tmp_path):
    hub = tmp_path / "hub"
    hub.mkdir()
    for args in (["cache", "ls"], ["cache", "ls", "--all"]):
        proc = run_cli("--cache-dir", hub, *args, "-f", "json")
        assert (proc.returncode, proc.stdout, proc.stderr) == (0, "[]\n", f"the hub cache {hub} holds no models\n")
    _cache_repo(hub, "org/gpt", "gpt2")
    proc = run_cli("--cache-dir", hub, "cache", "ls", "-f", "table", env={"COLUMNS": "80"})
    assert proc.returncode == 0 and "try --all" not in proc.stdout + proc.stderr
    assert proc.stderr == f"the hub cache {hub} holds no BERT-family models (--all lists the other repos)\n"
    proc = run_cli("--cache-dir", hub, "cache", "ls", "--all", "-f", "table", env={"COLUMNS": "80"})
    assert proc.returncode == 0 and proc.stderr == "" and "org/gpt" in proc.stdout


def test_ls_table_never_cuts_a_repo_id(run_cli, tmp_path):
    hub = tmp_path / "hub"
    ids = ["google-bert/bert-base-multilingual-uncased", "nlptown/bert-base-multilingual-uncased-sentiment",
           "org/tiny"]
    for repo_id in ids:
        _cache_repo(hub, repo_id)
    for columns in ("80", "110", "250"):
        proc = run_cli("--cache-dir", hub, "cache", "ls", "-f", "table", env={"COLUMNS": columns})
        assert proc.returncode == 0, proc.stderr
        lines = proc.stdout.splitlines()
        assert max(len(line) for line in lines) <= int(columns), columns
        assert "…" not in proc.stdout, columns
        for repo_id in ids:
            assert any(line.startswith(f" {repo_id} ") for line in lines), (columns, repo_id)
        assert proc.stdout.count("0123456789ab") == 3, columns  # every short commit whole
    assert "last used" in proc.stdout and "family" in proc.stdout  # all columns when there is room

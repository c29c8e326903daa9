"""bertcli.hub and bertcli.cache in-process, against the local fake hub (tests/hubserver.py)."""

from __future__ import annotations

import hashlib
import json
import os
import struct

import pytest

from bertcli import cache, hub
from bertcli.errors import HubError, ModelNotFoundError, OfflineError, UsageError
from tests.hubserver import fake_hub, free_port, publish  # noqa: F401 - fixture

REPO = "org/tiny-bert"


@pytest.fixture
def online(monkeypatch):
    """huggingface_hub read HF_HUB_OFFLINE=1 at import (tests/conftest.py): switch it off for this test."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "0")


def safetensors_bytes(n_floats: int) -> bytes:
    header = json.dumps({"w": {"dtype": "F32", "shape": [n_floats], "data_offsets": [0, 4 * n_floats]}}).encode()
    return struct.pack("<Q", len(header)) + header + bytes(4 * n_floats)


def get(fake, cache_dir, repo=REPO, **kw):
    progress = kw.pop("progress", hub.SilentProgress())
    return hub.download(repo, cache_dir=cache_dir, endpoint=fake.url, progress=progress, **kw), progress


# ---------------------------------------------------------------------------------------------------------
# selection (pure)

FILES = ["config.json", "vocab.txt", "tokenizer.json", "model.safetensors", "pytorch_model.bin", "tf_model.h5",
         "README.md", "onnx/model.onnx", "1_Pooling/config.json", "flax_model.msgpack"]


def test_default_selection_prefers_safetensors():
    assert hub.select_files(FILES) == ["1_Pooling/config.json", "config.json", "model.safetensors",
                                       "tokenizer.json", "vocab.txt"]


def test_pickle_only_repo_refused_unless_allowed():
    files = [f for f in FILES if f != "model.safetensors"]
    with pytest.raises(UsageError, match=r"only pickle ones \(pytorch_model.bin\).*arbitrary code.*--allow-pickle"):
        hub.select_files(files)
    assert "pytorch_model.bin" in hub.select_files(files, allow_pickle=True)
    assert hub.select_files(files, pickle_only="skip") == ["1_Pooling/config.json", "config.json",
                                                           "tokenizer.json", "vocab.txt"]


def test_sharded_weights_and_index():
    files = ["config.json", "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors",
             "model.safetensors.index.json", "pytorch_model-00001-of-00002.bin"]
    assert hub.select_files(files) == ["config.json", "model-00001-of-00002.safetensors",
                                       "model-00002-of-00002.safetensors", "model.safetensors.index.json"]


def test_explicit_files_include_exclude():
    assert hub.select_files(FILES, files=["vocab.txt", "README.md"]) == ["README.md", "vocab.txt"]
    assert hub.select_files(FILES, include=["*.json"]) == ["1_Pooling/config.json", "config.json", "tokenizer.json"]
    assert hub.select_files(FILES, exclude=["1_Pooling"]) == ["config.json", "model.safetensors", "tokenizer.json",
                                                             "vocab.txt"]
    with pytest.raises(ModelNotFoundError, match="has no file 'nope.txt'"):
        hub.select_files(FILES, files=["nope.txt"])
    with pytest.raises(UsageError, match="pytorch_model.bin is a pickle file"):
        hub.select_files(FILES, files=["pytorch_model.bin"])
    assert hub.select_files(FILES, include=["*.bin"], allow_pickle=True) == ["pytorch_model.bin"]
    with pytest.raises(UsageError, match="matches no file"):
        hub.select_files(FILES, include=["*.xyz"])
    for bad in ("../etc/passwd", "/etc/passwd", "a/../../b"):
        with pytest.raises(UsageError, match="not a file path inside a repo"):
            hub.select_files(FILES, files=[bad])


# ---------------------------------------------------------------------------------------------------------
# downloads


def test_download_default_selection_and_second_run_is_one_request(fake_hub, tiny_bert_fast, tmp_path, online):
    commit = publish(fake_hub, REPO, tiny_bert_fast, extra={"pytorch_model.bin": b"pickle!" * 10})
    result, progress = get(fake_hub, tmp_path)
    assert result.commit == commit and result.path == tmp_path / "models--org--tiny-bert" / "snapshots" / commit
    assert result.files == ["config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "vocab.txt"]
    assert sorted(os.listdir(result.path)) == result.files  # no pytorch_model.bin
    for name in result.files:
        assert (result.path / name).read_bytes() == (tiny_bert_fast / name).read_bytes()
    assert result.bytes == progress.bytes == result.downloaded_bytes == sum(
        (tiny_bert_fast / f).stat().st_size for f in result.files)
    assert progress.files == 5
    # LFS weights came from the "CDN" host without the token, like the real hub
    assert [r.host.split(":")[0] for r in fake_hub.log("GET", "/cdn/")] == ["127.0.0.2"]
    fake_hub.clear_log()
    again, progress = get(fake_hub, tmp_path)
    assert again.path == result.path and again.downloaded_bytes == 0 and progress.bytes == 0
    assert [(r.method, r.path) for r in fake_hub.requests] == [("GET", f"/api/models/{REPO}")]  # revision only


def test_revision_local_dir_and_dry_run(fake_hub, tiny_bert_fast, tmp_path, online):
    main = publish(fake_hub, REPO, tiny_bert_fast)
    v1 = publish(fake_hub, REPO, tiny_bert_fast, extra={"config.json": b'{"model_type": "bert", "v": 1}'},
                 revision="v1")
    result, _ = get(fake_hub, tmp_path, revision="v1", files=["config.json"])
    assert result.commit == v1 != main and result.revision == "v1"
    assert json.loads((result.path / "config.json").read_text()) == {"model_type": "bert", "v": 1}
    plan, _ = get(fake_hub, tmp_path, revision="v1", dry_run=True)
    assert [(p.path, p.size, p.cached) for p in plan.planned] == [
        ("config.json", 30, True), ("model.safetensors", 173472, False), ("tokenizer.json", 13273, False),
        ("tokenizer_config.json", 93, False), ("vocab.txt", 3137, False)]
    assert not (plan.path / "model.safetensors").exists()  # dry run fetched nothing
    local, _ = get(fake_hub, tmp_path, local_dir=tmp_path / "AlbertModel", include=["*.json", "vocab.txt"])
    assert local.path == tmp_path / "AlbertModel"
    assert sorted(p.name for p in local.path.iterdir() if not p.name.startswith(".")) == [
        "config.json", "tokenizer.json", "tokenizer_config.json", "vocab.txt"]


def test_interrupted_transfer_resumes_with_range(fake_hub, tmp_path, online):
    big = safetensors_bytes(2_800_000)  # 11.2 MB: more than huggingface_hub's 10 MiB read chunk
    fake_hub.add_repo(REPO, {"config.json": b'{"model_type": "bert"}', "model.safetensors": big})
    fake_hub.drop_after["model.safetensors"] = 10_600_000
    result, progress = get(fake_hub, tmp_path)
    assert (result.path / "model.safetensors").read_bytes() == big
    ranges = [r.range for r in fake_hub.log("GET", "/cdn/")]
    assert ranges == [None, "bytes=10485760-"]  # the second request resumed after the first 10 MiB
    assert progress.notices == ["connection lost mid-file; resuming where it stopped"]
    assert progress.bytes == len(big) + len(b'{"model_type": "bert"}')
    assert not list((tmp_path / "models--org--tiny-bert" / "blobs").glob("*.incomplete"))


def test_offline_uses_cache_without_any_request(fake_hub, tiny_bert_fast, tmp_path, online):
    publish(fake_hub, REPO, tiny_bert_fast)
    with pytest.raises(OfflineError, match="not \\(completely\\) downloaded .* offline mode is on"):
        get(fake_hub, tmp_path, offline=True)
    assert fake_hub.requests == []
    first, _ = get(fake_hub, tmp_path)
    fake_hub.clear_log()
    cached, _ = get(fake_hub, tmp_path, offline=True)
    assert (cached.path, cached.files, cached.commit) == (first.path, first.files, first.commit)
    assert fake_hub.requests == []
    assert hub.cached_snapshot(REPO, cache_dir=tmp_path) == first.path


@pytest.mark.parametrize(
    ("setup", "kwargs", "error", "message"),
    [
        ({}, {"repo": "org/missing"}, ModelNotFoundError, "no such model on the hub: org/missing"),
        ({}, {"revision": "nope"}, ModelNotFoundError, "has no revision 'nope'"),
        ({}, {"files": ["config.json"], "revision": "main", "repo": "org/x"}, ModelNotFoundError, "no such model"),
        ({"gated": True, "tokens": ("good",)}, {}, HubError, r"is gated and no token was sent \(401\)"),
        ({"gated": True, "tokens": ("good",)}, {"token": "bad"}, HubError, r"gated and the token has no access \(403\)"),
        ({"private": True, "tokens": ("good",)}, {}, HubError, r"private and no valid token was sent \(401\)"),
        ({"forbidden": True}, {}, HubError, r"access denied \(403\)"),
    ],
)
def test_hub_errors(fake_hub, tiny_bert_fast, tmp_path, online, setup, kwargs, error, message):
    publish(fake_hub, REPO, tiny_bert_fast, **setup)
    with pytest.raises(error, match=message):
        get(fake_hub, tmp_path, **kwargs)


def test_gated_repo_with_token_and_missing_file(fake_hub, tiny_bert_fast, tmp_path, online):
    publish(fake_hub, REPO, tiny_bert_fast, gated=True, tokens=("good",))
    result, _ = get(fake_hub, tmp_path, token="good")
    assert (result.path / "config.json").is_file()
    assert {r.authorization for r in fake_hub.log(contains="/resolve/")} == {"Bearer good"}
    fake_hub.fail_status["/vocab.txt"] = 404
    with pytest.raises(HubError, match=r"hub error for org/tiny-bert: HTTP 404"):
        get(fake_hub, tmp_path / "other", token="good", files=["vocab.txt"])


def test_server_error_and_unreachable(fake_hub, tiny_bert_fast, tmp_path, online):
    publish(fake_hub, REPO, tiny_bert_fast)
    fake_hub.fail_status["/api/"] = 500
    with pytest.raises(HubError, match="HTTP 500.*--offline"):
        get(fake_hub, tmp_path)
    fake_hub.url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(HubError, match=r"cannot reach the hub for org/tiny-bert.*use --offline if the model is cached"):
        get(fake_hub, tmp_path)


# ---------------------------------------------------------------------------------------------------------
# cache: ls / rm / verify


def test_cache_ls_rm_verify(fake_hub, tiny_bert_fast, tiny_roberta, tmp_path, online):
    publish(fake_hub, REPO, tiny_bert_fast)
    fake_hub.add_repo("org/notes", {"config.json": b'{"model_type": "t5"}', "model.safetensors": safetensors_bytes(4)})
    publish(fake_hub, "org/tiny-roberta", tiny_roberta)
    bert, _ = get(fake_hub, tmp_path)
    get(fake_hub, tmp_path, repo="org/notes")
    get(fake_hub, tmp_path, repo="org/tiny-roberta")
    models = cache.list_models(tmp_path)
    assert [(m.repo_id, m.family) for m in models] == [("org/tiny-bert", "BERT"), ("org/tiny-roberta", "RoBERTa")]
    assert [m.repo_id for m in cache.list_models(tmp_path, all_repos=True)] == ["org/notes", "org/tiny-bert",
                                                                                "org/tiny-roberta"]
    rev = models[0].revisions[0]
    assert (rev.commit, rev.refs, rev.weights, rev.files) == (bert.commit, ["main"], "complete", bert.files)
    assert models[0].size == bert.bytes

    assert {c.status for c in cache.verify(REPO, cache_dir=tmp_path)} == {"ok"}
    weights = bert.path / "model.safetensors"
    blob = weights.resolve()
    assert blob.name == hashlib.sha256((tiny_bert_fast / "model.safetensors").read_bytes()).hexdigest()
    with open(blob, "r+b") as handle:  # a truncated blob, as a cut copy would leave it
        handle.truncate(100_000)
    checks = {c.file: c for c in cache.verify(REPO, cache_dir=tmp_path)}
    assert checks["model.safetensors"].status == "corrupt"
    assert checks["model.safetensors"].detail == "truncated: 100000 bytes, the hub lists 173472"
    assert [f for f, c in checks.items() if c.failed] == ["model.safetensors"]
    assert cache.list_models(tmp_path)[0].revisions[0].weights == "incomplete"

    removal = cache.plan_removal("org/tiny-bert", cache_dir=tmp_path)
    assert removal.whole_repo and removal.freed_bytes == bert.bytes - 173472 + 100_000
    assert cache.remove(removal) == removal.freed_bytes
    assert not (tmp_path / "models--org--tiny-bert").exists()
    assert (tmp_path / "models--org--tiny-roberta").is_dir() and (tmp_path / "models--org--notes").is_dir()
    with pytest.raises(ModelNotFoundError, match="org/tiny-bert is not in the cache"):
        cache.plan_removal("org/tiny-bert", cache_dir=tmp_path)
    for trick in ("../models--org--notes", "org/../../x", "org/tiny-roberta/../../x"):
        with pytest.raises(ModelNotFoundError, match="valid hub repo id"):
            cache.plan_removal(trick, cache_dir=tmp_path)
    for trick in ("/etc", ".."):  # paths that exist: refused as what they are
        with pytest.raises(UsageError, match="is a local folder, not a hub repo id"):
            cache.plan_removal(trick, cache_dir=tmp_path)
    with pytest.raises(ModelNotFoundError, match="no cached revision 'v9'"):
        cache.plan_removal("org/tiny-roberta@v9", cache_dir=tmp_path)


def test_verify_catches_a_corrupt_small_file_and_a_missing_blob(fake_hub, tiny_bert_fast, tmp_path, online):
    publish(fake_hub, REPO, tiny_bert_fast)
    result, _ = get(fake_hub, tmp_path)
    vocab_blob = (result.path / "vocab.txt").resolve()
    vocab_blob.write_bytes(vocab_blob.read_bytes().replace(b"[MASK]", b"[MASQ]"))
    checks = {c.file: c for c in cache.verify(REPO, cache_dir=tmp_path)}
    assert (checks["vocab.txt"].status, checks["vocab.txt"].algorithm) == ("corrupt", "git-sha1")
    (result.path / "tokenizer.json").resolve().unlink()
    checks = {c.file: c for c in cache.verify(REPO, cache_dir=tmp_path)}
    assert checks["tokenizer.json"].status == "missing" and checks["config.json"].status == "ok"


def test_resolver_auto_download_uses_the_same_code(fake_hub, tiny_bert_fast, tmp_path, online, monkeypatch):
    from bertcli.resolve import resolve_model

    publish(fake_hub, REPO, tiny_bert_fast, extra={"pytorch_model.bin": b"x"})
    messages: list[str] = []
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "ENDPOINT", fake_hub.url)  # what HF_ENDPOINT sets when read at import
    monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE", fake_hub.url + "/{repo_id}/resolve/{revision}/{filename}")
    resolved = resolve_model(REPO, cache_dir=tmp_path, offline=False, on_download=messages.append)
    assert resolved.files == ["config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json",
                              "vocab.txt"]
    assert messages[0] == f"{REPO} is not cached: downloading it into {tmp_path}"
    total = hub.format_bytes(sum((tiny_bert_fast / f).stat().st_size for f in resolved.files))
    assert messages[1] == f"downloading org/tiny-bert: 5 files, {total}"
    assert messages[2].startswith(f"fetched {total} in ")
    fake_hub.clear_log()
    assert resolve_model(REPO, cache_dir=tmp_path, offline=True).path == resolved.path
    assert fake_hub.requests == []

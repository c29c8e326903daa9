"""Ray engine: equal to the local path row for row, resume after a fault, bad rows, shard planning.

One local Ray runtime (2 CPUs, 127.0.0.1 only) serves the whole module; the engine joins it instead of
starting its own.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

# A local runtime must bind loopback only; read by ray when it is imported, so set before the import.
os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
ray = pytest.importorskip("ray", reason="the ray extra (ray[data]) is not installed")
pq = pytest.importorskip("pyarrow.parquet", reason="the ray extra (pyarrow) is not installed")

from bertcli import ray_engine as engine  # noqa: E402
from bertcli.embed import load_embedder  # noqa: E402
from bertcli.errors import BadInputError, MissingDependencyError, UsageError  # noqa: E402
from bertcli.resolve import resolve_model  # noqa: E402

WORDS = "the cat sat on a mat while rain fell over the quiet town and people went home early".split()


def corpus(n: int, seed: int = 7) -> list[str]:
    rng = np.random.default_rng(seed)
    return [" ".join(rng.choice(WORDS, size=int(rng.integers(1, 40)))) for _ in range(n)]


@pytest.fixture(scope="module")
def ray_runtime():
    """A 2-CPU local runtime on 127.0.0.1 for the module; stopped at the end."""
    ray.init(num_cpus=2, include_dashboard=False, _node_ip_address="127.0.0.1", logging_level="ERROR")
    assert {node["NodeManagerAddress"] for node in ray.nodes()} == {"127.0.0.1"}
    yield
    ray.shutdown()


def _local_vectors(resolved, texts, **kwargs) -> np.ndarray:
    return load_embedder(resolved, device="cpu", **kwargs).embed_array(texts)


def _cos(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(-1) / np.linalg.norm(a, axis=-1) / np.linalg.norm(b, axis=-1)


@pytest.mark.parametrize("model", ["tiny_electra", "minilm"])
def test_ray_equals_local_row_for_row(model, ray_runtime, tiny_models, minilm_dir, tmp_path):
    folder = minilm_dir if model == "minilm" else tiny_models["electra"]
    texts = corpus(70)
    src = tmp_path / "in.txt"
    src.write_text("\n".join(texts) + "\n", encoding="utf-8")
    resolved = resolve_model(str(folder))
    result = engine.run(resolved, src, tmp_path / "out", engine.RaySettings(shard_rows=16), workers=2)

    assert (result.rows, result.input_rows, result.shards, result.shards_written, result.bad) == (70, 70, 5, 5, [])
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "manifest.json", *(f"part-{i:05d}.parquet" for i in range(5)), "run.json"]
    table = engine.read_output(tmp_path / "out")
    assert table.column_names == ["id", "vector"]
    assert str(table.schema.field("vector").type) == f"fixed_size_list<element: float>[{result.dim}]"
    assert table.column("id").to_pylist() == list(range(70))
    got = np.asarray(table.column("vector").combine_chunks().flatten()).reshape(70, -1)
    want = _local_vectors(resolved, texts)
    assert got.shape == want.shape and _cos(got, want).min() >= 0.9999
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["rows"] == 70 and manifest["dim"] == want.shape[1] and manifest["bad"] == []
    assert [s["first_id"] for s in manifest["shards"]] == [0, 16, 32, 48, 64]
    if model == "minilm":  # the sentence-transformers folder's own settings reach the workers
        assert (manifest["pooling"], manifest["normalize"], manifest["max_length"]) == ("mean", True, 256)
        assert np.allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)


def test_resume_after_a_fault_gives_every_row_once(ray_runtime, tiny_models, tmp_path):
    texts = corpus(90, seed=3)
    src = tmp_path / "in.txt"
    src.write_text("\n".join(texts) + "\n", encoding="utf-8")
    out = tmp_path / "out"
    resolved = resolve_model(str(tiny_models["bert_base_only"]))
    settings = engine.RaySettings(shard_rows=10, keep_text=True)

    # the fault, injected into the workers: shards from 2 on are left unwritten, and the run stops
    with pytest.raises(engine.RayEngineError, match="rerun the same command to resume"):
        engine.run(resolved, src, out, settings, workers=2, shard_hook=lambda shard: shard.index < 2)
    done = sorted(p.name for p in out.glob("part-*.parquet"))
    assert 2 <= len(done) < 9 and not (out / "manifest.json").exists()
    stamps = {name: (out / name).stat().st_mtime_ns for name in done}
    # what a kill leaves behind: a temporary part file, and (worse) a truncated file under a final name
    missing = sorted({f"part-{i:05d}.parquet" for i in range(9)} - set(done))
    (out / f".{missing[0]}.abc123.part").write_bytes(b"PAR1 half a shard")
    whole = (out / done[0]).read_bytes()
    (out / missing[-1]).write_bytes(whole[: len(whole) // 2])
    assert engine.shard_footer(out / missing[-1]) is None

    result = engine.run(resolved, src, out, settings, workers=2)
    assert result.shards_done_before == len(done) and result.shards_written == 9 - len(done)
    table = engine.read_output(out)
    assert table.column("id").to_pylist() == list(range(90))  # every row exactly once, in input order
    assert table.column("text").to_pylist() == texts
    assert {name: (out / name).stat().st_mtime_ns for name in done} == stamps  # done shards not redone
    assert not list(out.glob(".*.part"))
    got = np.asarray(table.column("vector").combine_chunks().flatten()).reshape(90, -1)
    assert _cos(got, _local_vectors(resolved, texts)).min() >= 0.9999

    # a third run has nothing to do; another model into the same folder is refused
    again = engine.run(resolved, src, out, settings, workers=2)
    assert (again.shards_done_before, again.shards_written, again.rows) == (9, 0, 90)
    with pytest.raises(UsageError, match="holds shards of another run"):
        engine.run(resolve_model(str(tiny_models["electra"])), src, out, settings, workers=2)


def test_bad_rows_are_reported_and_the_rest_embedded(ray_runtime, tiny_models, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    good = ["a cat sat on the mat", "rain fell", "the town", "people went home", "a quiet town", "the mat"]
    lines = [good[0].encode(), b"", good[1].encode(), b"caf\xe9 au lait", good[2].encode(), b"   ",
             " ".join(["word"] * 40).encode(), good[3].encode()]
    (folder / "a.txt").write_bytes(b"\n".join(lines) + b"\n")
    records = [{"body": good[4]}, {"title": "no body"}, "not an object", {"body": good[5]}]
    (folder / "b.jsonl").write_text("\n".join(json.dumps(r) for r in records) + "\n{broken\n", encoding="utf-8")
    resolved = resolve_model(str(tiny_models["bert_base_only"]))
    settings = engine.RaySettings(shard_rows=4, on_long="error", max_length=16, keep_text=True, text_column="body")
    result = engine.run(resolved, folder, tmp_path / "out", settings, workers=2)

    # ids run over a.txt (0-7) then b.jsonl (8-12); --text-column applies to the jsonl rows
    assert dict(result.bad) == {1: "empty", 3: "not UTF-8 (byte 0xe9 at column 4)", 5: "empty",
                                6: "longer than 16 tokens", 9: "no text in 'body'", 10: "not a JSON object",
                                12: "not JSON (Expecting property name enclosed in double quotes)"}
    table = engine.read_output(tmp_path / "out")
    assert table.column("id").to_pylist() == [0, 2, 4, 7, 8, 11]
    assert table.column("text").to_pylist() == good
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert (manifest["rows"], manifest["input_rows"], manifest["bad_rows"]) == (6, 13, 7)
    assert manifest["bad"][1] == {"id": 3, "reason": "not UTF-8 (byte 0xe9 at column 4)"}
    assert [s["rows"] for s in manifest["shards"]] == [2, 2, 2, 0]  # an all-bad shard is still a (empty) shard


def test_a_run_where_every_row_is_bad_is_not_a_success(ray_runtime, tiny_models, tmp_path):
    (tmp_path / "in.jsonl").write_text('{"body": "hello"}\n{"body": 3}\n\n{"title": "x"}\n', encoding="utf-8")
    resolved = resolve_model(str(tiny_models["bert_base_only"]))
    settings = engine.RaySettings(shard_rows=2, text_column="body", on_long="error", max_length=2)
    with pytest.raises(BadInputError) as caught:
        engine.run(resolved, tmp_path / "in.jsonl", tmp_path / "out", settings, workers=1)
    assert caught.value.exit_code == 5
    assert str(caught.value) == ("none of the 4 input row(s) could be embedded (0: longer than 2 tokens; 1: 'body' "
                                 "is not a string; 2: empty; …); every row is listed in "
                                 f"{tmp_path / 'out' / 'manifest.json'}")
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert (manifest["rows"], manifest["bad_rows"]) == (0, 4)


def test_folder_of_jsonl_and_parquet_with_id_column(ray_runtime, tiny_models, tmp_path):
    import pyarrow as pa

    folder = tmp_path / "docs"
    folder.mkdir()
    texts = corpus(12, seed=11)
    (folder / "a.jsonl").write_text("\n".join(json.dumps({"doc": f"a{i}", "text": t}) for i, t in enumerate(texts[:5]))
                                    + "\n", encoding="utf-8")
    pq.write_table(pa.table({"doc": [f"b{i}" for i in range(7)], "text": texts[5:]}), folder / "b.parquet",
                   row_group_size=3)
    resolved = resolve_model(str(tiny_models["bert_base_only"]))
    result = engine.run(resolved, str(folder), tmp_path / "out", engine.RaySettings(shard_rows=4, id_column="doc"),
                        workers=2)
    table = engine.read_output(tmp_path / "out")
    assert table.column("id").to_pylist() == [f"a{i}" for i in range(5)] + [f"b{i}" for i in range(7)]
    assert result.shards == 4  # a: 4 + 1 rows; b: 4 + 3 rows (shards never cross files)
    got = np.asarray(table.column("vector").combine_chunks().flatten()).reshape(12, -1)
    assert _cos(got, _local_vectors(resolved, texts)).min() >= 0.9999


# ---------------------------------------------------------------------------------------------------------
# no Ray needed


def test_plan_shards_and_inputs(tmp_path):
    (tmp_path / "b.txt").write_bytes(b"one\ntwo\nthree\nfour\nfive")  # no newline at the end
    (tmp_path / "a.txt").write_bytes(b"x\ny\n")
    (tmp_path / ".hidden.txt").write_text("ignored\n")
    files, shards = engine.plan_shards(engine.find_inputs(tmp_path), shard_rows=2)
    assert [Path(f.path).name for f in files] == ["a.txt", "b.txt"] and [f.rows for f in files] == [2, 5]
    assert [(s.file, s.start, s.stop, s.first_id, s.byte_start, s.byte_stop) for s in shards] == [
        (0, 0, 2, 0, 0, 4), (1, 0, 2, 2, 0, 8), (1, 2, 4, 4, 8, 19), (1, 4, 5, 6, 19, 23)]
    assert [t for s in shards for _, t, _ in engine.read_shard_rows(files[s.file], s)] == [
        "x", "y", "one", "two", "three", "four", "five"]
    assert [Path(p).name for p in engine.find_inputs(str(tmp_path / "*.txt"))] == ["a.txt", "b.txt"]
    with pytest.raises(BadInputError, match="no files match"):
        engine.find_inputs(str(tmp_path / "*.parquet"))
    with pytest.raises(UsageError):
        engine.plan_shards([tmp_path / "a.txt"], shard_rows=0)


def test_partial_shard_files_are_never_done(tmp_path, monkeypatch):
    shard = engine.Shard(index=3, file=0, start=0, stop=2, first_id=30)
    info = {"shard": 3, "first_id": 30, "input_rows": 2, "rows": 2, "bad": [], "truncated": 0, "dim": 4,
            "fingerprint": "f1"}
    engine.write_shard(tmp_path, shard, [30, 31], None, np.ones((2, 4), dtype=np.float32), info)
    assert engine.shard_done(tmp_path, shard, "f1")["rows"] == 2
    assert engine.shard_done(tmp_path, shard, "other-run") is None
    data = (tmp_path / shard.name).read_bytes()
    for cut in (0, 4, len(data) // 2, len(data) - 1):
        (tmp_path / shard.name).write_bytes(data[:cut])
        assert engine.shard_done(tmp_path, shard, "f1") is None

    # a write that fails part-way leaves neither the final name nor a temporary file
    (tmp_path / shard.name).unlink()

    def boom(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(pq, "write_table", boom)
    from bertcli.errors import OutputError

    with pytest.raises(OutputError, match="No space left on device"):
        engine.write_shard(tmp_path, shard, [30, 31], None, np.ones((2, 4), dtype=np.float32), info)
    assert list(tmp_path.iterdir()) == []


def test_missing_ray_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(MissingDependencyError) as info:
        engine.require_ray()
    assert str(info.value) == ("--engine ray needs Ray Data and pyarrow, which are not installed; "
                               "pip install 'bertcli[ray]'")
    assert info.value.exit_code == 7


def test_a_join_failure_is_one_line_that_names_the_cause(monkeypatch):
    # Ray Client sends the server's whole traceback after an introducing line; the user needs its last line.
    server = ("Initialization failure from server:\nTraceback (most recent call last):\n  File \"proxier.py\", "
              "line 770, in Datapath\n    raise RuntimeError(\nRuntimeError: Proxy failed to Connect to backend!\n")

    def refuse(**kwargs):
        raise ConnectionAbortedError(server)

    monkeypatch.setattr(ray, "init", refuse)
    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    with pytest.raises(engine.RayClusterError) as info:
        engine.start_ray("ray://10.0.0.9:10001", cpus=1)
    assert str(info.value).splitlines() == [
        "cannot join the Ray cluster at ray://10.0.0.9:10001: Initialization failure from server: "
        "RuntimeError: Proxy failed to Connect to backend!"]
    assert info.value.exit_code == 8
    monkeypatch.setattr(ray, "init", lambda **kwargs: (_ for _ in ()).throw(ConnectionError("refused\nmore")))
    with pytest.raises(engine.RayClusterError, match=r"10001: refused$"):
        engine.start_ray("ray://10.0.0.9:10001", cpus=1)


def test_a_killed_worker_is_restarted_and_its_shard_redone(ray_runtime, tiny_models, tmp_path):
    texts = corpus(24, seed=9)
    src = tmp_path / "in.txt"
    src.write_text("\n".join(texts) + "\n", encoding="utf-8")
    marker = tmp_path / "crashed"

    def crash_once(shard) -> bool:  # runs in the worker: the first one to start shard 1 dies
        if shard.index == 1 and not marker.exists():
            marker.write_text(str(os.getpid()))
            os._exit(1)
        return True

    resolved = resolve_model(str(tiny_models["bert_base_only"]))
    result = engine.run(resolved, src, tmp_path / "out", engine.RaySettings(shard_rows=8), workers=2,
                        shard_hook=crash_once)
    assert marker.exists()  # it did crash once
    assert result.shards_written == 3 and result.rows == 24
    assert engine.read_output(tmp_path / "out").column("id").to_pylist() == list(range(24))

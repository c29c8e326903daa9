"""The output sink: format choice, JSON/JSONL/TSV shapes, atomic files."""

from __future__ import annotations

import json

import numpy as np
import pytest

from bertcli import output
from bertcli.errors import OutputError, UsageError


@pytest.fixture(autouse=True)
def reset(run_output):
    """Each test starts from a fresh run's settings and sink."""
    yield


def test_auto_is_jsonl_when_piped(capsys):
    output.configure(format="auto")
    assert output.resolve_format() == "jsonl"  # pytest captures stdout: not a terminal
    with pytest.raises(UsageError):
        output.configure(format="xml") or output.resolve_format()


def test_json_array_and_jsonl(capsys):
    recs = [{"a": 1, "v": np.float32(0.5)}, {"a": 2, "v": np.array([1, 2])}]
    output.emit(iter(recs), fmt="json")
    assert json.loads(capsys.readouterr().out) == [{"a": 1, "v": 0.5}, {"a": 2, "v": [1, 2]}]
    output.emit(iter(recs), fmt="jsonl")
    assert [json.loads(x) for x in capsys.readouterr().out.splitlines()] == [{"a": 1, "v": 0.5}, {"a": 2, "v": [1, 2]}]
    output.emit(iter([]), fmt="json")
    assert json.loads(capsys.readouterr().out) == []


def test_tsv_escapes(capsys):
    output.emit([{"t": "a\tb\nc", "n": None, "l": [1, 2]}], fmt="tsv")
    assert capsys.readouterr().out == "t\tn\tl\na\\tb\\nc\t\t1 2\n"


def test_atomic_write_keeps_old_file_on_error(tmp_path):
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError):
        with output.atomic_write(target) as fh:
            fh.write(b"partial")
            raise RuntimeError("boom")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.bin"]
    with output.atomic_write(target) as fh:
        fh.write(b"new")
    assert target.read_bytes() == b"new"


def test_atomic_write_missing_folder(tmp_path):
    with pytest.raises(OutputError, match="does not exist"):
        with output.atomic_write(tmp_path / "nope" / "x.npy"):
            pass


def test_atomic_write_respects_umask(tmp_path):
    import os

    old = os.umask(0o022)
    try:
        with output.atomic_write(tmp_path / "f.txt") as fh:
            fh.write(b"x")
    finally:
        os.umask(old)
    assert (tmp_path / "f.txt").stat().st_mode & 0o777 == 0o644

"""The one reader of input bytes (bertcli.inputs): line ends, strict UTF-8, the byte order mark, labels."""

from __future__ import annotations

import io
import json

import pytest

from bertcli.errors import BadInputError
from bertcli.inputs import Line, decode_line, iter_lines, line_label, utf8_problem


def test_decode_line_drops_line_ends_and_a_first_line_bom_only():
    assert decode_line(b"caf\xc3\xa9\r\n") == "café" and decode_line(b"a\n") == "a" and decode_line(b"a") == "a"
    assert decode_line(b"\xef\xbb\xbfhi\n", first=True) == "hi"
    assert decode_line(b"\xef\xbb\xbfhi\n") == "\ufeffhi"  # a BOM later in the input is text
    with pytest.raises(UnicodeDecodeError) as info:
        decode_line(b"ab\xe9c\n")
    assert utf8_problem(info.value) == "byte 0xe9 at column 3"


def test_streams_name_the_line_of_a_bad_byte():
    lines = iter_lines(None, "-", stdin=io.BytesIO(b"\xef\xbb\xbfone\r\ntwo\nthr\xffee\n"))
    assert [next(lines).text, next(lines).text] == ["one", "two"]
    with pytest.raises(BadInputError, match=r"^<stdin>, line 3: not UTF-8 text \(byte 0xff at column 4\)$"):
        next(lines)


def test_line_label():
    assert line_label(2) == "text 2" and line_label(2, None) == "text 2"
    assert line_label(7, "notes.txt") == "notes.txt, line 7"
    assert Line(3, "x", "<stdin>").label == "<stdin>, line 3" and Line(1, "x").label == "text 1"


def test_qa_records_read_through_the_same_reader(tmp_path):
    from bertcli.commands.qa import _read_records

    path = tmp_path / "in.jsonl"
    records = [{"id": "a", "question": "q?", "context": "c."}, {"id": "b", "question": "r?", "context": "d."}]
    path.write_bytes(b"\xef\xbb\xbf" + "\r\n".join(json.dumps(r) for r in records).encode() + b"\r\n\xff\n")
    items = list(_read_records(path))
    assert [(i.question, i.context, i.key, i.error) for i in items[:2]] == [
        ("q?", "c.", (f"{path}, line 1", "a"), None), ("r?", "d.", (f"{path}, line 2", "b"), None)]
    assert items[2].key == (f"{path}, line 3", None) and str(items[2].error) == "not UTF-8 text"


def test_split_pair_at_the_first_tab_and_name_a_line_without_one():
    from bertcli.errors import BadInputError
    from bertcli.inputs import Line, split_pair

    assert split_pair(Line(3, "a cat\tsat\ton a mat", "in.tsv")) == ("a cat", "sat\ton a mat")
    assert split_pair(Line(1, "\t")) == ("", "")
    with pytest.raises(BadInputError) as info:
        split_pair(Line(4, "no tab", "in.tsv"))
    assert str(info.value) == "in.tsv, line 4: --pairs expects 'TEXT<TAB>PAIR' (no tab on this line)"

"""Issue 13, memory and time without bound, plus small input inconsistencies.

Memory is measured in a fresh child process (peak RSS from /proc/self/status VmHWM at its end), comparing a
small input with a much bigger one: the bigger one may cost only a bounded amount more. Never an absolute
number, which would depend on the machine.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


def one_line_error(proc, code: int) -> str:
    assert proc.returncode == code, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: "), lines[0]
    return lines[0]


# --------------------------------------------------------------------------------------------- item 11


@pytest.mark.parametrize("content", ["", "\n\n  \n"])
def test_qa_input_without_records_is_bad_input(run_cli, tiny_bert_qa, tmp_path, content):
    empty = tmp_path / "empty.jsonl"
    empty.write_text(content)
    proc = run_cli("qa", "-m", tiny_bert_qa, "--input", empty)
    line = one_line_error(proc, 5)
    assert "empty input" in line and str(empty) in line
    assert proc.stdout == ""

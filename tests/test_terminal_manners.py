"""Terminal manners: a spinner while a model loads and a counter on long streams — on a terminal's stderr only,
never with -q, never on stdout."""

from __future__ import annotations

import io
import json
import os
import pty
import subprocess
import sys
import threading

import pytest
from rich.console import Console

from bertcli import output
from tests.conftest import REPO_ROOT


@pytest.fixture
def terminal_stderr(monkeypatch, run_output):
    """stderr is a (captured) terminal, stdout a pipe; returns the stderr buffer."""
    buffer = io.StringIO()
    run_output.stderr_console = Console(file=buffer, force_terminal=True, width=100)
    monkeypatch.setattr(output, "stderr_is_terminal", lambda: True)
    monkeypatch.setattr(output, "stdout_is_terminal", lambda: False)
    return buffer


def test_status_spins_on_a_terminal_and_vanishes(terminal_stderr):
    with output.loading("./MiniLM", after=0):
        pass
    shown = terminal_stderr.getvalue()
    assert "loading ./MiniLM …" in shown
    assert shown.rstrip().endswith("\x1b[2K")  # transient: the line is erased at the end


def test_status_waits_before_showing(terminal_stderr):
    import time

    with output.loading("fast"):  # done well within the delay: nothing flashes
        pass
    assert terminal_stderr.getvalue() == ""
    with output.status("slow", after=0.05):
        time.sleep(0.5)
    assert "slow" in terminal_stderr.getvalue()


def test_status_is_silent_with_quiet_or_without_a_terminal(terminal_stderr, monkeypatch):
    output.configure(quiet=True)
    with output.loading("x", after=0):
        pass
    output.configure(quiet=False)
    monkeypatch.setattr(output, "stderr_is_terminal", lambda: False)
    with output.loading("x", after=0):
        pass
    assert terminal_stderr.getvalue() == ""


def test_track_counts_after_the_threshold_and_passes_items_through(terminal_stderr):
    assert list(output.track(range(5), description="scoring", after=0)) == [0, 1, 2, 3, 4]
    shown = terminal_stderr.getvalue()
    assert "scoring" in shown and "5 texts" in shown


def test_track_stays_quiet_for_fast_runs_and_when_stdout_is_a_terminal(terminal_stderr, monkeypatch):
    assert list(output.track(range(3), description="scoring")) == [0, 1, 2]  # well under a second
    monkeypatch.setattr(output, "stdout_is_terminal", lambda: True)  # the records show the progress there
    assert list(output.track(range(3), description="scoring", after=0)) == [0, 1, 2]
    assert terminal_stderr.getvalue() == ""


def _run_with_terminal_stderr(args: list[str]) -> tuple[int, bytes, str]:
    """Run bertcli with stderr on a pseudo-terminal and stdout on a pipe: (exit code, stdout, stderr text)."""
    master, slave = pty.openpty()
    env = {**os.environ, "COLUMNS": "100", "PYTHONPATH": str(REPO_ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "bertcli", *args], stdout=subprocess.PIPE, stderr=slave,
                            stdin=subprocess.DEVNULL, env=env)
    os.close(slave)
    err = bytearray()

    def read() -> None:
        while True:
            try:
                chunk = os.read(master, 4096)
            except OSError:
                return
            if not chunk:
                return
            err.extend(chunk)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    out, _ = proc.communicate(timeout=120)
    reader.join(5)
    os.close(master)
    return proc.returncode, out, err.decode("utf-8", errors="replace")


def test_model_load_shows_a_spinner_on_stderr_only(tiny_electra):
    # --backend torch: a load slower than the spinner's 0.3 s delay (a warm ONNX load is quicker, and shows none)
    code, out, err = _run_with_terminal_stderr(["detect", "The chef cooked the meal.", "-m", str(tiny_electra),
                                                "-f", "jsonl", "--backend", "torch"])
    assert code == 0, err
    assert f"loading {tiny_electra} …" in err
    [rec] = [json.loads(line) for line in out.decode().splitlines()]  # stdout holds the record and nothing else
    assert rec["line"] == 1
    code, out, err = _run_with_terminal_stderr(["detect", "The chef cooked the meal.", "-m", str(tiny_electra),
                                                "-f", "jsonl", "-q", "--backend", "torch"])
    assert code == 0 and "loading" not in err and len(out.decode().splitlines()) == 1

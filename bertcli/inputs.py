"""Reading input texts: arguments, a file, or stdin — streamed line by line in bounded batches.

Lines are read as bytes and decoded strictly, so a non-UTF-8 line is reported with its line number instead of
being silently mangled. Nothing here holds more than one batch in memory. This is the one reader of input
bytes: `decode_line` (line end, strict UTF-8, the byte order mark) serves the text streams here, QA's JSON
Lines records and the Ray engine's shards; `read_document` a whole input (a QA context); `line_label` names
where a text came from ("text 2", "notes.txt, line 7") in every message.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import BinaryIO, TypeVar

from bertcli.errors import BadInputError, UsageError

T = TypeVar("T")


@dataclass(frozen=True)
class Line:
    """One input text and where it came from (1-based line number; argument index for TEXT args)."""

    number: int
    text: str
    source: str = "<arg>"

    @property
    def label(self) -> str:
        """Where the text came from, for messages: "text N" for an argument, "FILE, line N" for a line."""
        return line_label(self.number, self.source)


def line_label(number: int, source: str | None = "<arg>") -> str:
    """"text N" for the N-th text argument (``source`` "<arg>" or None), "SOURCE, line N" for a line of input."""
    return f"text {number}" if source in (None, "<arg>") else f"{source}, line {number}"


def decode_line(raw: bytes, *, first: bool = False) -> str:
    """One line's bytes as text: its line end (``\\n``, ``\\r\\n``) dropped, decoded as strict UTF-8 (a
    `UnicodeDecodeError` when it is not; `utf8_problem` describes it), and, on the first line of an input
    (``first``), a UTF-8 byte order mark dropped: it is not part of the text."""
    if raw.endswith(b"\n"):
        raw = raw[:-1]
    if raw.endswith(b"\r"):
        raw = raw[:-1]
    text = raw.decode("utf-8")
    return text[1:] if first and text.startswith("\ufeff") else text


def utf8_problem(exc: UnicodeDecodeError) -> str:
    """"byte 0xNN at column C": where a line failed `decode_line`."""
    return f"byte 0x{exc.object[exc.start]:02x} at column {exc.start + 1}"


def read_document(file: str | Path | None, *, what: str, no_input: str) -> str:
    """A whole input read at once (``file``, ``-`` = stdin, None = stdin unless it is a terminal): strict UTF-8
    with the line of a bad byte in the message, a byte order mark dropped. ``what`` names the file in messages
    ("context file"), ``no_input`` is the usage error for a terminal on stdin."""
    if file is not None and str(file) != "-":
        path = Path(file).expanduser()
        with open_input(path, what=what, missing=what) as handle:
            raw = handle.read()
        source = str(path)
    else:
        if file is None and sys.stdin.isatty():
            raise UsageError(no_input)
        raw = sys.stdin.buffer.read()
        source = "<stdin>"
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise BadInputError(f"{source}, line {line}: not UTF-8 text (byte 0x{raw[exc.start]:02x})") from exc
    return text.removeprefix("\ufeff")


def split_pair(line: Line) -> tuple[str, str]:
    """A ``--pairs`` line, 'TEXT<TAB>PAIR', split at its first tab (the pair keeps any later tab, as ``cut -f2-``
    would); a line without a tab is a `BadInputError` that names it."""
    first, tab, second = line.text.partition("\t")
    if not tab:
        raise BadInputError(f"{line.label}: --pairs expects 'TEXT<TAB>PAIR' (no tab on this line)")
    return first, second


def check_utf8(text: str, label: str) -> str:
    """``text`` unchanged, or a `BadInputError` naming ``label`` when it was not valid UTF-8.

    Python decodes command-line arguments with ``surrogateescape``: a byte that is not UTF-8 arrives as a lone
    surrogate (U+DC80…U+DCFF), which no tokenizer can take. Every text argument passes through here.
    """
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        code = ord(text[exc.start])
        what = f"byte 0x{code - 0xDC00:02x}" if 0xDC80 <= code <= 0xDCFF else f"lone surrogate U+{code:04X}"
        raise BadInputError(f"{label} is not valid UTF-8 ({what} at character {exc.start + 1})") from exc
    return text


def _iter_stream(stream: BinaryIO, source: str) -> Iterator[Line]:
    for number, raw in enumerate(stream, start=1):
        try:
            text = decode_line(raw, first=number == 1)
        except UnicodeDecodeError as exc:
            raise BadInputError(f"{source}, line {number}: not UTF-8 text ({utf8_problem(exc)})") from exc
        yield Line(number, text, source)


def iter_lines(
    texts: Sequence[str] | None = None,
    file: str | Path | None = None,
    *,
    stdin: BinaryIO | None = None,
    allow_tty: bool = False,
) -> Iterator[Line]:
    """Texts from arguments, else from ``file`` (``-`` = stdin), else from stdin when it is not a terminal."""
    if texts and file is not None:
        raise UsageError("give texts as arguments or with --file, not both")
    if texts:
        for i, text in enumerate(texts, start=1):
            yield Line(i, check_utf8(text, f"text argument {i}"), "<arg>")
        return
    if file is not None and str(file) != "-":
        path = Path(file).expanduser()
        with open_input(path) as handle:
            yield from _iter_stream(handle, str(path))
        return
    stream = stdin if stdin is not None else sys.stdin.buffer
    if file is None and not allow_tty and hasattr(stream, "isatty") and stream.isatty():
        raise UsageError("no input: give TEXT arguments, --file FILE, or pipe lines on stdin")
    yield from _iter_stream(stream, "<stdin>")


def open_input(path: Path, *, what: str = "text file", missing: str = "file") -> BinaryIO:
    """Open an input file for binary reading, with one clear BadInputError for a folder, a missing or an
    unreadable file (``what``/``missing`` name it in the message, e.g. "context file")."""
    path = Path(path).expanduser()
    if path.is_dir():
        raise BadInputError(f"{path} is a folder, not a {what}")
    try:
        return open(path, "rb")  # noqa: SIM115 - the caller closes it
    except FileNotFoundError as exc:
        raise BadInputError(f"no such {missing}: {path}") from exc
    except OSError as exc:
        raise BadInputError(f"cannot read {path}: {exc.strerror or exc}") from exc


def batched(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """Consecutive lists of at most ``size`` items (the last may be shorter)."""
    iterator = iter(items)
    while batch := list(islice(iterator, size)):
        yield batch


def require_nonempty(lines: Iterable[Line]) -> Iterator[Line]:
    """Pass lines through; raise BadInputError when there were none at all."""
    seen = False
    for line in lines:
        seen = True
        yield line
    if not seen:
        raise BadInputError("empty input: no text to process")

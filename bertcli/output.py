"""The one output sink: data to stdout, messages and progress to stderr.

The format is chosen once per run (`configure`), then every command hands plain records to `emit`:

- ``table``  — Rich tables on a terminal (``auto`` picks it when stdout is a TTY);
- ``json``   — one JSON array of records, streamed (the array opens before the first record is known);
- ``jsonl``  — one JSON record a line (``auto`` picks it when stdout is piped), flushed as records come;
- ``tsv``    — a header line, then one tab-separated line per row;
- extras a command declares itself (``ids`` for tokenize, ``npy`` for embed …).

Commands write their ``-o`` files with `atomic_write` (`bertcli.files.atomic_write`, re-exported here): a
regular file atomically (a temporary file in the target folder, then a rename, so an interrupted run never
leaves a half file behind), a device, FIFO or ``-`` straight (docs/contract.md).
"""

from __future__ import annotations

import json
import logging
import math
import os
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from bertcli import settings as run_settings
from bertcli.choices import BASE_FORMATS
from bertcli.errors import UsageError
from bertcli.files import atomic_write  # noqa: F401 - re-exported: commands write -o files with it

T = TypeVar("T")


class Output:
    """The sink of one run: its settings (format, ``-q``) and its two Rich consoles, made when first used.

    `cli.main` makes one per run (`use`); commands reach it through this module's functions (`emit`, `info`,
    `console` …), which ask `current()`. A test that runs a command in this process gets a fresh one from the
    ``run_output`` fixture (tests/conftest.py) and may hand it consoles of its own.
    """

    def __init__(self, settings: run_settings.RunSettings | None = None, *, stdout_console=None,
                 stderr_console=None) -> None:
        self._settings = settings
        self.stdout_console = stdout_console
        self.stderr_console = stderr_console

    @property
    def settings(self) -> run_settings.RunSettings:
        """The settings it was made with; without any, whatever `bertcli.settings.current()` is."""
        return self._settings if self._settings is not None else run_settings.current()

    def configure(self, *, format: str | None = None, quiet: bool | None = None) -> None:
        """Set the run's output settings (only the ones given)."""
        if format is not None:
            self.settings.format = format
        if quiet is not None:
            self.settings.quiet = quiet

    def resolve_format(self, extras: Iterable[str] = ()) -> str:
        """The concrete format for this run: ``auto`` becomes ``table`` on a terminal, ``jsonl`` otherwise."""
        allowed = (*BASE_FORMATS, *extras)
        fmt = (self.settings.format or "auto").lower()
        if fmt not in allowed:
            raise UsageError(f"unknown --format {fmt!r}; choose one of: {', '.join(allowed)}")
        if fmt == "auto":
            return "table" if stdout_is_terminal() else "jsonl"
        return fmt

    def console(self):
        """The Rich console on stdout (tables)."""
        if self.stdout_console is None:
            from rich.console import Console

            self.stdout_console = Console(soft_wrap=False, highlight=False)
        return self.stdout_console

    def err_console(self):
        """The Rich console on stderr (messages, warnings, progress)."""
        if self.stderr_console is None:
            from rich.console import Console

            self.stderr_console = Console(stderr=True, highlight=False)
        return self.stderr_console

    @property
    def quiet(self) -> bool:
        return self.settings.quiet


_current = Output()


def current() -> Output:
    """This run's output sink."""
    return _current


def use(out: Output) -> Output:
    """Make ``out`` this run's sink (`cli.main` at the start of a run; tests); returns it."""
    global _current
    _current = out
    return out


def configure(*, format: str | None = None, quiet: bool | None = None) -> None:
    """Set the run's output settings (only the ones given): a command's own ``--format``/``-q`` and the like."""
    current().configure(format=format, quiet=quiet)


def stdout_is_terminal() -> bool:
    return sys.stdout.isatty()


def stderr_is_terminal() -> bool:
    return sys.stderr.isatty()


def resolve_format(extras: Iterable[str] = ()) -> str:
    """The concrete format for this run: ``auto`` becomes ``table`` on a terminal, ``jsonl`` otherwise."""
    return current().resolve_format(extras)


# ---------------------------------------------------------------------------------------------------------
# consoles


def console():
    """The Rich console on stdout (tables)."""
    return current().console()


def err_console():
    """The Rich console on stderr (messages, warnings, progress)."""
    return current().err_console()


#: Shading from little to much, for views that show an amount by colour: where a console shows no colour
#: (a pipe, ``NO_COLOR``, ``TERM=dumb``) the same amount is drawn with these characters instead.
SHADES = " ░▒▓█"


def shows_colour(con=None) -> bool:
    """Whether ``con`` (default: the stdout console) renders colours; False for ``NO_COLOR``, pipes, dumb terminals.

    Rich keeps a colour system under ``NO_COLOR`` and silently drops the colours, so a view that says
    something *only* by a background colour must ask this and draw `SHADES` instead.
    """
    con = con or console()
    return con.color_system is not None and not con.no_color


def shade_char(level: float) -> str:
    """The `SHADES` character for ``level`` in [0, 1] (0 → blank, 1 → █)."""
    return SHADES[max(0, min(len(SHADES) - 1, int(level * len(SHADES))))]


def score_bar(score: float, width: int = 20) -> str:
    """A probability as a bar of ``width`` cells: █ for the part it fills, · for the rest (fill-mask, detect)."""
    full = round(score * width)
    return "█" * full + "·" * (width - full)


def info(message: str) -> None:
    """A progress/status message on stderr, silenced by ``-q`` (plain, unwrapped text when not a terminal)."""
    if current().quiet:
        return
    if stderr_is_terminal():
        err_console().print(message, markup=False, highlight=False)
    else:
        _plain_stderr(message)


def warn(message: str) -> None:
    """A warning on stderr (shown even with ``-q``: warnings are about the data)."""
    _plain_stderr(f"warning: {message}")


class _NotesHandler(logging.Handler):
    """Shows the core's ``bertcli.notes`` records (`bertcli.backends.NOTES`: a one-off ONNX export) as `info`
    lines, and its DEBUG records (why ``--backend auto`` ran torch) only under ``--debug``."""

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno >= logging.INFO or current().settings.debug:
            info(record.getMessage())


def _route_notes() -> None:
    notes = logging.getLogger("bertcli.notes")
    if not any(isinstance(h, _NotesHandler) for h in notes.handlers):
        notes.addHandler(_NotesHandler())
    notes.setLevel(logging.DEBUG)
    notes.propagate = False


_route_notes()


def error(message: str) -> None:
    """The one error line on stderr."""
    _plain_stderr(f"error: {message}")


def _plain_stderr(line: str) -> None:
    try:
        sys.stderr.write(line + "\n")
        sys.stderr.flush()
    except (BrokenPipeError, ValueError):  # stderr closed: nothing more we can do
        pass


def progress_enabled() -> bool:
    """Progress bars only on a terminal and never with ``-q``."""
    return not current().quiet and stderr_is_terminal()


def make_progress(*, total: float | None = None, unit: str = "items", transient: bool = True):
    """A Rich progress bar on stderr (rate and ETA), or None when progress is disabled."""
    if not progress_enabled():
        return None
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TaskProgressColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    columns = [
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        TaskProgressColumn() if total else MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    ]
    return Progress(*columns, console=err_console(), transient=transient)


@contextmanager
def status(message: str, *, after: float = 0.3) -> Iterator[None]:
    """A spinner with ``message`` on stderr while something slow without steps runs (a model loading).

    It appears only once the work has taken ``after`` seconds (a fast load shows nothing), on a terminal only
    and never with ``-q`` (like progress bars), and vanishes when done. Messages written to stderr meanwhile
    (warnings) print above it; stdout is left alone.
    """
    if not progress_enabled():
        yield
        return
    from rich.live import Live
    from rich.spinner import Spinner

    live = Live(Spinner("dots", text=message), console=err_console(), transient=True, refresh_per_second=12.5,
                redirect_stdout=False)
    lock = threading.Lock()
    state = {"started": False, "done": False}

    def start() -> None:
        with lock:
            if not state["done"]:
                live.start()
                state["started"] = True

    timer = None
    if after <= 0:
        start()
    else:
        timer = threading.Timer(after, start)
        timer.daemon = True
        timer.start()
    try:
        yield
    finally:
        with lock:
            state["done"] = True
            if timer is not None:
                timer.cancel()
            if state["started"]:
                live.stop()


def loading(what: str, *, after: float = 0.3):
    """`status` for loading a model: 'loading MODEL …'."""
    return status(f"loading {what} …", after=after)


def track(items: Iterable[T], *, description: str, unit: str = "texts", after: float = 1.0) -> Iterator[T]:
    """Yield ``items``; once they have taken ``after`` seconds, a counter (done, rate, elapsed) shows on stderr.

    For record streams whose total is unknown (stdin). Shown on a terminal only, never with ``-q``, and only
    while stdout is not a terminal: there the records themselves show the progress (and a live bar would
    tangle with them). Fast runs never show it.
    """
    if not progress_enabled() or stdout_is_terminal():
        yield from items
        return
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    bar = None
    task = None
    done = 0
    start = time.perf_counter()
    try:
        for item in items:
            yield item
            done += 1
            elapsed = time.perf_counter() - start
            if bar is None and elapsed >= after:
                bar = Progress(SpinnerColumn(), TextColumn("{task.description}"),
                               TextColumn("{task.completed:,} " + unit), TextColumn("{task.fields[rate]}"),
                               TimeElapsedColumn(), console=err_console(), transient=True, redirect_stdout=False)
                task = bar.add_task(description, total=None, rate="")
                bar.start()
            if bar is not None:
                bar.update(task, completed=done, rate=f"{done / max(elapsed, 1e-9):,.1f} {unit}/s")
    finally:
        if bar is not None:
            bar.stop()


class DownloadProgressBar:
    """Bytes, rate and files of a download on stderr: a Rich bar on a terminal, two plain lines otherwise.

    Implements `bertcli.hub.DownloadProgress`; `download` uses it, and every other command passes it to the
    resolver (`commands._common.resolve`), so a model fetched on first use shows the same progress.
    """

    def __init__(self) -> None:
        self._progress = None
        self._task = None
        self._files = 0
        self._total_files = 0
        self._bytes = 0
        self._started = 0.0
        self._lock = threading.Lock()

    def start(self, *, description: str, total_bytes: int, total_files: int) -> None:
        self._total_files = total_files
        self._started = time.perf_counter()
        if total_bytes == 0:
            return  # everything is cached: nothing to show
        if progress_enabled():
            from rich.progress import (
                BarColumn,
                DownloadColumn,
                Progress,
                TextColumn,
                TimeRemainingColumn,
                TransferSpeedColumn,
            )

            self._progress = Progress(
                TextColumn("[bold]{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                TextColumn("{task.fields[files]}"), TimeRemainingColumn(),
                console=err_console(), transient=True,
            )
            self._task = self._progress.add_task(description, total=total_bytes, files=f"0/{total_files} files")
            self._progress.start()
        else:
            from bertcli.units import format_bytes

            info(f"downloading {description}: {total_files} files, {format_bytes(total_bytes)}")

    def advance(self, nbytes: int) -> None:
        with self._lock:
            self._bytes += nbytes
        if self._progress is not None:
            self._progress.advance(self._task, nbytes)

    def file_done(self) -> None:
        with self._lock:
            self._files += 1
            files = self._files
        if self._progress is not None:
            self._progress.update(self._task, files=f"{files}/{self._total_files} files")

    def notice(self, message: str) -> None:
        if self._progress is not None and not current().quiet:
            self._progress.console.print(message, markup=False, highlight=False)
        else:
            info(message)

    def finish(self, *, ok: bool) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
        if ok and self._bytes:
            from bertcli.units import format_bytes

            seconds = max(time.perf_counter() - self._started, 1e-6)
            info(f"fetched {format_bytes(self._bytes)} in {seconds:.1f}s "
                        f"({format_bytes(int(self._bytes / seconds))}/s)")


# ---------------------------------------------------------------------------------------------------------
# records


def to_jsonable(value: Any) -> Any:
    """Plain JSON values from numpy scalars/arrays, paths and tuples (NaN/inf become null)."""
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if hasattr(value, "tolist"):  # numpy array or scalar
        return to_jsonable(value.tolist())
    return value


def _json_default(value: Any) -> Any:
    if hasattr(value, "tolist"):  # numpy array or scalar
        return value.tolist()
    if isinstance(value, (Path, os.PathLike)):
        return str(value)
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


def dumps(record: Any) -> str:
    """One record as compact-ish JSON text (numpy values converted on the fly, no pre-walk)."""
    return json.dumps(record, ensure_ascii=False, separators=(", ", ": "), default=_json_default)


def _tsv_cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, (list, tuple)):
        return " ".join(_tsv_cell(v) for v in value)
    if isinstance(value, dict):
        return json.dumps(to_jsonable(value), ensure_ascii=False)
    if isinstance(value, bool):
        return "true" if value else "false"
    text = str(value)
    return text.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


TableRenderer = Callable[[list[dict]], Any]


def emit(
    records: Iterable[dict],
    *,
    table: TableRenderer | None = None,
    table_batch: int | None = None,
    tsv_columns: list[str] | None = None,
    tsv_rows: Callable[[dict], Iterable[dict]] | None = None,
    fmt: str | None = None,
) -> int:
    """Write records in the run's format and return how many were written.

    ``table`` renders a list of records into a Rich renderable; with ``table_batch`` it is called on each
    batch of that many records as they stream (so a table view of a long input never holds it all).
    ``tsv_rows`` may explode one record into several TSV rows (e.g. one per token).
    """
    fmt = fmt or resolve_format()
    out = sys.stdout
    count = 0
    if fmt == "table":
        if table is None:
            fmt = "jsonl"
        else:
            batch: list[dict] = []
            for record in records:
                batch.append(record)
                count += 1
                if table_batch and len(batch) >= table_batch:
                    console().print(table(batch))
                    batch = []
            if batch or count == 0:
                console().print(table(batch))
            return count
    if fmt == "jsonl":
        for record in records:
            out.write(dumps(record) + "\n")
            count += 1
            if count % 256 == 0:
                out.flush()
        out.flush()
        return count
    if fmt == "json":
        out.write("[")
        for record in records:
            out.write(("\n  " if count == 0 else ",\n  ") + dumps(record))
            count += 1
        out.write("\n]\n" if count else "]\n")
        out.flush()
        return count
    if fmt == "tsv":
        header_written = False
        for record in records:
            rows = tsv_rows(record) if tsv_rows else [record]
            for row in rows:
                columns = tsv_columns or list(row)
                if not header_written:
                    out.write("\t".join(columns) + "\n")
                    header_written = True
                out.write("\t".join(_tsv_cell(row.get(c)) for c in columns) + "\n")
            count += 1
        if not header_written and tsv_columns:
            out.write("\t".join(tsv_columns) + "\n")
        out.flush()
        return count
    raise UsageError(f"--format {fmt} is not available for this command")


def emit_one(record: dict, *, table: Callable[[dict], Any] | None = None, fmt: str | None = None) -> None:
    """Write a single record: a JSON object (not an array) for json, one line for jsonl."""
    fmt = fmt or resolve_format()
    if fmt == "table" and table is not None:
        console().print(table(record))
    elif fmt in ("json",):
        sys.stdout.write(json.dumps(to_jsonable(record), ensure_ascii=False, indent=2) + "\n")
    elif fmt in ("jsonl", "table"):
        sys.stdout.write(dumps(record) + "\n")
    elif fmt == "tsv":
        emit([record], fmt="tsv")
    else:
        raise UsageError(f"--format {fmt} is not available for this command")
    sys.stdout.flush()

"""Writing output files safely: atomically where the target is a regular file, straight where it is not.

Used by the output layer (``-o out.npy``, ``--png``) and by the core where it writes files itself (Ray shards,
manifests), so there is one implementation of the idea. The promises (docs/contract.md):

- a regular file or a new path is written to a temporary file beside it (``.NAME.PID-XXXXXXXX.part``), fsynced
  and renamed over it only when the block succeeds; the old file's permission bits (and owner, where allowed)
  are kept; on any error the temporary file is removed and the target is untouched;
- a character device (``/dev/null``), a FIFO, ``/dev/stdout``, ``/dev/stderr``, ``/dev/fd/N`` and ``-`` (stdout)
  are written straight (they cannot be renamed over, and replacing them would break the system or the reader);
- anything else that exists (a folder, a socket, a block device) is refused with an `OutputError`;
- stale temporary files of the same target, left by a run that was killed (SIGKILL, power loss), are removed on
  the next write to that target — only those that no live process can still be writing (see `_stale_parts`).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import io
import os
import re
import shutil
import stat
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO

from bertcli.errors import OutputError, ReaderGoneError, UsageError

#: Temporary files of an older bertcli had no pid in their name; they are removed when this old and unlocked.
LEGACY_PART_AGE_S = 600

_FD_PATH = re.compile(r"^/(?:dev/fd|proc/self/fd|proc/thread-self/fd)/(\d+)$")
_STD_PATHS = {"-": 1, "/dev/stdin": 0, "/dev/stdout": 1, "/dev/stderr": 2}


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "wb", *, seekable: bool = False) -> Iterator[IO]:
    """Open ``path`` for writing; yield a file object; on success the whole output is at ``path``.

    A regular file or a new path is written atomically (temp file beside it, fsync, rename); a character
    device, a FIFO or a standard stream (``-`` = stdout) is written straight — through a spool file when
    ``seekable`` is asked for (the writer seeks back, as the .npy writer does), so only finished output
    reaches it. A folder or another kind of file is refused (`OutputError`, exit 9).
    """
    fd_number = standard_stream(path)
    if fd_number is not None:
        for stream in (sys.stdout, sys.stderr):  # what Python still buffers goes first
            with contextlib.suppress(Exception):
                stream.flush()
        with _straight(_dup(fd_number, path), mode, seekable, path) as handle:
            yield handle
        return
    target = Path(path)
    info = check_target(target)
    if info is not None and not stat.S_ISREG(info.st_mode):  # a character device or a FIFO
        try:
            fd = os.open(target, os.O_WRONLY | os.O_CLOEXEC)  # a FIFO waits here for its reader
        except OSError as exc:
            raise OutputError(f"cannot write {target}: {exc.strerror or exc}") from exc
        with _straight(fd, mode, seekable, target) as handle:
            yield handle
        return
    # A symlink to a regular file keeps being a symlink: the file it points to is the one replaced.
    real = Path(os.path.realpath(target))
    folder = real.parent
    remove_stale_parts(real)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{real.name}.{os.getpid()}-", suffix=".part", dir=folder)
    except OSError as exc:
        raise OutputError(f"cannot write {target}: {exc.strerror or exc}") from exc
    try:
        # The lock says "a live process is writing this": `remove_stale_parts` of another run leaves it alone.
        # (A file system without flock: no lock, and then no other run ever takes this file for stale either.)
        with contextlib.suppress(OSError):
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with os.fdopen(fd, mode) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
            _copy_mode(handle.fileno(), info)
            os.replace(tmp, real)
    except OSError as exc:
        _silent_unlink(tmp)
        raise OutputError(f"cannot write {target}: {exc.strerror or exc}") from exc
    except BaseException:
        _silent_unlink(tmp)
        raise


def check_target(path: str | os.PathLike, *, option: str | None = None) -> os.stat_result | None:
    """What is at an output path: None for a new path, its stat for a regular file, a device or a FIFO.

    Raises `OutputError` for a folder, a socket or a block device (never replaced), and for a new path whose
    folder does not exist. Commands call it before any work, so a bad ``-o`` fails in a blink.
    """
    if standard_stream(path) is not None:
        return None
    target = Path(path)
    shown = f"{option} {target}" if option else str(target)
    try:
        info = os.stat(target)
    except FileNotFoundError:
        info = None
    except OSError as exc:
        raise OutputError(f"cannot write {shown}: {exc.strerror or exc}") from exc
    if info is None:
        folder = Path(os.path.realpath(target)).parent
        if not folder.is_dir():
            given = target.parent if str(target.parent) else Path(".")
            raise OutputError(f"cannot write {shown}: folder {given} does not exist")
        return None
    if stat.S_ISDIR(info.st_mode):
        raise OutputError(f"cannot write {shown}: it is a folder; give a file name")
    if not (stat.S_ISREG(info.st_mode) or stat.S_ISCHR(info.st_mode) or stat.S_ISFIFO(info.st_mode)):
        raise OutputError(f"cannot write {shown}: not a regular file, a character device or a FIFO")
    return info


def standard_stream(path: str | os.PathLike) -> int | None:
    """The file descriptor that ``path`` names: ``-`` and /dev/stdout → 1, /dev/fd/N → N (symlinks followed)."""
    text = os.fspath(path)
    for _ in range(40):  # the kernel's own limit on symlink hops
        if text in _STD_PATHS:
            return _STD_PATHS[text]
        match = _FD_PATH.match(text)
        if match:
            return int(match.group(1))
        try:
            link = os.readlink(text)
        except OSError:
            return None
        text = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(text)), link))
    return None


def _dup(fd_number: int, path) -> int:
    try:
        return os.dup(fd_number)
    except OSError as exc:
        raise OutputError(f"cannot write {os.fspath(path)}: file descriptor {fd_number} is not open") from exc


@contextlib.contextmanager
def _straight(fd: int, mode: str, seekable: bool, shown) -> Iterator[IO]:
    """Write into an open descriptor (a device, FIFO or stream), through a spool file when asked to seek."""
    try:
        if seekable:
            with tempfile.TemporaryFile(mode if "+" in mode else mode.replace("w", "w+")) as spool:
                yield spool
                spool.flush()
                spool.seek(0)
                with os.fdopen(fd, "wb", closefd=False) as sink:
                    shutil.copyfileobj(spool.buffer if hasattr(spool, "buffer") else spool, sink, 1 << 20)
        else:
            with os.fdopen(fd, mode, closefd=False) as handle:
                yield handle
    except OSError as exc:
        if exc.errno == errno.EPIPE:
            raise ReaderGoneError(f"the reader of {os.fspath(shown)} went away") from exc
        raise OutputError(f"cannot write {os.fspath(shown)}: {exc.strerror or exc}") from exc
    finally:
        with contextlib.suppress(OSError):
            os.close(fd)


def _copy_mode(fd: int, old: os.stat_result | None) -> None:
    """The new file gets the old file's permission bits and owner, or the usual mode (umask) for a new path."""
    if old is None:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes 0600; a finished file gets the usual mode
        return
    with contextlib.suppress(OSError):  # only root (or the owner, for the group) may; otherwise we become owner
        os.fchown(fd, old.st_uid, old.st_gid)
    os.fchmod(fd, stat.S_IMODE(old.st_mode))


def remove_stale_parts(target: Path) -> list[Path]:
    """Remove temporary files of ``target`` left by killed runs; returns the ones removed."""
    removed = []
    for part in _stale_parts(target):
        with contextlib.suppress(OSError):
            part.unlink()
            removed.append(part)
    return removed


def _stale_parts(target: Path) -> Iterable[Path]:
    """``.NAME.PID-XXXXXXXX.part`` files beside ``target`` that no live process can be writing.

    A writer holds an exclusive flock on its temporary file until it renames it, and the lock dies with the
    process (even on SIGKILL). A file is stale when its lock can be taken AND the pid in its name is not a
    running process on this machine (that covers the instant between the writer creating the file and locking
    it). Files of an older bertcli (no pid in the name) must also be unlocked and untouched for ten minutes.
    """
    pattern = re.compile(r"^\." + re.escape(target.name) + r"\.(?:(\d+)-)?[A-Za-z0-9_]{8}\.part$")
    try:
        entries = list(os.scandir(target.parent))
    except OSError:
        return
    for entry in entries:
        match = pattern.match(entry.name)
        if not match or not entry.is_file(follow_symlinks=False):
            continue
        pid = int(match.group(1)) if match.group(1) else None
        if pid is not None and _pid_alive(pid):
            continue
        if pid is None:
            with contextlib.suppress(OSError):
                if time.time() - entry.stat(follow_symlinks=False).st_mtime < LEGACY_PART_AGE_S:
                    continue
        if _unlocked(entry.path):
            yield Path(entry.path)


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # EPERM: it exists, owned by someone else
        return True
    return True


def _unlocked(path: str) -> bool:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except OSError:
        return False
    finally:
        os.close(fd)


def refuse_overwrite(out: str | os.PathLike | None, *, option: str = "-o", inputs: Iterable = (), model=None) -> None:
    """Refuse (exit 2) an output path that is one of the inputs, or inside the model's folder, or a model file.

    ``inputs`` are paths read by this run (``--file``); ``model`` is a `ResolvedModel` (its folder — for a hub
    model the whole cached repo — and the files in it, symlinks followed, are protected).
    """
    if out is None or standard_stream(out) is not None:
        return
    out_path = Path(out).expanduser()
    for given in inputs:
        if given is None or str(given) == "-":
            continue
        if _same_file(out_path, Path(given).expanduser()):
            kind = "folder" if os.path.isdir(given) else "file"
            raise UsageError(f"{option} {out} is the input {kind} {given}: writing it would destroy the input; "
                             "choose another output name")
    if model is None:
        return
    folders = [Path(model.path)]
    if getattr(model, "source", None) == "hub" and Path(model.path).parent.name == "snapshots":
        folders.append(Path(model.path).parents[1])  # models--org--name: snapshots, blobs, refs
    spots = {os.path.realpath(out_path), os.path.join(os.path.realpath(out_path.parent), out_path.name)}
    for folder in folders:
        real = os.path.realpath(folder)
        if any(spot == real or spot.startswith(real.rstrip(os.sep) + os.sep) for spot in spots):
            raise UsageError(f"{option} {out} is inside the model's folder {folder}: bertcli never writes into a "
                             "model; choose another output path")
    if not out_path.exists():
        return
    candidates = [model.tokenizer_file] if getattr(model, "tokenizer_file", None) else []
    with contextlib.suppress(OSError):
        for root, _dirs, names in os.walk(model.path):
            candidates.extend(Path(root) / name for name in names)
    for candidate in candidates:
        if _same_file(out_path, Path(candidate)):
            raise UsageError(f"{option} {out} is the model file {candidate}: bertcli never writes into a "
                             "model; choose another output path")


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _silent_unlink(path: str) -> None:
    with contextlib.suppress(OSError):
        os.unlink(path)




# ---------------------------------------------------------------------------------------------------------
# stdin/stdout: errors on the streams themselves become bertcli errors


class _GuardedStdout(io.RawIOBase):
    """fd 1 for `sys.stdout`: a reader that went away → `ReaderGoneError` (141), a full disk or any other write
    error → `OutputError` (9), a closed stdout → `OutputError` at the first write. Not OSError, so nothing on
    the way (click's own EPIPE handler exits 1) mistakes them. After the first failure writes are dropped, so
    the flush at interpreter exit cannot fail a second time."""

    def __init__(self, fd: int, *, closed: bool = False):
        super().__init__()
        self._fd = fd
        self._was_closed = closed
        self.failed = False

    def writable(self) -> bool:
        return True

    def fileno(self) -> int:
        return self._fd

    def isatty(self) -> bool:
        return not self._was_closed and os.isatty(self._fd)

    def write(self, data) -> int | None:
        if self.failed:
            return len(data)
        if self._was_closed:
            self.failed = True
            raise OutputError("cannot write to stdout: it is closed (run without >&-, or redirect it to a file)")
        try:
            return os.write(self._fd, data)
        except BlockingIOError:
            return None
        except OSError as exc:
            self.failed = True
            if exc.errno == errno.EPIPE:
                raise ReaderGoneError("the reader of stdout went away") from exc
            raise OutputError(f"cannot write to stdout: {exc.strerror or exc}") from exc


class _ClosedStdin(io.RawIOBase):
    """fd 0 was closed when bertcli started (``<&-``): reading it is a usage error, not a crash."""

    def readable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return False

    def readinto(self, buffer) -> int:
        raise UsageError("no input: stdin is closed; give TEXT arguments or --file FILE")


def guard_stdio() -> _GuardedStdout:
    """Put `sys.stdout` on a `_GuardedStdout` and make a closed stdin/stdout/stderr safe; returns the guard.

    A closed descriptor 0, 1 or 2 is first pointed at /dev/null, so that no file this run opens takes its
    number (data meant for stdout must never land in an output file); the streams then say it was closed.
    """
    closed = {}
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
            closed[fd] = False
        except OSError:
            closed[fd] = True
            null = os.open(os.devnull, os.O_RDWR)
            if null != fd:
                os.dup2(null, fd)
                os.close(null)
    if closed[0]:
        sys.stdin = io.TextIOWrapper(io.BufferedReader(_ClosedStdin()), encoding="utf-8")
    if closed[2]:
        sys.stderr = open(os.devnull, "w", encoding="utf-8")  # noqa: SIM115 - lives as long as the process
    old = sys.stdout
    if old is not sys.__stdout__:
        # A caller redirected stdout inside Python (`redirect_stdout`, a test's capture): its writes go there,
        # not to fd 1, so they are left alone; the guard returned is not installed.
        return _GuardedStdout(1, closed=closed[1])
    raw = _GuardedStdout(1, closed=closed[1])
    sys.stdout = io.TextIOWrapper(
        io.BufferedWriter(raw),
        encoding=getattr(old, "encoding", None) or "utf-8",
        errors=getattr(old, "errors", None) or "strict",
        line_buffering=raw.isatty() or bool(getattr(old, "line_buffering", False)),
        write_through=bool(getattr(old, "write_through", False)),
    )
    if old is not None:
        with contextlib.suppress(Exception):
            old.flush()
    return raw

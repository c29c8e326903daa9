"""Downloads from the hub through huggingface_hub: file selection, dry runs, progress, lock waits, errors.

All HTTP, locking and cache layout are huggingface_hub's (``HfApi.resolve_revision``, ``list_repo_tree``,
``get_cached_repo_tree``, ``snapshot_download``); this module decides *which* files to fetch and reports
progress through a small callback interface (`DownloadProgress`), so it holds no Rich or Typer.

File selection (`select_files`) fits running a model with transformers: config, tokenizer files and ONE
weights format — ``*.safetensors`` when the repo has it, else pickle weights (``pytorch_model.bin``) only
when allowed, because unpickling a file can run arbitrary code.
"""

from __future__ import annotations

import contextlib
import fnmatch
import glob
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from bertcli.env import hub_cache_dir, is_offline
from bertcli.errors import BertcliError, HubError, ModelNotFoundError, OfflineError, UsageError
from bertcli.units import format_bytes

#: Config and tokenizer files a run needs (whichever the repo has).
RUN_FILES = (
    "config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.txt",
    "vocab.json",
    "merges.txt",
    "spiece.model",
    "sentencepiece.bpe.model",
    "spm.model",
    "added_tokens.json",
    "generation_config.json",
    "modules.json",
    "sentence_bert_config.json",
    "config_sentence_transformers.json",
    "1_Pooling/config.json",
)

#: Weight formats that are Python pickles (loading one can execute code).
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt")

#: How long to wait for another process's download lock before giving up (seconds; 0 = forever).
DEFAULT_LOCK_TIMEOUT = 600.0

_SAFETENSORS_INDEX = "model.safetensors.index.json"
_PICKLE_WEIGHTS = re.compile(r"^pytorch_model(-\d+-of-\d+)?\.bin$|^pytorch_model\.bin\.index\.json$")


class LockTimeoutError(HubError):
    """Another process held a download lock for longer than --lock-timeout."""


# ---------------------------------------------------------------------------------------------------------
# progress


class DownloadProgress(Protocol):
    """What a download reports; the CLI implements it with Rich on stderr. Methods may be called from threads."""

    def start(self, *, description: str, total_bytes: int, total_files: int) -> None: ...
    def advance(self, nbytes: int) -> None: ...
    def file_done(self) -> None: ...
    def notice(self, message: str) -> None: ...
    def finish(self, *, ok: bool) -> None: ...


class SilentProgress:
    """A `DownloadProgress` that reports nothing (library use, -q); it still counts bytes."""

    def __init__(self) -> None:
        self.bytes = 0
        self.files = 0
        self.notices: list[str] = []
        self._lock = threading.Lock()

    def start(self, *, description: str, total_bytes: int, total_files: int) -> None:
        pass

    def advance(self, nbytes: int) -> None:
        with self._lock:
            self.bytes += nbytes

    def file_done(self) -> None:
        with self._lock:
            self.files += 1

    def notice(self, message: str) -> None:
        self.notices.append(message)

    def finish(self, *, ok: bool) -> None:
        pass


class TextProgress(SilentProgress):
    """Progress as a few plain lines through a callback (what to fetch, waits, what was fetched)."""

    def __init__(self, notify: Callable[[str], None]) -> None:
        super().__init__()
        self.notify = notify
        self._started = 0.0

    def start(self, *, description: str, total_bytes: int, total_files: int) -> None:
        self._started = time.perf_counter()
        if total_bytes:
            self.notify(f"downloading {description}: {total_files} files, {format_bytes(total_bytes)}")

    def notice(self, message: str) -> None:
        self.notify(message)

    def finish(self, *, ok: bool) -> None:
        if ok and self.bytes:
            seconds = max(time.perf_counter() - self._started, 1e-6)
            self.notify(f"fetched {format_bytes(self.bytes)} in {seconds:.1f}s "
                        f"({format_bytes(int(self.bytes / seconds))}/s)")


def default_progress(notify: Callable[[str], None] | None = None) -> DownloadProgress:
    """Plain lines through ``notify`` when given, else nothing."""
    return TextProgress(notify) if notify else SilentProgress()


def _tqdm_adapter(progress: DownloadProgress) -> type:
    """A tqdm-compatible class for snapshot_download that forwards bytes written and files done to ``progress``.

    snapshot_download creates one bar for files (no unit), one for bytes written ("Reconstructing") and one
    for network bytes ("Downloading bytes"); only the first two are forwarded, so bytes are not counted twice.
    """

    class _Bar:
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            self.total = kwargs.get("total")
            self.n = kwargs.get("initial") or 0
            self.format_dict: dict = {}
            self.disable = False
            desc = str(kwargs.get("desc") or "")
            if kwargs.get("unit") == "B":
                self._kind = "ignore" if desc.startswith("Downloading") else "bytes"
            else:
                self._kind = "files"

        def update(self, n: int | float | None = 1) -> None:
            n = int(n or 0)
            self.n += n
            if self._kind == "bytes" and n:
                progress.advance(n)
            elif self._kind == "files":
                for _ in range(n):
                    progress.file_done()

        def refresh(self, *args: Any, **kwargs: Any) -> None:
            pass

        def set_description(self, *args: Any, **kwargs: Any) -> None:
            pass

        set_description_str = set_postfix_str = set_postfix = set_description

        def close(self) -> None:
            pass

        def __enter__(self) -> _Bar:
            return self

        def __exit__(self, *exc: Any) -> None:
            pass

    return _Bar


# ---------------------------------------------------------------------------------------------------------
# file selection


@dataclass(frozen=True)
class RepoEntry:
    """A file of a repo at a commit: path and size (bytes), from the hub's tree listing."""

    path: str
    size: int


def is_pickle(path: str) -> bool:
    return path.lower().endswith(PICKLE_SUFFIXES)


def _matches(path: str, patterns: Iterable[str]) -> bool:
    return any(fnmatch.fnmatchcase(path, p) or fnmatch.fnmatchcase(path, p.rstrip("/") + "/*") for p in patterns)


def validate_repo_path(name: str) -> None:
    """A file name inside a repo: relative, no ``..`` parts, no backslashes."""
    parts = name.split("/")
    if not name or name.startswith("/") or "\\" in name or any(p in ("", ".", "..") for p in parts):
        raise UsageError(f"{name!r} is not a file path inside a repo (relative, no '..')")


def select_files(
    available: Iterable[str],
    *,
    files: Iterable[str] | None = None,
    include: Iterable[str] | None = None,
    exclude: Iterable[str] | None = None,
    allow_pickle: bool = False,
    pickle_only: str = "error",
    repo_label: str = "the repo",
) -> list[str]:
    """The files to fetch, sorted.

    Explicit ``files`` are taken as they are (each must exist); else ``include`` globs choose; else the run
    default: `RUN_FILES` present plus one weights format (top-level safetensors, else pickle weights).
    ``exclude`` globs then drop files. Pickle files need ``allow_pickle``: without it an explicit request is a
    `UsageError`, and a repo whose only weights are pickles is an error (``pickle_only="error"``) or gets no
    weights (``pickle_only="skip"``: the resolver's choice, so tokenize/config still work).
    """
    available = list(available)
    present = set(available)
    exclude = list(exclude or [])
    explicit = False
    if files:
        chosen = []
        for name in files:
            validate_repo_path(name)
            if name not in present:
                shown = ", ".join(sorted(present)[:12]) + (", …" if len(present) > 12 else "")
                raise ModelNotFoundError(f"{repo_label} has no file {name!r}", hint=f"files: {shown}")
            chosen.append(name)
        explicit = True
    elif include:
        include = list(include)
        chosen = [p for p in available if _matches(p, include)]
        if not chosen:
            raise UsageError(f"--include {' '.join(include)} matches no file of {repo_label}",
                             hint=f"files: {', '.join(sorted(present)[:12])}")
        explicit = True
    else:
        chosen = [p for p in RUN_FILES if p in present]
        top = [p for p in available if "/" not in p]
        safetensors = sorted(p for p in top if p.endswith(".safetensors"))
        pickles = sorted(p for p in top if _PICKLE_WEIGHTS.match(p))
        if safetensors:
            chosen += safetensors + ([_SAFETENSORS_INDEX] if _SAFETENSORS_INDEX in present else [])
        elif pickles:
            if allow_pickle:
                chosen += pickles
            elif pickle_only == "error":
                raise UsageError(
                    f"{repo_label} has no safetensors weights, only pickle ones ({', '.join(pickles)}); "
                    "loading a pickle can run arbitrary code, so bertcli does not fetch them by default",
                    hint="pass --allow-pickle if you trust this repo",
                )
    chosen = [p for p in dict.fromkeys(chosen) if not (exclude and _matches(p, exclude))]
    risky = [p for p in chosen if is_pickle(p)]
    if risky and not allow_pickle:
        if explicit:
            raise UsageError(
                f"{', '.join(risky)} {'is a pickle file' if len(risky) == 1 else 'are pickle files'}: loading a "
                "pickle can run arbitrary code", hint="pass --allow-pickle if you trust this repo")
        chosen = [p for p in chosen if not is_pickle(p)]
    return sorted(chosen)


# ---------------------------------------------------------------------------------------------------------
# results


@dataclass
class PlannedFile:
    """One file of a dry run: its size and whether it is already on disk."""

    path: str
    size: int | None
    cached: bool

    def record(self) -> dict:
        return {"file": self.path, "size": self.size, "cached": self.cached, "will_download": not self.cached}


@dataclass
class DownloadResult:
    """What a download (or a dry run) did: the snapshot folder and the files in it."""

    repo_id: str
    revision: str
    commit: str | None
    path: Path
    files: list[str]
    bytes: int
    downloaded_bytes: int = 0
    local_dir: bool = False
    planned: list[PlannedFile] = field(default_factory=list)
    seconds: float = 0.0

    def record(self) -> dict:
        return {
            "repo": self.repo_id,
            "revision": self.revision,
            "commit": self.commit,
            "path": str(self.path),
            "files": self.files,
            "bytes": self.bytes,
            "downloaded_bytes": self.downloaded_bytes,
        }


# ---------------------------------------------------------------------------------------------------------
# huggingface_hub logging: lock waits and resumed transfers become notices; the rest stays quiet


class _HubLogRouter(logging.Handler):
    _LOCK_RE = re.compile(r"waiting to acquire lock on (?P<path>.+?) \(elapsed: (?P<elapsed>[\d.]+) seconds\)")

    def __init__(self, progress: DownloadProgress, lock_timeout: float | None, repo_label: str) -> None:
        super().__init__(logging.INFO)
        self.progress = progress
        self.lock_timeout = lock_timeout
        self.repo_label = repo_label
        self.announced: set[str] = set()

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        match = self._LOCK_RE.search(message)
        if match:
            path, elapsed = match["path"], float(match["elapsed"])
            if path not in self.announced:
                self.announced.add(path)
                limit = f"up to {self.lock_timeout:g}s" if self.lock_timeout else "until it is released"
                self.progress.notice(f"waiting for another process downloading {self.repo_label} "
                                     f"(lock {path}); waiting {limit}")
            if self.lock_timeout and elapsed >= self.lock_timeout - 1e-6:
                raise LockTimeoutError(
                    f"another process kept the download lock {path} for {elapsed:.0f}s (--lock-timeout "
                    f"{self.lock_timeout:g})",
                    hint="wait for the other download to finish and retry, or raise --lock-timeout "
                         "(0 waits forever)")
        elif "Trying to resume download" in message:
            self.progress.notice("connection lost mid-file; resuming where it stopped")
        elif "Could not reach the Hub" in message:
            self.progress.notice(f"the hub is unreachable; using the cached revision of {self.repo_label}")


@contextlib.contextmanager
def _hub_logging(progress: DownloadProgress, lock_timeout: float | None, repo_label: str) -> Iterator[None]:
    from huggingface_hub import constants

    root = logging.getLogger("huggingface_hub")
    fixes = logging.getLogger("huggingface_hub.utils._fixes")  # where WeakFileLock logs its waits
    router = _HubLogRouter(progress, lock_timeout, repo_label)
    saved = (root.handlers[:], root.propagate, fixes.level, constants.FILELOCK_LOG_EVERY_SECONDS)
    root.handlers = [router]
    root.propagate = False
    fixes.setLevel(logging.INFO)
    constants.FILELOCK_LOG_EVERY_SECONDS = min(1.0, lock_timeout) if lock_timeout else 1.0
    try:
        yield
    finally:
        root.handlers, root.propagate = saved[0], saved[1]
        fixes.setLevel(saved[2])
        constants.FILELOCK_LOG_EVERY_SECONDS = saved[3]


# ---------------------------------------------------------------------------------------------------------
# listing and cache state


def _entries_from_files(files: Iterable[Any]) -> list[RepoEntry]:
    from huggingface_hub.hf_api import RepoFile

    return [RepoEntry(f.path, int(f.lfs.size if getattr(f, "lfs", None) else f.size or 0))
            for f in files if isinstance(f, RepoFile)]


def cached_listing(repo_id: str, *, revision: str | None, cache_dir: Path,
                   local_dir: Path | None = None) -> list[RepoEntry] | None:
    """The repo's file listing as huggingface_hub cached it on an earlier download (no network), or None."""
    from huggingface_hub import get_cached_repo_tree

    try:
        tree = get_cached_repo_tree(repo_id, revision=revision, cache_dir=cache_dir, local_dir=local_dir)
    except Exception:  # noqa: BLE001 - CachedRepoTreeNotFoundError, unreadable cache: no listing
        return None
    return _entries_from_files(tree)


def _remember_tree(repo_id: str, commit: str, tree: list, cache: Path, local: Path | None) -> None:
    """Hand the listing to huggingface_hub's tree cache, exactly as snapshot_download stores it, so that the
    download that follows does not list the repo a second time. Best effort: private API, skipped if it moved."""
    try:
        from huggingface_hub._tree_cache import TreeCacheEntry, tree_cache_folder_for_local_dir, write_tree_cache
        from huggingface_hub.hf_api import RepoFile
    except ImportError:
        return
    folder = tree_cache_folder_for_local_dir(str(local)) if local is not None else str(cache / _repo_folder(repo_id))
    entries = {
        f.path: TreeCacheEntry(size=f.size, blob_id=f.blob_id, lfs_sha256=f.lfs.sha256 if f.lfs else None,
                               lfs_size=f.lfs.size if f.lfs else None, xet_hash=f.xet_hash)
        for f in tree if isinstance(f, RepoFile)
    }
    with contextlib.suppress(Exception):
        write_tree_cache(folder, commit, entries)


def _is_cached(repo_id: str, path: str, *, commit: str, cache_dir: Path, local_dir: Path | None) -> bool:
    if local_dir is not None:
        return (local_dir / path).is_file()
    from huggingface_hub import try_to_load_from_cache

    return isinstance(try_to_load_from_cache(repo_id, path, cache_dir=cache_dir, revision=commit), str)


def cached_snapshot(repo_id: str, *, revision: str | None = None, cache_dir=None,
                    allow_partial: bool = False) -> Path | None:
    """The cached snapshot folder of a repo revision holding what a run needs, or None. No network.

    "What a run needs" is the default selection over the listing cached with the snapshot (when there is
    one). With ``allow_partial`` a snapshot missing some of those files is returned too.
    """
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import IncompleteSnapshotError

    cache = hub_cache_dir(cache_dir)
    listing = cached_listing(repo_id, revision=revision, cache_dir=cache)
    patterns = None
    if listing is not None:
        patterns = [glob.escape(p) for p in select_files([e.path for e in listing], pickle_only="skip")] or None
    try:
        return Path(snapshot_download(repo_id, revision=revision, cache_dir=cache, local_files_only=True,
                                      allow_patterns=patterns))
    except IncompleteSnapshotError as exc:
        if allow_partial and getattr(exc, "snapshot_path", None):
            return Path(exc.snapshot_path)
        return None
    except Exception:  # noqa: BLE001 - LocalEntryNotFoundError, bad revision, unreadable cache: not cached
        return None


# ---------------------------------------------------------------------------------------------------------
# download


def _map_error(exc: BaseException, repo_id: str, revision: str | None) -> BaseException:
    if isinstance(exc, BertcliError):
        return exc
    return hub_error(exc, repo_id, revision)


def download(
    repo_id: str,
    *,
    revision: str | None = None,
    files: Iterable[str] | None = None,
    include: Iterable[str] | None = None,
    exclude: Iterable[str] | None = None,
    allow_pickle: bool = False,
    pickle_only: str = "error",
    cache_dir: str | os.PathLike | None = None,
    local_dir: str | os.PathLike | None = None,
    token: str | bool | None = None,
    offline: bool | None = None,
    endpoint: str | None = None,
    dry_run: bool = False,
    lock_timeout: float | None = DEFAULT_LOCK_TIMEOUT,
    progress: DownloadProgress | None = None,
    max_workers: int = 8,
) -> DownloadResult:
    """Fetch the selected files of ``repo_id`` (see `select_files`) into the HF cache or ``local_dir``.

    Online, one request resolves the revision; the listing comes from huggingface_hub's tree cache when the
    commit was seen before (else one more request), and files already cached are not requested again.
    Offline, nothing touches the network: the cached snapshot is returned or `OfflineError` is raised.
    ``dry_run`` returns the plan (sizes, cached or not) without fetching anything.
    """
    progress = progress or SilentProgress()
    cache = hub_cache_dir(cache_dir)
    local = Path(local_dir).expanduser().resolve() if local_dir is not None else None
    label = repo_id + (f"@{revision}" if revision else "")
    select = dict(files=files, include=include, exclude=exclude, allow_pickle=allow_pickle,
                  pickle_only=pickle_only, repo_label=label)
    if is_offline(offline):
        return _download_offline(repo_id, revision=revision, cache=cache, local=local, select=select,
                                 dry_run=dry_run, label=label, why=_offline_source(offline))

    from huggingface_hub import HfApi

    started = time.perf_counter()
    api = HfApi(endpoint=endpoint, token=token)
    with _hub_logging(progress, lock_timeout, label):
        rev, listing = _resolve_and_list(api, repo_id, revision, cache=cache, local=local, token=token)
    sizes = {e.path: e.size for e in listing}
    chosen = select_files(sizes, **select)
    cached = {p for p in chosen if _is_cached(repo_id, p, commit=rev.resolved, cache_dir=cache, local_dir=local)}
    planned = [PlannedFile(p, sizes.get(p), p in cached) for p in chosen]
    total = sum(sizes.get(p, 0) for p in chosen)
    to_fetch = sum(sizes.get(p, 0) for p in chosen if p not in cached)
    result = DownloadResult(repo_id, revision or "main", rev.resolved, Path(), chosen, total,
                            local_dir=local is not None, planned=planned)
    if dry_run:
        result.path = local if local is not None else cache / _repo_folder(repo_id) / "snapshots" / rev.resolved
        return result
    if not chosen:
        raise UsageError(f"nothing to download: every file of {label} was excluded")
    counter = _CountingProgress(progress)
    progress.start(description=label, total_bytes=to_fetch, total_files=len(chosen))
    ok = False
    try:
        with _hub_logging(progress, lock_timeout, label):
            folder = _fetch(repo_id, revision, rev, chosen, cache=cache, local=local, token=token,
                            endpoint=endpoint, counter=counter, max_workers=max_workers)
        ok = True
    finally:
        progress.finish(ok=ok)
    result.path = Path(folder)
    result.downloaded_bytes = counter.bytes
    result.seconds = time.perf_counter() - started
    return result


def _resolve_and_list(api: Any, repo_id: str, revision: str | None, *, cache: Path, local: Path | None,
                      token: Any) -> tuple[Any, list]:
    """The revision resolved to a commit (one request) and the repo's file listing at it (huggingface_hub's tree
    cache when the commit was seen before, else one more request, remembered)."""
    try:
        rev = api.resolve_revision(repo_id, revision=revision, cache_dir=cache, token=token)
        listing = cached_listing(repo_id, revision=rev.resolved, cache_dir=cache, local_dir=local)
        if listing is None:
            tree = list(api.list_repo_tree(repo_id, recursive=True, revision=rev.resolved, token=token))
            _remember_tree(repo_id, rev.resolved, tree, cache, local)
            listing = _entries_from_files(tree)
    except Exception as exc:  # noqa: BLE001 - mapped to one clear error
        raise _map_error(exc, repo_id, revision) from exc
    return rev, listing


def _fetch(repo_id: str, revision: str | None, rev: Any, chosen: list[str], *, cache: Path, local: Path | None,
           token: Any, endpoint: str | None, counter: _CountingProgress, max_workers: int) -> str:
    """Download the chosen files at ``rev`` (those cached already are skipped); the snapshot folder."""
    from huggingface_hub import snapshot_download

    try:
        return snapshot_download(
            repo_id, revision=rev, cache_dir=cache, local_dir=local, token=token, endpoint=endpoint,
            allow_patterns=[glob.escape(p) for p in chosen], tqdm_class=_tqdm_adapter(counter),
            max_workers=max_workers,
        )
    except Exception as exc:  # noqa: BLE001 - mapped to one clear error
        raise _map_error(exc, repo_id, revision) from exc


class _CountingProgress:
    """Forwards to a progress report while counting the bytes written (for the result record)."""

    def __init__(self, inner: DownloadProgress) -> None:
        self.inner = inner
        self.bytes = 0
        self._lock = threading.Lock()

    def advance(self, nbytes: int) -> None:
        with self._lock:
            self.bytes += nbytes
        self.inner.advance(nbytes)

    def file_done(self) -> None:
        self.inner.file_done()


def _repo_folder(repo_id: str) -> str:
    from huggingface_hub.file_download import repo_folder_name

    return repo_folder_name(repo_id=repo_id, repo_type="model")


def _offline_source(offline: bool | None) -> str:
    """What switched offline mode on, as the user can undo it."""
    if offline:
        return "--offline"
    for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        if os.environ.get(var, "").lower() in ("1", "true", "yes", "on"):
            return f"{var}={os.environ[var]}"
    return "offline mode"


def _download_offline(repo_id, *, revision, cache, local, select, dry_run, label,
                      why: str = "offline mode") -> DownloadResult:
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    listing = cached_listing(repo_id, revision=revision, cache_dir=cache, local_dir=local)
    sizes = {e.path: e.size for e in listing} if listing is not None else None
    chosen = select_files(sizes, **select) if sizes is not None else None
    try:
        folder = Path(snapshot_download(repo_id, revision=revision, cache_dir=cache, local_dir=local,
                                        local_files_only=True,
                                        allow_patterns=[glob.escape(p) for p in chosen] if chosen else None))
    except (LocalEntryNotFoundError, ValueError, OSError) as exc:
        where = local if local is not None else cache
        # Not "run bertcli download …": that is what just failed. Downloading needs the hub; without it only
        # files already on disk help (a folder holding the model, checked by --local-dir or used with -m).
        raise OfflineError(f"{label} is not (completely) downloaded in {where} and offline mode is on ({why})",
                           hint=f"downloading needs the hub: run it again with the network and without {why}"
                                + (f"; offline, --local-dir only takes a folder that already holds the model"
                                   if local is not None else ", or point --local-dir (or a command's -m) at a "
                                   "folder that already holds the model")) from exc
    if chosen is None:
        chosen = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*")
                        if p.is_file() and ".cache" not in p.relative_to(folder).parts)
        sizes = {p: (folder / p).stat().st_size for p in chosen}
    commit = folder.name if local is None and len(folder.name) == 40 else None
    planned = [PlannedFile(p, sizes.get(p), (folder / p).is_file()) for p in chosen]
    return DownloadResult(repo_id, revision or "main", commit, folder, chosen, sum(sizes.get(p, 0) for p in chosen),
                          local_dir=local is not None, planned=planned)


def download_for_run(repo_id: str, *, revision: str | None = None, cache_dir=None, token=None,
                     progress: DownloadProgress | None = None, notify: Callable[[str], None] | None = None,
                     lock_timeout: float | None = DEFAULT_LOCK_TIMEOUT) -> Path:
    """Download what running ``repo_id`` needs into the HF cache and return the snapshot folder.

    The same code as `bertcli download` with the default selection, except that a repo with only pickle
    weights gets its config and tokenizer but no weights (commands that need weights then say so).
    Progress: ``progress`` (the CLI passes its Rich bar), else plain lines through ``notify``.
    """
    return download(repo_id, revision=revision, cache_dir=cache_dir, token=token, pickle_only="skip",
                    progress=progress or default_progress(notify), lock_timeout=lock_timeout).path


def hub_hint(repo_id: str, revision: str | None) -> str:
    rev = f" --revision {revision}" if revision else ""
    return f"run `bertcli download {repo_id}{rev}` where the hub is reachable, or pass a local model folder"


def hub_error(exc: BaseException, repo_id: str, revision: str | None = None) -> Exception:
    """Map a huggingface_hub / network exception to a bertcli error with a hint (``exc`` itself if unknown).

    huggingface_hub wraps the real cause of a failed file request in ``LocalEntryNotFoundError`` ("not in the
    cache"); the cause chain is searched first so that 403, gated, or a dropped connection is named as such.
    """
    from huggingface_hub import errors as hf_errors

    rev = f"@{revision}" if revision else ""
    label = f"{repo_id}{rev}"
    chain: list[BaseException] = []
    cur: BaseException | None = exc
    while cur is not None and cur not in chain and len(chain) < 8:
        chain.append(cur)
        cur = cur.__cause__ or cur.__context__
    net_names = ("ConnectError", "ConnectTimeout", "ReadTimeout", "WriteTimeout", "PoolTimeout", "TimeoutException",
                 "RemoteProtocolError", "ReadError", "WriteError", "NetworkError", "TransportError", "ProxyError")
    for err in chain:
        status = getattr(getattr(err, "response", None), "status_code", None)
        if isinstance(err, hf_errors.GatedRepoError):
            why = "no token was sent (401)" if status == 401 else f"the token has no access ({status})"
            return HubError(f"{repo_id} is gated and {why}: accept its terms on the hub page, then pass a token",
                            hint="--token or HF_TOKEN")
        if isinstance(err, hf_errors.RevisionNotFoundError):
            return ModelNotFoundError(f"{repo_id} has no revision {revision!r}", hint="check the branch, tag or commit")
        if isinstance(err, hf_errors.RepositoryNotFoundError):
            if status in (401, 403):
                return HubError(f"{repo_id}: no such model, or it is private and no valid token was sent ({status})",
                                hint="check the id, or pass a token with --token or HF_TOKEN")
            return ModelNotFoundError(f"no such model on the hub: {repo_id}", hint="check the id, or pass a token if private")
        if isinstance(err, hf_errors.RemoteEntryNotFoundError):
            url = str(getattr(getattr(err, "response", None), "url", "") or "")
            name = url.split("/resolve/", 1)[-1].split("/", 1)[-1] if "/resolve/" in url else ""
            return ModelNotFoundError(f"{label} has no file {name!r}" if name else f"{label}: file not found on the hub")
        if isinstance(err, hf_errors.HfHubHTTPError) and status is not None:
            if status in (401, 403):
                return HubError(f"{label}: access denied ({status})", hint="pass a token with --token or HF_TOKEN")
            return HubError(f"hub error for {label}: HTTP {status}",
                            hint="the hub may be down; retry later, or use --offline if the model is cached")
    for err in chain:
        if isinstance(err, hf_errors.OfflineModeIsEnabled):
            return OfflineError(f"{label} is not cached and offline mode is on", hint=hub_hint(repo_id, revision))
        if type(err).__name__ in net_names or isinstance(err, (ConnectionError, TimeoutError)):
            detail = str(err).splitlines()[0] if str(err) else type(err).__name__
            return HubError(f"cannot reach the hub for {label}: {detail}",
                            hint="check the network (and HF_ENDPOINT), or use --offline if the model is cached")
    if isinstance(exc, (hf_errors.RevisionResolutionError, hf_errors.LocalEntryNotFoundError)):
        return HubError(f"cannot reach the hub for {label}",
                        hint="check the network (and HF_ENDPOINT), or use --offline if the model is cached")
    if isinstance(exc, OSError) and "Consistency check failed" in str(exc):
        return HubError(f"download of {label} was cut short: {str(exc).splitlines()[0]}", hint="run it again")
    return exc  # type: ignore[return-value]

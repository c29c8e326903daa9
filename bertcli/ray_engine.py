"""Corpus-scale embedding on Ray Data: shards planned on the driver, embedded by an actor pool, written atomically.

The driver lists the input (a text, ``.jsonl`` or ``.parquet`` file, a folder or a glob of them, in sorted
path order), counts its rows once and cuts it into shards of ``shard_rows`` consecutive rows (never across a
file). Row ids are the 0-based row order over all inputs (or ``--id-column``). A shard is therefore a fixed id
range, the same on every run, so a rerun knows exactly which shards are missing.

The shards still to do go into a Ray Dataset (``ray.data.from_items``) mapped by ``map_batches`` over an actor
pool: each actor loads the model once (a callable class), then for each shard reads its rows (by byte range for
text/jsonl, by row groups for parquet), embeds them with token-budget batches exactly as the local path does
(`bertcli.embed.Embedder`), and writes ``part-NNNNN.parquet`` under a temporary name, renamed into place when
complete. The model is resolved once on the driver and the resolved model handed to the actors.

Output: ``part-NNNNN.parquet`` (columns ``id``, optional ``text``, ``vector`` as ``fixed_size_list<float32>``)
plus ``manifest.json``. Reading the shards in name order gives the rows in input order. Bad rows (empty, not
UTF-8, not a JSON object with the text column, or longer than the limit with ``on_long="error"``) are left out,
counted, and listed by id in the manifest and in each shard's footer. ``run.json`` pins the settings of the
run so that a rerun into the same folder with other settings is refused instead of mixing vectors.

Ray, pyarrow and the model libraries are imported inside functions: importing this module costs nothing.
"""

from __future__ import annotations

import contextlib
import glob as globlib
import hashlib
import json
import os
import re
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bertcli.embed import EmbedOptions
from bertcli.errors import BadInputError, BertcliError, MissingDependencyError, OutputError, UsageError
from bertcli.files import atomic_write
from bertcli.inputs import decode_line, utf8_problem

INSTALL_HINT = "pip install 'bertcli[ray]'"
DEFAULT_SHARD_ROWS = 10_000
SHARD_PATTERN = "part-{:05d}.parquet"
MANIFEST_FILE = "manifest.json"
RUN_FILE = "run.json"
META_KEY = b"bertcli"
READ_CHUNK = 1 << 22  # bytes read at a time when counting lines
TEXT_SUFFIXES = (".txt", ".text", ".tsv", ".csv", ".md")
JSONL_SUFFIXES = (".jsonl", ".ndjson", ".json")
PARQUET_SUFFIXES = (".parquet", ".pq")


class RayEngineError(BertcliError):
    """A Ray run failed (a worker failed beyond its retries, the local runtime did not start)."""

    exit_code = 1


class RayClusterError(RayEngineError):
    """The Ray cluster named with --address cannot be reached or joined in time (a network error: exit 8)."""

    exit_code = 8


#: seconds joining `--address` may take before the run gives up (exit 8); CONNECT_TIMEOUT_ENV overrides it
CONNECT_TIMEOUT = 30.0
CONNECT_TIMEOUT_ENV = "BERTCLI_RAY_CONNECT_TIMEOUT"


def require_ray():
    """Import ray and ray.data, or say which extra to install."""
    try:
        import pyarrow  # noqa: F401
        import ray
        import ray.data  # noqa: F401
    except ImportError as exc:
        raise MissingDependencyError("--engine ray needs Ray Data and pyarrow, which are not installed",
                                     hint=INSTALL_HINT) from exc
    return ray


# ---------------------------------------------------------------------------------------------------------
# input and the shard plan


@dataclass(frozen=True)
class InputFile:
    path: str
    kind: str  # text | jsonl | parquet
    rows: int
    size: int
    mtime_ns: int


@dataclass(frozen=True)
class Shard:
    """Rows [start, stop) of one input file; ids first_id … first_id + stop - start - 1."""

    index: int
    file: int
    start: int
    stop: int
    first_id: int
    byte_start: int | None = None
    byte_stop: int | None = None

    @property
    def name(self) -> str:
        return SHARD_PATTERN.format(self.index)

    @property
    def rows(self) -> int:
        return self.stop - self.start


def input_kind(path: str | Path) -> str:
    suffix = Path(path).suffix.lower()
    if suffix in PARQUET_SUFFIXES:
        return "parquet"
    if suffix in JSONL_SUFFIXES:
        return "jsonl"
    return "text"


def find_inputs(source: str | Path) -> list[Path]:
    """A file, a folder (its text/jsonl/parquet files, recursively) or a glob → sorted list of files."""
    text = str(source)
    path = Path(text).expanduser()
    if path.is_file():
        return [path]
    if path.is_dir():
        wanted = TEXT_SUFFIXES + JSONL_SUFFIXES + PARQUET_SUFFIXES
        files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in wanted
                       and not any(part.startswith(".") for part in p.relative_to(path).parts))
        if not files:
            raise BadInputError(f"{path} holds no .txt, .jsonl or .parquet files")
        return files
    if any(c in text for c in "*?["):
        files = sorted(Path(p) for p in globlib.glob(os.path.expanduser(text), recursive=True) if Path(p).is_file())
        if not files:
            raise BadInputError(f"no files match {text}")
        return files
    raise BadInputError(f"no such file or folder: {text}")


def plan_shards(paths: list[Path], shard_rows: int = DEFAULT_SHARD_ROWS, *,
                columns: tuple[str, ...] = ()) -> tuple[list[InputFile], list[Shard]]:
    """Count rows and cut every file into shards of at most ``shard_rows`` rows (one read of text files).

    ``columns`` must exist in every Parquet file (checked from its schema here, before any worker starts).
    """
    if shard_rows < 1:
        raise UsageError("--shard-rows must be at least 1")
    files: list[InputFile] = []
    shards: list[Shard] = []
    next_id = 0
    for number, path in enumerate(paths):
        kind = input_kind(path)
        st = path.stat()
        if kind == "parquet":
            rows = _parquet_rows(path, columns)
            bounds = [(s, min(s + shard_rows, rows), None, None) for s in range(0, rows, shard_rows)]
        else:
            if kind == "jsonl" and columns:
                _check_jsonl_fields(path, columns)
            rows, offsets = _line_offsets(path, shard_rows)
            bounds = [(s, min(s + shard_rows, rows), offsets[i], offsets[i + 1])
                      for i, s in enumerate(range(0, rows, shard_rows))]
        # absolute: workers on other nodes (or in other working directories) open the same path
        files.append(InputFile(str(Path(path).resolve()), kind, rows, st.st_size, st.st_mtime_ns))
        for start, stop, b0, b1 in bounds:
            shards.append(Shard(len(shards), number, start, stop, next_id + start, b0, b1))
        next_id += rows
    return files, shards


def _parquet_rows(path: Path, columns: tuple[str, ...] = ()) -> int:
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(path)
    except Exception as exc:  # noqa: BLE001 - any parquet failure: one clear line
        raise BadInputError(f"{path}: not a readable Parquet file ({exc})") from exc
    names = pf.schema_arrow.names
    for column in columns:
        if column not in names:
            raise BadInputError(f"{path} has no column {column!r} (columns: {', '.join(repr(n) for n in names)})",
                                hint="name the text and id columns with --text-column and --id-column")
    return pf.metadata.num_rows


JSONL_PROBE_LINES = 100


def _check_jsonl_fields(path: Path, columns: tuple[str, ...]) -> None:
    """Refuse a JSONL file none of whose first records has a column to read (a misspelt --text-column would
    otherwise embed nothing and call every row bad). Records further on that lack it are bad rows as usual."""
    seen: dict[str, None] = {}
    objects = 0
    try:
        with open(path, "rb") as handle:
            for _, raw in zip(range(JSONL_PROBE_LINES), handle):
                try:
                    record = json.loads(raw)
                except ValueError:
                    continue
                if not isinstance(record, dict):
                    continue
                objects += 1
                seen.update(dict.fromkeys(record))
    except OSError as exc:
        raise BadInputError(f"cannot read {path}: {exc.strerror or exc}") from exc
    if not objects:
        return  # nothing to judge by: the rows are reported as bad one by one
    for column in columns:
        if column not in seen:
            fields = ", ".join(repr(k) for k in seen) or "none"
            raise BadInputError(f"{path} has no field {column!r} in its first {objects} record(s) (fields: {fields})",
                                hint="name the text and id fields with --text-column and --id-column")


def _line_offsets(path: Path, every: int) -> tuple[int, list[int]]:
    """(line count, byte offsets of lines 0, every, 2·every, … and of the end of the file)."""
    offsets = [0]
    rows = 0
    pos = 0
    last = b"\n"
    try:
        with open(path, "rb") as handle:
            while chunk := handle.read(READ_CHUNK):
                n = chunk.count(b"\n")
                if (rows % every) + n >= every:  # a shard boundary falls in this chunk: find it
                    start = 0
                    while True:
                        cut = chunk.find(b"\n", start)
                        if cut < 0:
                            break
                        rows += 1
                        start = cut + 1
                        if rows % every == 0:
                            offsets.append(pos + start)
                else:
                    rows += n
                pos += len(chunk)
                last = chunk[-1:]
    except OSError as exc:
        raise BadInputError(f"cannot read {path}: {exc.strerror or exc}") from exc
    if last != b"\n":
        rows += 1  # a last line without a newline
    if offsets[-1] != pos:
        offsets.append(pos)  # the end of the last, shorter shard
    return rows, offsets


# ---------------------------------------------------------------------------------------------------------
# reading one shard's rows (in the worker)


def read_shard_rows(file: InputFile, shard: Shard, *, text_column: str = "text",
                    id_column: str | None = None) -> list[tuple[Any, str | None, str | None]]:
    """[(id, text or None, reason it is bad or None)] for the shard's rows, in order."""
    if file.kind == "parquet":
        return _parquet_rows_of(file, shard, text_column, id_column)
    with open(file.path, "rb") as handle:
        handle.seek(shard.byte_start)
        data = handle.read(shard.byte_stop - shard.byte_start)
    lines = data.split(b"\n")
    if data.endswith(b"\n"):
        lines.pop()
    if len(lines) != shard.rows:
        raise BadInputError(f"{file.path} changed while being read (shard {shard.index}: "
                            f"{len(lines)} lines where {shard.rows} were counted)")
    out = []
    for offset, raw in enumerate(lines):
        row_id = shard.first_id + offset
        try:
            text = decode_line(raw, first=shard.start + offset == 0)
        except UnicodeDecodeError as exc:
            out.append((row_id, None, f"not UTF-8 ({utf8_problem(exc)})"))
            continue
        if file.kind == "jsonl":
            out.append(_json_row(row_id, text, text_column, id_column))
        else:
            out.append((row_id, text, None if text.strip() else "empty"))
    return out


def _json_row(row_id: int, line: str, text_column: str, id_column: str | None):
    if not line.strip():
        return (row_id if id_column is None else str(row_id), None, "empty")
    try:
        record = json.loads(line)
    except ValueError as exc:
        return (row_id if id_column is None else str(row_id), None, f"not JSON ({exc.msg})")
    if not isinstance(record, dict):
        return (row_id if id_column is None else str(row_id), None, "not a JSON object")
    rid: Any = row_id
    if id_column is not None:
        if record.get(id_column) is None:
            return (str(row_id), None, f"no {id_column!r} field")
        rid = str(record[id_column])
    text = record.get(text_column)
    if not isinstance(text, str):
        return (rid, None, f"no text in {text_column!r}" if text is None else f"{text_column!r} is not a string")
    return (rid, text, None if text.strip() else "empty")


def _parquet_rows_of(file: InputFile, shard: Shard, text_column: str, id_column: str | None):
    import pyarrow.parquet as pq

    pf = pq.ParquetFile(file.path)
    columns = [text_column] + ([id_column] if id_column else [])
    missing = [c for c in columns if c not in pf.schema_arrow.names]
    if missing:
        raise BadInputError(f"{file.path} has no column {missing[0]!r} (columns: {', '.join(pf.schema_arrow.names)})")
    groups, first_row, row = [], None, 0
    for g in range(pf.metadata.num_row_groups):
        n = pf.metadata.row_group(g).num_rows
        if row + n > shard.start and row < shard.stop:
            groups.append(g)
            first_row = row if first_row is None else first_row
        row += n
    table = pf.read_row_groups(groups, columns=columns).slice(shard.start - (first_row or 0), shard.rows)
    texts = table.column(text_column).to_pylist()
    ids = table.column(id_column).to_pylist() if id_column else None
    out = []
    for offset, text in enumerate(texts):
        rid: Any = shard.first_id + offset
        if ids is not None:
            if ids[offset] is None:
                out.append((str(rid), None, f"no {id_column!r} value"))
                continue
            rid = str(ids[offset])
        if not isinstance(text, str):
            out.append((rid, None, "no text" if text is None else "text is not a string"))
        else:
            out.append((rid, text, None if text.strip() else "empty"))
    return out


# ---------------------------------------------------------------------------------------------------------
# settings, shard files, resume


#: the settings pinned in run.json and hashed into the run's fingerprint (what decides the vectors and the shards)
PINNED_SETTINGS = ("pooling", "normalize", "layer", "max_length", "on_long", "backend", "quantize", "max_tokens",
                   "batch_size", "keep_text", "text_column", "id_column", "shard_rows")


@dataclass
class RaySettings(EmbedOptions):
    """How to embed (`bertcli.embed.EmbedOptions`, shared with the local engine) plus the shard layout.

    The workers run on CPU with the driver's effective pooling, normalization and limit (`worker_options`);
    device, threads and workers come from `run`'s arguments, not from here.
    """

    keep_text: bool = False
    text_column: str = "text"
    id_column: str | None = None
    shard_rows: int = DEFAULT_SHARD_ROWS

    @classmethod
    def from_options(cls, options: EmbedOptions, **layout: Any) -> RaySettings:
        """``options`` with the shard layout (keep_text, text_column, id_column, shard_rows) added."""
        return cls(**asdict(options), **layout)

    def pinned(self) -> dict[str, Any]:
        """The settings that decide the vectors and the shards, as run.json records them."""
        return {name: getattr(self, name) for name in PINNED_SETTINGS}

    def worker_options(self, effective: dict, threads: int) -> EmbedOptions:
        """What one worker loads with: CPU, ``threads`` intra-op threads, the driver's effective pooling,
        normalization and limit; long texts truncated (the worker reports them itself under --on-long error)."""
        return EmbedOptions(pooling=effective["pooling"], normalize=effective["normalize"], layer=self.layer,
                            max_length=effective["max_length"], on_long="truncate", device="cpu", threads=threads,
                            max_tokens=self.max_tokens, batch_size=self.batch_size, backend=self.backend,
                            quantize=self.quantize, workers=effective.get("workers_per_node", 1))


def model_identity(resolved: Any) -> dict[str, Any]:
    """What names the model's weights: the hub commit, else config.json's hash and the weight files' stats."""
    if getattr(resolved, "commit", None):
        return {"repo_id": resolved.repo_id, "commit": resolved.commit}
    config = Path(resolved.path) / "config.json"
    digest = hashlib.sha256(config.read_bytes()).hexdigest() if config.is_file() else None
    weights = []
    for name in sorted(resolved.weight_files()):
        st = (Path(resolved.path) / name).stat()
        weights.append([name, st.st_size, st.st_mtime_ns])
    return {"path": str(resolved.path), "config_sha256": digest, "weights": weights}


def fingerprint(resolved: Any, settings: RaySettings, files: list[InputFile], effective: dict) -> str:
    blob = {"model": model_identity(resolved), "settings": settings.pinned(), "effective": effective,
            "inputs": [asdict(f) for f in files]}
    return hashlib.sha256(json.dumps(blob, sort_keys=True).encode()).hexdigest()[:24]


def shard_footer(path: Path) -> dict | None:
    """The bertcli metadata of a complete shard file; None when the file is absent, partial or foreign."""
    import pyarrow.parquet as pq

    try:
        meta = pq.read_metadata(path)
        info = json.loads((meta.metadata or {}).get(META_KEY, b"null"))
    except Exception:  # noqa: BLE001 - truncated, empty or not parquet: not done
        return None
    if not isinstance(info, dict) or info.get("rows") != meta.num_rows:
        return None
    return info


def shard_done(folder: Path, shard: Shard, run_fingerprint: str) -> dict | None:
    info = shard_footer(folder / shard.name)
    if info is None or info.get("fingerprint") != run_fingerprint or info.get("shard") != shard.index:
        return None
    if info.get("first_id") != shard.first_id or info.get("input_rows") != shard.rows:
        return None
    return info


def write_shard(folder: Path, shard: Shard, ids: list, texts: list[str] | None, vectors, info: dict) -> None:
    """Write one shard under a temporary name and rename it into place once complete (fsync'd)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    dim = int(info["dim"])
    matrix = np.ascontiguousarray(vectors, dtype=np.float32).reshape(-1, dim)
    id_type = pa.string() if info.get("id_type") == "string" else pa.int64()
    columns = {"id": pa.array(ids, type=id_type)}
    if texts is not None:
        columns["text"] = pa.array(texts, type=pa.string())
    columns["vector"] = pa.FixedSizeListArray.from_arrays(pa.array(matrix.reshape(-1), type=pa.float32()), dim)
    table = pa.table(columns).replace_schema_metadata({META_KEY: json.dumps(info).encode()})
    with atomic_write(folder / shard.name) as handle:
        pq.write_table(table, handle, compression="zstd")


def _remove_stale_parts(folder: Path) -> int:
    removed = 0
    for p in folder.glob(".part-*.parquet.*.part"):
        try:
            p.unlink()
            removed += 1
        except OSError:
            pass
    return removed


# ---------------------------------------------------------------------------------------------------------
# the worker


class ShardWorker:
    """One Ray actor: loads the model once, then embeds and writes whole shards (``map_batches`` callable)."""

    def __init__(self, job: dict):
        os.environ["TOKENIZERS_PARALLELISM"] = "false"
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
        from bertcli.embed import load_embedder

        self.job = job
        self.files = [InputFile(**f) for f in job["files"]]
        self.folder = Path(job["output"])
        s = RaySettings(**job["settings"])
        self.settings = s
        self.embedder = load_embedder(job["resolved"], s.worker_options(job["effective"], job["threads"]))

    def __call__(self, batch: dict) -> dict:
        import numpy as np

        summaries = []
        for raw in batch["shard"]:
            try:
                summary = self.embed_shard(Shard(**json.loads(str(raw))))
            except BertcliError as exc:  # a user's problem (bad file, …): reported as such, not retried
                summary = {"error": {"type": type(exc).__name__, "message": exc.message, "hint": exc.hint,
                                     "exit_code": exc.exit_code}}
            summaries.append(json.dumps(summary))
        return {"summary": np.array(summaries, dtype=object)}

    def embed_shard(self, shard: Shard) -> dict:
        import numpy as np

        hook = self.job.get("shard_hook")
        if hook is not None and hook(shard) is False:
            return {"skipped": shard.index}
        started = time.perf_counter()
        s = self.settings
        rows = read_shard_rows(self.files[shard.file], shard, text_column=s.text_column, id_column=s.id_column)
        good = [(rid, text) for rid, text, bad in rows if bad is None]
        bad = [[rid, reason] for rid, _, reason in rows if reason is not None]
        ids, texts, vectors, truncated = [], [], [], 0
        for (rid, text), emb in zip(good, self.embedder.embed([t for _, t in good])):
            if emb.truncated:
                if s.on_long == "error":
                    bad.append([rid, f"longer than {self.embedder.max_length} tokens"])
                    continue
                truncated += 1
            ids.append(rid)
            texts.append(text)
            vectors.append(emb.vector)
        bad.sort(key=lambda item: _sort_key(item[0]))
        dim = self.embedder.dim
        info = {
            "shard": shard.index, "first_id": shard.first_id, "input_rows": shard.rows, "rows": len(ids),
            "bad": bad, "truncated": truncated, "dim": dim, "fingerprint": self.job["fingerprint"],
            "id_type": "string" if s.id_column else "int64",
        }
        matrix = np.stack(vectors) if vectors else np.zeros((0, dim), dtype=np.float32)
        write_shard(self.folder, shard, ids, texts if s.keep_text else None, matrix, info)
        return {"shard": shard.index, "rows": len(ids), "input_rows": shard.rows, "bad": len(bad),
                "seconds": round(time.perf_counter() - started, 3), "pid": os.getpid(), "node": _node_ip()}


def _node_ip() -> str | None:
    try:
        import ray.util

        return ray.util.get_node_ip_address()
    except Exception:  # noqa: BLE001 - informative only
        return None


def _sort_key(rid: Any):
    return (0, rid, "") if isinstance(rid, int) else (1, 0, str(rid))


# ---------------------------------------------------------------------------------------------------------
# the driver


@dataclass
class RayRun:
    """What a run did (also written, with the model and settings, as manifest.json)."""

    output: Path
    rows: int
    input_rows: int
    shards: int
    shards_done_before: int
    shards_written: int
    bad: list = field(default_factory=list)
    truncated: int = 0
    dim: int = 0
    seconds: float = 0.0
    manifest: dict = field(default_factory=dict)


def _address_endpoint(address: str) -> tuple[str, int] | None:
    """(host, port) that ``--address`` names, or None for ``auto`` (found by Ray itself)."""
    text = address.strip()
    if text in ("", "auto", "local"):
        return None
    default_port = 10001 if text.startswith("ray://") else 6379
    text = text.removeprefix("ray://")
    host, sep, port = text.rpartition(":")
    if not sep:
        host, port = text, str(default_port)
    host = host.strip("[]")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise UsageError(f"--address {address!r} is not HOST:PORT, ray://HOST:PORT or auto")
    return host, int(port)


def check_address(address: str, timeout: float = 10.0) -> None:
    """A quick TCP connect to the cluster's address: a closed port or an unknown host fails here at once, in
    one line, instead of Ray retrying (and logging) for minutes."""
    import socket

    endpoint = _address_endpoint(address)
    if endpoint is None:
        return
    try:
        with socket.create_connection(endpoint, timeout=timeout):
            pass
    except OSError as exc:
        reason = "timed out" if isinstance(exc, TimeoutError) else (exc.strerror or str(exc)).lower()
        raise RayClusterError(f"cannot reach the Ray cluster at {address}: {reason}",
                              hint="check the address (the head's `ray start --head` prints it) and that the "
                                   "port is open from here") from exc


def _join_watchdog(address: str, timeout: float):
    """Ends the process (exit 8, one line) if joining ``address`` takes longer than ``timeout`` seconds.

    Ray's connect retries for minutes inside native code that Python cannot interrupt, so a timer thread is
    the one bounded way out; it is cancelled as soon as ray.init returns.
    """
    import threading

    def expire() -> None:
        error = RayClusterError(f"joining the Ray cluster at {address} took more than {timeout:.0f}s",
                                hint="is a Ray head listening there (its GCS port, or ray://HOST:10001 for Ray "
                                     "Client)?")
        try:  # what cli.main would print for it: the core cannot raise from this thread
            os.write(2, f"error: {error}\n".encode())
        except OSError:
            pass
        os._exit(error.exit_code)

    timer = threading.Timer(timeout, expire)
    timer.daemon = True
    timer.start()
    return timer


def _first_reason(exc: BaseException) -> str:
    """One line for why Ray failed: its first line, and when that only introduces a server's traceback
    ("Initialization failure from server:"), the traceback's last line, which names the cause."""
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    if not lines:
        return type(exc).__name__
    if lines[0].endswith(":") and len(lines) > 1:
        return f"{lines[0]} {lines[-1]}"
    return lines[0]


def start_ray(address: str | None, *, cpus: int) -> bool:
    """Connect to ``address`` (``auto`` or ``ray://host:port``) or start a local runtime on 127.0.0.1.

    Returns True when this call started (and so should stop) the runtime.
    """
    if address is None:
        # A local runtime serves this machine only: bind loopback, never the host's interface address.
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    ray = require_ray()
    if ray.is_initialized():
        return False
    import logging

    # Ray's own notices (token-auth default and the like) are not the user's business; worker output stays in
    # Ray's log files (log_to_driver=False): worker failures reach the driver as exceptions all the same.
    logging.getLogger("ray").setLevel(logging.ERROR)
    import signal

    sigterm = signal.getsignal(signal.SIGTERM)  # ray.init puts in its own (exit 15); a SIGTERM stays bertcli's (143)
    try:
        if address is None:
            ray.init(num_cpus=cpus, include_dashboard=False, logging_level=logging.ERROR, configure_logging=False,
                     log_to_driver=False, _node_ip_address="127.0.0.1")
        else:
            watchdog = _join_watchdog(address, float(os.environ.get(CONNECT_TIMEOUT_ENV) or CONNECT_TIMEOUT))
            try:
                ray.init(address=address, logging_level=logging.ERROR, configure_logging=False, log_to_driver=False)
            finally:
                watchdog.cancel()
    except Exception as exc:  # noqa: BLE001 - connection errors come in many types
        first = _first_reason(exc)
        if address:
            raise RayClusterError(f"cannot join the Ray cluster at {address}: {first}") from exc
        raise RayEngineError(f"cannot start a local Ray runtime: {first}") from exc
    finally:
        if sigterm is not None:
            with contextlib.suppress(ValueError):  # not the main thread: Ray's handler was not put in either
                signal.signal(signal.SIGTERM, sigterm)
    return True


def _quiet_ray_data() -> None:
    import logging

    import ray.data

    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    for attr in ("print_on_execution_start", "enable_operator_progress_bars"):
        if hasattr(ctx, attr):
            setattr(ctx, attr, False)
    # Ray Data logs a failing task at ERROR level; the engine reports it itself, in one line.
    for name in ("ray", "ray.data"):
        logging.getLogger(name).setLevel(logging.CRITICAL)


@dataclass
class PoolJob:
    """The shards still to write in one run, and everything the pool of workers needs to write them."""

    resolved: Any
    files: list[InputFile]
    todo: list[Shard]
    out: Path
    settings: RaySettings
    effective: dict
    fingerprint: str
    workers: int
    threads: int
    total_rows: int
    rows_done: int  # input rows already in shards written by an earlier run
    shard_hook: Callable[[Shard], bool] | None = None  # tests only: see `run`


def run(
    resolved: Any,
    source: str | Path,
    output_dir: str | Path,
    settings: RaySettings,
    *,
    address: str | None = None,
    workers: int = 2,
    threads: int | None = None,
    on_progress: Callable[[dict], None] | None = None,
    shard_hook: Callable[[Shard], bool] | None = None,
) -> RayRun:
    """Embed ``source`` into ``output_dir`` with ``workers`` Ray actors; resumes a previous run of the same job.

    ``shard_hook(shard)`` runs in the worker before each shard (it travels there pickled): returning False leaves
    the shard unwritten, so the run ends with "rerun the same command to resume". Tests inject faults this way
    (a worker that dies, a run that stops part-way); the command never passes one.
    """
    _check_settings(settings, workers)
    from bertcli.backends import default_threads

    started = time.perf_counter()
    out = _output_folder(output_dir)
    files, shards = _plan(source, settings, address)
    total_rows = sum(f.rows for f in files)
    threads = threads or (default_threads(workers) if address is None else 1)

    # Resolve and load once on the driver: a model that cannot load fails here, in one line, before Ray
    # starts; the same load fixes the effective pooling/normalize/limit and (onnx) makes the export once.
    effective, dim, model_info = _check_model(resolved, settings, workers if address is None else 1)
    run_fp = fingerprint(resolved, settings, files, {k: effective[k] for k in ("pooling", "normalize", "max_length")})
    out.mkdir(exist_ok=True)
    _pin_run(out, run_fp, resolved, settings, files)
    _remove_stale_parts(out)
    done = {s.index: info for s in shards if (info := shard_done(out, s, run_fp)) is not None}
    done_before = len(done)
    job = PoolJob(resolved=resolved, files=files, todo=[s for s in shards if s.index not in done], out=out,
                  settings=settings, effective=effective, fingerprint=run_fp, workers=workers, threads=threads,
                  total_rows=total_rows, rows_done=sum(info["input_rows"] for info in done.values()),
                  shard_hook=shard_hook)
    written = _write_shards(job, address, on_progress) if job.todo else 0
    _collect_shards(out, shards, done, run_fp)
    manifest = _manifest(resolved, settings, effective, model_info, dim, files, shards, done, run_fp)
    _write_json(out / MANIFEST_FILE, manifest)
    bad = [item for s in shards for item in done[s.index]["bad"]]
    rows = manifest["rows"]
    if rows == 0:  # every row bad: not a success, whatever the reason (the manifest lists each)
        reasons = "; ".join(f"{rid}: {reason}" for rid, reason in bad[:3])
        raise BadInputError(f"none of the {total_rows:,} input row(s) could be embedded ({reasons}"
                            f"{'; …' if len(bad) > 3 else ''})", hint=f"every row is listed in {out / MANIFEST_FILE}")
    return RayRun(output=out, rows=rows, input_rows=total_rows, shards=len(shards), shards_done_before=done_before,
                  shards_written=written, bad=bad, truncated=manifest["truncated"], dim=dim,
                  seconds=time.perf_counter() - started, manifest=manifest)


def _check_settings(settings: RaySettings, workers: int) -> None:
    """Refuse what the Ray engine cannot do, before anything is read (lower-cases ``settings.backend``)."""
    if workers < 1:
        raise UsageError("--workers must be at least 1")
    if settings.on_long not in ("truncate", "error"):
        raise UsageError(f"unknown --on-long {settings.on_long!r}: choose truncate or error")
    if settings.pooling == "none":
        raise UsageError("--engine ray writes one vector per row: --pooling none is for the local engine")
    require_ray()
    from bertcli.backends import check_backend

    settings.backend = check_backend(settings.backend, settings.quantize)


def _output_folder(output_dir: str | Path) -> Path:
    """The -o folder as an absolute path: it may exist (a run to resume) but not be a file."""
    out = Path(output_dir).expanduser().resolve()
    if out.exists() and not out.is_dir():
        raise OutputError(f"cannot write to {out}: it is a file, not a folder")
    if not out.parent.is_dir():
        raise OutputError(f"cannot write {out}: folder {out.parent} does not exist")
    return out


def _plan(source: str | Path, settings: RaySettings, address: str | None) -> tuple[list[InputFile], list[Shard]]:
    """The input files and their shards; column options that text files cannot honour, an unreachable cluster
    and empty input fail here, before the model loads."""
    paths = find_inputs(source)
    plain = [p for p in paths if input_kind(p) == "text"]
    if settings.id_column and plain:
        raise UsageError(f"--id-column needs .jsonl or .parquet input: {plain[0]} is a text file (one text a "
                         "line, no fields)", hint="leave out --id-column: text rows are numbered from 0")
    if settings.text_column != "text" and len(plain) == len(paths):
        raise UsageError(f"--text-column names a field of .jsonl or .parquet input: {plain[0]} is a text file "
                         "(one text a line, no fields)", hint="leave out --text-column")
    if address is not None:
        check_address(address)  # before the model loads: an unreachable cluster fails in seconds
    files, shards = plan_shards(paths, settings.shard_rows,
                                columns=(settings.text_column,) + ((settings.id_column,) if settings.id_column else ()))
    if sum(f.rows for f in files) == 0:
        raise BadInputError("empty input: no rows to embed")
    return files, shards


def _write_shards(job: PoolJob, address: str | None, on_progress: Callable[[dict], None] | None) -> int:
    """Start (or join) Ray, let the pool write ``job.todo``, stop a runtime this call started; shards written."""
    started_ray = start_ray(address, cpus=job.workers * job.threads)
    try:
        if _through_ray_client():
            return _run_pool_on_cluster(job, on_progress)
        _quiet_ray_data()
        return _run_pool(job, on_progress)
    finally:
        if started_ray:
            import ray

            ray.shutdown()


def _collect_shards(out: Path, shards: list[Shard], done: dict, run_fp: str) -> None:
    """Add the shards this run wrote to ``done``; a shard still missing is an error that says how to resume."""
    for s in shards:
        if s.index not in done:
            info = shard_done(out, s, run_fp)
            if info is None:
                raise RayEngineError(f"shard {s.name} was not written (rows {s.first_id}…{s.first_id + s.rows - 1}); "
                                     "rerun the same command to resume")
            done[s.index] = info


def _manifest(resolved: Any, settings: RaySettings, effective: dict, model_info: dict, dim: int,
              files: list[InputFile], shards: list[Shard], done: dict, run_fp: str) -> dict:
    """manifest.json: the model, the settings, every input and shard, and every bad row."""
    bad = [item for s in shards for item in done[s.index]["bad"]]
    return {
        "model": resolved.display_name,
        "repo_id": getattr(resolved, "repo_id", None),
        "revision": getattr(resolved, "revision", None),
        "commit": getattr(resolved, "commit", None),
        **model_info,
        "pooling": effective["pooling"],
        "normalize": effective["normalize"],
        "layer": settings.layer,
        "max_length": effective["max_length"],
        "backend": settings.backend,
        "quantize": settings.quantize,
        "dim": dim,
        "dtype": "float32",
        "rows": sum(done[s.index]["rows"] for s in shards),
        "input_rows": sum(f.rows for f in files),
        "bad_rows": len(bad),
        "bad": [{"id": rid, "reason": reason} for rid, reason in bad],
        "truncated": sum(done[s.index]["truncated"] for s in shards),
        "inputs": [{"path": f.path, "kind": f.kind, "rows": f.rows} for f in files],
        "order": "shards in name order, rows in input order within each shard (ids ascending when generated)",
        "id": f"column {settings.id_column!r} (as strings)" if settings.id_column else "0-based row number over the inputs",
        "shards": [{"file": s.name, "first_id": s.first_id, "input_rows": s.rows, "rows": done[s.index]["rows"],
                    "bad": len(done[s.index]["bad"])} for s in shards],
        "fingerprint": run_fp,
    }


def _check_model(resolved: Any, settings: RaySettings, workers_per_node: int) -> tuple[dict, int, dict]:
    from bertcli.embed import load_embedder

    effective = {"pooling": settings.pooling, "normalize": settings.normalize, "max_length": settings.max_length,
                 "workers_per_node": workers_per_node}
    embedder = load_embedder(resolved, settings.worker_options(effective, 1))
    settings.backend = embedder.backend  # auto's choice, made once here: every worker runs the same backend
    effective.update(pooling=embedder.pooling, normalize=embedder.normalize, max_length=embedder.max_length)
    info = {"family": resolved.family, "layer_label": embedder.layer_label}
    dim = embedder.dim
    del embedder
    return effective, dim, info


def _pin_run(out: Path, run_fp: str, resolved: Any, settings: RaySettings, files: list[InputFile]) -> None:
    """Write run.json, or refuse when the folder holds another run's shards."""
    pin = out / RUN_FILE
    if pin.is_file():
        try:
            old = json.loads(pin.read_text(encoding="utf-8")).get("fingerprint")
        except ValueError:
            old = None
        if old == run_fp:
            return
        raise UsageError(f"{out} holds shards of another run (different model, settings or input files)",
                         hint="choose a new --output folder, or remove this one to start over")
    if any(out.glob("part-*.parquet")):
        raise UsageError(f"{out} already holds part-*.parquet files that bertcli did not pin to a run",
                         hint="choose a new --output folder")
    _write_json(pin, {"fingerprint": run_fp, "model": resolved.display_name, "settings": settings.pinned(),
                      "inputs": [asdict(f) for f in files]})


def _write_json(path: Path, data: dict) -> None:
    with atomic_write(path, "w") as handle:
        json.dump(data, handle, indent=2, ensure_ascii=False)
        handle.write("\n")


def _through_ray_client() -> bool:
    """True when this process is connected with Ray Client (``--address ray://…``)."""
    try:
        from ray.util.client import ray as client

        return bool(client.is_connected())
    except ImportError:
        return False


def _run_pool_on_cluster(job: PoolJob, on_progress: Callable[[dict], None] | None) -> int:
    """`_run_pool` for Ray Client: Ray Data cannot execute through Ray Client (its streaming executor needs a
    cluster-side driver; see ray-project/ray#42739), so the pool's driver runs as a task on the cluster
    (num_cpus=0) and its progress comes back through a Ray queue. Inputs and the output folder must be at the
    same paths on the cluster: shared storage, as the workers already need."""
    import ray
    from ray.util.queue import Empty, Queue

    queue = Queue() if on_progress is not None else None

    @ray.remote(num_cpus=0, max_retries=0)
    def drive(job: PoolJob) -> int:
        _quiet_ray_data()
        return _run_pool(job, queue.put if queue is not None else None)

    ref = drive.remote(job)

    def drain() -> None:
        while queue is not None:
            try:
                on_progress(queue.get(block=False))
            except Empty:
                return

    try:
        while not ray.wait([ref], timeout=0.5)[0]:
            drain()
        drain()
        return ray.get(ref)
    except ray.exceptions.RayTaskError as exc:
        cause = getattr(exc, "cause", None)
        if isinstance(cause, BertcliError):
            raise cause from exc
        raise RayEngineError(f"the Ray job on the cluster failed: {_worker_error_line(exc)}") from exc
    finally:
        if queue is not None:
            queue.shutdown()


def _run_pool(job: PoolJob, on_progress: Callable[[dict], None] | None) -> int:
    """Write ``job.todo`` with a Ray Data actor pool of ``job.workers`` `ShardWorker`s; shards written."""
    import ray
    import ray.data

    todo, workers, threads, total_rows, rows_done = job.todo, job.workers, job.threads, job.total_rows, job.rows_done
    worker_job = {"resolved": job.resolved, "files": [asdict(f) for f in job.files], "output": str(job.out),
                  "settings": asdict(job.settings), "effective": job.effective, "threads": threads,
                  "fingerprint": job.fingerprint, "shard_hook": job.shard_hook}

    class _Worker(ShardWorker):  # the job travels inside the class: no constructor args in the object store
        def __init__(self):
            super().__init__(worker_job)

    _Worker.__name__ = _Worker.__qualname__ = "BertcliShardWorker"
    items = [{"shard": json.dumps(asdict(s))} for s in todo]
    ds = ray.data.from_items(items, override_num_blocks=len(items)).map_batches(
        _Worker,
        batch_size=1,
        compute=ray.data.ActorPoolStrategy(size=min(workers, len(items))),
        num_cpus=threads,
    )  # Ray Data's actor pool restarts a dead actor and retries its shard (writing a shard is idempotent)
    written = 0
    rows_now = rows_done
    window_start = time.perf_counter()
    try:
        for row in ds.iter_rows():
            summary = json.loads(row["summary"])
            if "error" in summary:
                raise _rebuild_error(summary["error"])
            if "skipped" in summary:  # left unwritten by the shard hook: the check after the run reports it
                continue
            written += 1
            rows_now += summary["input_rows"]
            if on_progress is not None:
                elapsed = max(time.perf_counter() - window_start, 1e-9)
                rate = (rows_now - rows_done) / elapsed
                on_progress({**summary, "rows_done": rows_now, "rows_total": total_rows, "rate": rate,
                             "eta": (total_rows - rows_now) / rate if rate > 0 else None,
                             "shards_written": written, "shards_todo": len(todo)})
    except Exception as exc:  # noqa: BLE001 - Ray wraps worker errors; surface the first clear line
        inner = _find_bertcli_error(exc)
        if inner is not None:
            raise inner from exc
        raise RayEngineError(f"a Ray worker failed: {_worker_error_line(exc)}",
                             hint="rerun the same command to resume from the shards already written") from exc
    return written


def _rebuild_error(info: dict) -> BertcliError:
    """A worker's BertcliError, raised again on the driver with its class (so its exit code) and message."""
    import bertcli.errors as errors

    cls = getattr(errors, str(info.get("type")), None)
    if not (isinstance(cls, type) and issubclass(cls, BertcliError)):
        cls = RayEngineError
    return cls(str(info.get("message")), hint=info.get("hint"))


_EXC_LINE = re.compile(r"^([A-Za-z_][\w.]*(?:Error|Exception|Exit|Interrupt)): (.*)$")


def _worker_error_line(exc: BaseException) -> str:
    """'Type: message' of the user-code exception inside Ray's wrapper (its remote traceback is text)."""
    found = None
    for line in str(exc).splitlines():
        match = _EXC_LINE.match(line.strip())
        if match and not match.group(1).startswith("ray."):
            found = f"{match.group(1).rsplit('.', 1)[-1]}: {match.group(2)[:300]}"
    return found or (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]


def _find_bertcli_error(exc: BaseException) -> BertcliError | None:
    seen = set()
    stack = [exc]
    while stack:
        e = stack.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        if isinstance(e, BertcliError):
            return e
        stack += [e.__cause__, e.__context__, getattr(e, "cause", None)]
    return None


def read_output(folder: str | Path):
    """All shards of an output folder as one pyarrow Table, in shard (= input) order."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    paths = sorted(Path(folder).glob("part-*.parquet"))
    tables = [pq.read_table(p) for p in paths]
    return pa.concat_tables(tables) if tables else None

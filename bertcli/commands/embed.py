"""`bertcli embed`: sentence or token vectors from any BERT-family encoder, streamed in input order."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from bertcli import files, output
from bertcli.choices import BASE_FORMATS, choice_enum
from bertcli.backends import DEFAULT_BACKEND
from bertcli.commands._choices import BackendOption, Compute, Dtype, Engine, OnLong, Pooling, Quantize
from bertcli.commands._common import (
    BatchSizeOpt,
    DeviceOpt,
    FileOpt,
    MaxTokensOpt,
    ModelOpt,
    QuietOpt,
    apply_output,
    examples,
    format_option,
    max_length_option,
    resolve,
    threads_option,
)
from bertcli.errors import BadInputError, UsageError

EXAMPLES = examples(
    'bertcli embed -m ./MiniLM "It was a great day" "What a lovely afternoon"',
    "cat docs.txt | bertcli embed -m ./MiniLM -f npy -o docs.npy",
    "bertcli embed -m bert --pooling cls --layer -2 --file lines.txt -f jsonl",
    "bertcli embed -m roberta --pooling none 'I had a sudden epiphany'",
    "bertcli embed -m ./MiniLM --similarity 'a cat' 'a kitten' 'a tax form'",
    "bertcli embed -m ./MiniLM --backend onnx --file docs.txt -o docs.npy",
    "bertcli embed -m ./MiniLM --engine ray --workers 4 --file corpus/ -o vectors/",
)

SUFFIX_FORMATS = {".npy": "npy", ".jsonl": "jsonl", ".json": "json", ".tsv": "tsv"}
TABLE_BATCH = 256
EDGE = 3  # values shown at each end of a vector in the table
FORMATS = (*BASE_FORMATS, "npy")
EmbedFormat = choice_enum("EmbedFormat", FORMATS)
EmbedFormatOpt = format_option(EmbedFormat, help="Output: auto (table on a terminal, jsonl when piped), table, json, jsonl, tsv, npy")

EmbedThreadsOpt = threads_option("CPU threads for torch or ONNX Runtime, per worker with --engine ray (default: the "
                                 "physical cores; / --workers on a local Ray runtime; 1 on a cluster).")
MaxLengthOpt = max_length_option("Truncate texts to N tokens (default: the model's limit; 256 for "
                                 "sentence-transformers MiniLM).")


def embed(
    texts: Annotated[list[str] | None, typer.Argument(help="Texts to embed (default: lines of --file or stdin).", show_default=False)] = None,
    model: ModelOpt = None,
    file: FileOpt = None,
    pooling: Annotated[Pooling | None, typer.Option("--pooling", "-p", help="cls | pooler | mean | max | none (one vector per token). Default: the folder's sentence-transformers pooling, else mean.", show_default=False)] = None,
    layer: Annotated[int | None, typer.Option("--layer", help="Layer to pool: 0 = the embedding output, 1…L = the encoder layers (the numbers attention's --layer uses), negative counts from the end (-1 = last).", show_default=False)] = None,
    normalize: Annotated[bool | None, typer.Option("--normalize/--no-normalize", help="L2-normalize vectors. Default: as the sentence-transformers folder says, else no.", show_default=False)] = None,
    out: Annotated[Path | None, typer.Option("--output", "-o", help="Write to FILE atomically (format from -f or the suffix: .npy .jsonl .json .tsv).")] = None,
    dtype: Annotated[Dtype, typer.Option("--dtype", help="Output precision: float32 | float16.")] = "float32",
    similarity: Annotated[bool, typer.Option("--similarity", help="Print the cosine similarity matrix of the inputs instead of vectors.")] = False,
    device: DeviceOpt = "auto",
    threads: EmbedThreadsOpt = None,
    batch_size: BatchSizeOpt = None,
    max_tokens: MaxTokensOpt = None,
    max_length: MaxLengthOpt = None,
    compute: Annotated[Compute, typer.Option("--compute", help="Matmul precision: float32 (exact) | bfloat16 | float16. bfloat16 with --backend onnx runs OpenVINO (bertcli[openvino]): min cosine 0.99994 to float32 on MiniLM (2,000 lines) in 0.57× the float32 ONNX time on a CPU with AMX (no gain without AMX/AVX512-BF16). With --backend torch: torch.autocast, cosine ≥ 0.9999, ~15% faster than float32 torch.")] = "float32",
    on_long: Annotated[OnLong, typer.Option("--on-long", help="Texts over the limit: truncate (one counted warning) | error.")] = "truncate",
    backend: BackendOption = DEFAULT_BACKEND,
    quantize: Annotated[Quantize | None, typer.Option("--quantize", help="int8 (--backend onnx): int8 dense layers, attention in float32. With bertcli[openvino] installed it runs on OpenVINO: min cosine 0.996 (mean 0.999) to float32 on MiniLM (2,000 lines) in 0.52-0.6× the float32 ONNX time; without it on ONNX Runtime: min cosine 0.992 (mean 0.998; worst on the shortest lines) in ~0.7×.", show_default=False)] = None,
    engine: Annotated[Engine, typer.Option("--engine", help="local (this process) | ray (Ray Data actors; input --file FILE|FOLDER|GLOB, -o FOLDER of Parquet shards; needs bertcli[ray]).")] = "local",
    address: Annotated[str | None, typer.Option("--address", help="--engine ray: join a cluster (auto | HOST:PORT | ray://HOST:PORT); default: a local runtime on 127.0.0.1. An address that does not answer fails at once, one that cannot be joined within 30 s fails then (exit 8).", show_default=False)] = None,
    workers: Annotated[int, typer.Option("--workers", min=1, help="--engine ray: actors (model loads); a local runtime gets workers × threads CPUs.")] = 2,
    text_column: Annotated[str, typer.Option("--text-column", help="--engine ray: the text field of .jsonl/.parquet input.")] = "text",
    id_column: Annotated[str | None, typer.Option("--id-column", help="--engine ray: the id field of .jsonl/.parquet input (default: row number).", show_default=False)] = None,
    keep_text: Annotated[bool, typer.Option("--keep-text", help="--engine ray: store the text beside each vector.")] = False,
    shard_rows: Annotated[int, typer.Option("--shard-rows", min=1, help="--engine ray: input rows per output shard (the unit of resume).")] = 10_000,
    fmt: EmbedFormatOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """Embed texts: one vector per text (cls, pooler, mean or max pooling) or one per token.

    Input streams from --file or stdin in constant memory; rows come out in input order. Empty lines are
    embedded as the empty text (so row N is always line N) and counted in a warning. A sentence-transformers
    folder (modules.json) gives exactly the vectors sentence-transformers gives.
    """
    apply_output(fmt, quiet)
    from bertcli.backends import check_backend
    from bertcli.embed import EmbedOptions

    options = EmbedOptions(pooling=pooling, normalize=normalize, layer=layer, max_length=max_length, on_long=on_long,
                           device=device, threads=threads, max_tokens=max_tokens, batch_size=batch_size,
                           compute=compute, backend=check_backend(backend, quantize), quantize=quantize)
    if engine == "ray":
        _run_ray(texts=texts, model=model, file=file, out=out, options=options, address=address, workers=workers,
                 similarity=similarity, dtype=dtype, layout=dict(keep_text=keep_text, text_column=text_column,
                                                                 id_column=id_column, shard_rows=shard_rows))
        return
    _run_local(texts=texts, model=model, file=file, out=out, options=options, fmt=fmt, dtype=dtype,
               similarity=similarity)


def _run_local(*, texts, model, file, out, options, fmt, dtype, similarity) -> None:
    """--engine local: read, load, embed and write in this process, rows in input order."""
    out, fmt_resolved = _local_target(out, fmt)
    _check_local(options, fmt_resolved, out, file, dtype=dtype, similarity=similarity)

    # Idle OpenMP threads sleep instead of spinning: on a shared or busy CPU spinning burns the cores the
    # other thread needs (measured: half the CPU time at the same speed). Set before torch loads; env wins.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    from bertcli.inputs import iter_lines, require_nonempty

    # Read the first window before loading the model: empty or undecodable input fails in a blink.
    from itertools import chain, islice

    from bertcli.batching import DEFAULT_WINDOW

    lines = require_nonempty(iter_lines(texts, file))
    first = list(islice(lines, DEFAULT_WINDOW))
    resolved = resolve(model)
    files.refuse_overwrite(out, inputs=[file], model=resolved)
    embedder = _load_embedder(resolved, options)
    total = len(texts) if texts else _count_lines(file)
    progress = _Progress(total)
    embeddings = embedder.embed(chain(first, lines), on_batch=progress.advance)
    try:
        if similarity:
            _similarity(embeddings, embedder, fmt_resolved, out, dtype)
        elif fmt_resolved == "npy":
            _write_npy(embeddings, embedder.dim, dtype, out)
        else:
            _emit_records(embeddings, embedder, fmt_resolved, out, dtype)
    finally:
        progress.stop()
    _report(embedder, out, fmt_resolved, dtype, similarity)


def _local_target(out: Path | None, fmt: str | None) -> tuple[Path | None, str]:
    """The output file (None = stdout) and the output format (from -f, else -o's suffix, else the terminal)."""
    if out is not None and files.standard_stream(out) == 1:
        out = None  # -o - and -o /dev/stdout are stdout: the same formats and checks as without -o
    if fmt is None and output.current().settings.format in (None, "auto") and out is not None:
        inferred = SUFFIX_FORMATS.get(out.suffix.lower())
        if inferred:
            output.configure(format=inferred)
    return (out.expanduser() if out is not None else None), output.resolve_format(extras=("npy",))


def _check_local(options, fmt: str, out: Path | None, file: Path | None, *, dtype: str, similarity: bool) -> None:
    """Refuse impossible option combinations, and an -o target that cannot be written, before the model loads."""
    pooling = options.pooling  # --dtype, --on-long and --pooling are checked by their option types
    if similarity and pooling == "none":
        raise UsageError("--similarity compares one vector per text; it does not go with --pooling none")
    if fmt == "npy" and pooling == "none" and not similarity:
        raise UsageError("--format npy writes one matrix with one row per text; --pooling none gives one per "
                         "token (use -f jsonl)")
    if fmt == "npy" and out is None and output.stdout_is_terminal():
        raise UsageError("--format npy is binary: give -o FILE.npy or redirect stdout")
    if out is not None and fmt == "table":
        raise UsageError("-o writes json, jsonl, tsv or npy: choose one with -f or the file's suffix")
    if out is not None:
        files.check_target(out)  # a folder, a socket or a missing folder fails before the model loads
        files.refuse_overwrite(out, inputs=[file])


def _load_embedder(resolved, options):
    """Load the model (a one-off ONNX export is announced by the backend) and warn about what would make vectors
    surprising."""
    from bertcli.embed import load_embedder

    with output.loading(resolved.display_name):
        embedder = load_embedder(resolved, options)
    export = getattr(embedder.model, "export", None)  # the ONNX backend only
    if export is not None and export.rebuilt:
        output.warn(f"the cached ONNX export was corrupt and has been made again ({export.rebuilt})")
    st = embedder.sentence_transformers
    if st is not None and st.unsupported:
        output.warn(f"{resolved.display_name} is a sentence-transformers model with {', '.join(st.unsupported)}, "
                    "which bertcli does not apply: vectors differ from sentence-transformers'")
    return embedder


def _report(embedder, out: Path | None, fmt: str, dtype: str, similarity: bool) -> None:
    """The warnings a run earned (truncated, empty lines) and, with -o, what was written where."""
    stats = embedder.stats
    if stats.truncated:
        output.warn(f"{stats.truncated} text(s) longer than {embedder.max_length} tokens were truncated "
                    f"(first: {stats.first_truncated}); --on-long error refuses them instead")
    if stats.empty:
        output.warn(f"{stats.empty} empty line(s) embedded as the empty text (kept so that rows match lines)")
    if out is not None:
        output.info(f"wrote {stats.texts} × {embedder.dim} {dtype} to {out}" if fmt == "npy" and not similarity
                    else f"wrote {out}")


def _run_ray(*, texts, model, file, out, options, layout, address, workers, similarity, dtype) -> None:
    """--engine ray: shards of Parquet in the folder -o, progress and bad rows on stderr."""
    if texts:
        raise UsageError("--engine ray reads --file FILE, FOLDER or GLOB, not TEXT arguments")
    if file is None or str(file) == "-":
        raise UsageError("--engine ray needs --file FILE, FOLDER or GLOB (stdin cannot be split among workers)")
    if out is None:
        raise UsageError("--engine ray needs -o FOLDER for its Parquet shards and manifest.json")
    if similarity:
        raise UsageError("--similarity is for the local engine")
    if (options.device or "auto").lower() not in ("auto", "cpu"):
        raise UsageError("--engine ray runs its workers on CPU: use --device cpu")
    if options.compute != "float32" or dtype != "float32":
        raise UsageError("--engine ray writes float32 vectors (--compute/--dtype are for the local engine)")
    chosen = (output.current().settings.format or "auto").lower()
    if chosen != "auto":
        raise UsageError(f"--engine ray writes Parquet shards and manifest.json into the -o folder: --format "
                         f"{chosen} is for the local engine (read the shards with pyarrow or pandas)")
    if out.suffix.lower() in SUFFIX_FORMATS and not out.is_dir():
        raise UsageError(f"--engine ray writes a folder of Parquet shards: -o {out} names a {out.suffix} file",
                         hint="give -o a folder name, or drop --engine ray to write one file")
    from bertcli import ray_engine

    settings = ray_engine.RaySettings.from_options(options, **layout)
    ray_engine.require_ray()
    resolved = resolve(model)
    files.refuse_overwrite(out, inputs=[file], model=resolved)  # the shard folder: never an input or the model

    def progress(event: dict) -> None:
        eta = event.get("eta")
        eta_text = f", ETA {eta:,.0f}s" if eta is not None else ""
        bad = f", {event['bad']} bad" if event.get("bad") else ""
        output.info(f"shard {event['shard']:05d} done ({event['rows']:,} rows{bad}) · "
                    f"{event['rows_done']:,}/{event['rows_total']:,} rows · {event['rate']:,.0f} rows/s{eta_text}")

    with _stdout_to_stderr():  # this engine writes no data on stdout: nothing Ray prints may land there
        result = ray_engine.run(resolved, file, out, settings, address=address, workers=workers,
                                threads=options.threads, on_progress=progress)
    if result.bad:
        shown = ", ".join(f"{rid} ({reason})" for rid, reason in result.bad[:20])
        more = f" and {len(result.bad) - 20} more" if len(result.bad) > 20 else ""
        output.warn(f"{len(result.bad)} bad row(s) left out, by id: {shown}{more} (all listed in manifest.json)")
    if result.truncated:
        output.warn(f"{result.truncated} row(s) longer than {result.manifest['max_length']} tokens were truncated; "
                    "--on-long error leaves them out instead")
    resumed = f", {result.shards_done_before} already done" if result.shards_done_before else ""
    output.info(f"wrote {result.rows:,} × {result.dim} float32 to {str(out).rstrip('/')}/ "
                f"({result.shards} shards{resumed}; {result.seconds:,.1f}s)")


class _stdout_to_stderr:
    """Point file descriptor 1 at stderr for a block (and so for the processes it starts: Ray's raylet and
    workers inherit it), then restore it. stdout carries data only; the Ray engine writes none there."""

    def __enter__(self):
        sys.stdout.flush()
        try:
            self.saved = os.dup(1)
            os.dup2(2, 1)
        except OSError:
            self.saved = None
        return self

    def __exit__(self, *exc) -> None:
        if self.saved is None:
            return
        try:
            sys.stdout.flush()
        except (OSError, ValueError):
            pass
        os.dup2(self.saved, 1)
        os.close(self.saved)


def _count_lines(file: Path | None) -> int | None:
    """Lines in a regular file (for the progress bar's ETA); None for stdin or on any trouble."""
    if file is None or str(file) == "-":
        return None
    try:
        path = Path(file).expanduser()
        if not path.is_file():
            return None
        n, last = 0, b"\n"
        with open(path, "rb") as handle:
            while chunk := handle.read(1 << 20):
                n += chunk.count(b"\n")
                last = chunk[-1:]
        return n + (last != b"\n")
    except OSError:
        return None


class _Progress:
    """A progress bar that appears only once there is more than one batch (and stderr is a terminal)."""

    def __init__(self, total: int | None):
        self.total = total
        self.bar = None
        self.task = None
        self.done = 0
        self.batches = 0
        self.start = None

    def advance(self, rows: int, planned: int) -> None:
        import time

        if self.start is None:
            self.start = time.perf_counter()
        self.done += rows
        self.batches += 1
        if self.bar is None:
            if planned <= 1 and self.batches <= 1:
                return
            self.bar = output.make_progress(total=self.total, unit="texts")
            if self.bar is None:
                return
            self.bar.start()
            self.task = self.bar.add_task("embedding", total=self.total, rate="")
        elapsed = max(time.perf_counter() - self.start, 1e-9)
        self.bar.update(self.task, completed=self.done, rate=f"{self.done / elapsed:,.0f} texts/s")

    def stop(self) -> None:
        if self.bar is not None:
            self.bar.stop()


def _write_npy(embeddings, dim: int, dtype: str, out: Path | None) -> None:
    """Rows streamed into a .npy whose header is patched at the end (a spool file when stdout is a pipe)."""
    import numpy as np

    from bertcli.embed import NpyStreamWriter

    def pump(handle) -> None:
        writer = NpyStreamWriter(handle, dim, dtype)
        block: list = []
        for emb in embeddings:
            block.append(emb.vector)
            if len(block) >= 1024:
                writer.write(np.stack(block))
                block = []
        if block:
            writer.write(np.stack(block))
        writer.close()

    if out is not None:
        with output.atomic_write(out, "wb", seekable=True) as handle:  # the header is patched at the end
            pump(handle)
        return
    import shutil
    import tempfile

    with tempfile.TemporaryFile() as spool:
        pump(spool)
        spool.seek(0)
        sys.stdout.flush()
        shutil.copyfileobj(spool, sys.stdout.buffer, 1 << 20)
        sys.stdout.buffer.flush()


def _vector_values(vector, dtype: str):
    import numpy as np

    return vector.astype(np.float16 if dtype == "float16" else np.float32)


def _records(embeddings, dtype: str, pooling: str):
    for emb in embeddings:
        values = _vector_values(emb.vector, dtype)
        rec: dict = {"line": emb.index + 1, "text": emb.text}
        if pooling == "none":
            rec["tokens"] = emb.tokens
        rec["n_tokens"] = emb.n_tokens
        rec["vector"] = values.tolist()
        yield rec


def _emit_records(embeddings, embedder, fmt: str, out: Path | None, dtype: str) -> None:
    pooling = embedder.pooling
    records = _records(embeddings, dtype, pooling)
    kwargs = {
        "table": lambda recs: _table(recs, embedder, dtype),
        "table_batch": TABLE_BATCH,
        "fmt": fmt,
        "tsv_columns": ["line", "token", "vector"] if pooling == "none" else ["line", "text", "vector"],
        "tsv_rows": _tsv_rows if pooling == "none" else None,
    }
    if out is None:
        output.emit(records, **kwargs)
        return
    import contextlib

    with output.atomic_write(out, "w") as handle, contextlib.redirect_stdout(handle):
        output.emit(records, **kwargs)


def _tsv_rows(record: dict):
    for token, vector in zip(record["tokens"], record["vector"]):
        yield {"line": record["line"], "token": token, "vector": vector}


def _similarity(embeddings, embedder, fmt: str, out: Path | None, dtype: str) -> None:
    """Cosine similarity of every input with every other (holds all vectors: meant for a few thousand)."""
    import numpy as np

    from bertcli.embed import cosine_matrix

    texts, vectors = [], []
    for emb in embeddings:
        texts.append(emb.text)
        vectors.append(emb.vector)
    if len(vectors) < 2:
        raise BadInputError("--similarity needs two or more texts")
    matrix = cosine_matrix(np.stack(vectors)).astype(np.float16 if dtype == "float16" else np.float32)
    if fmt == "npy":
        if out is not None:
            with output.atomic_write(out, "wb") as handle:
                np.save(handle, matrix)
        else:
            np.save(sys.stdout.buffer, matrix)
            sys.stdout.buffer.flush()
        return
    record = {"texts": texts, "matrix": matrix.tolist()}
    if fmt in ("json", "jsonl"):  # a record stream: one row of the matrix per text, an array of them for json
        rows = ({"line": i + 1, "text": t, "similarity": row} for i, (t, row) in enumerate(zip(texts, record["matrix"])))
        _to_file_or_stdout(out, lambda: output.emit(rows, fmt=fmt))
    elif fmt == "tsv":
        rows = ({"text": t, **{str(j + 1): f"{v:.4f}" for j, v in enumerate(row)}} for t, row in zip(texts, record["matrix"]))
        _to_file_or_stdout(out, lambda: output.emit(rows, fmt="tsv"))
    else:
        _to_file_or_stdout(out, lambda: output.emit_one(record, table=lambda r: _similarity_table(r), fmt=fmt))


def _to_file_or_stdout(out: Path | None, write) -> None:
    if out is None:
        write()
        return
    import contextlib

    with output.atomic_write(out, "w") as handle, contextlib.redirect_stdout(handle):
        write()


def _short(text: str, width: int = 40) -> str:
    text = text.replace("\n", " ")
    return text if len(text) <= width else text[: width - 1] + "…"


def _edge() -> int:
    """Values shown at each end of a vector: 3 on a wide terminal, 2 on a narrow one."""
    return EDGE if output.console().width >= 110 else 2


def _fmt_values(values, edge: int = EDGE) -> str:
    vals = list(values)
    if len(vals) <= 2 * edge:
        return "[" + ", ".join(f"{v:+.4f}" for v in vals) + "]"
    head = ", ".join(f"{v:+.4f}" for v in vals[:edge])
    tail = ", ".join(f"{v:+.4f}" for v in vals[-edge:])
    return f"[{head}, …, {tail}]"


def _table(records: list[dict], embedder, dtype: str):
    import math

    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    dim = embedder.dim
    edge = _edge()
    none = embedder.pooling == "none"
    norm_on = " · L2-normalized" if embedder.normalize else ""
    describe = f"{embedder.pooling} pooling · layer {embedder.layer_label}{norm_on}"
    if none:
        parts = []
        for rec in records:
            n = len(rec["tokens"])
            parts.append(Text.assemble((f"line {rec['line']}: ", "bold"), rec["text"],
                                       (f"   shape ({n}, {dim}) {dtype} · {describe}", "dim")))
            table = Table(show_edge=False, header_style="bold", pad_edge=False)
            for name, justify in (("#", "right"), ("token", "left"), ("vector", "left"), ("norm", "right")):
                table.add_column(name, justify=justify)
            for i, (token, vec) in enumerate(zip(rec["tokens"], rec["vector"])):
                norm = math.sqrt(sum(v * v for v in vec))
                table.add_row(str(i), token, _fmt_values(vec, edge), f"{norm:.4f}")
            parts += [table, Text("")]
        return Group(*parts)
    title = Text.assemble((f"shape ({len(records)}, {dim}) {dtype}", "bold"), (f" · {describe}", "dim"))
    table = Table(show_edge=False, header_style="bold", pad_edge=False)
    for name, justify in (("line", "right"), ("text", "left"), ("tokens", "right"), ("vector", "left"), ("norm", "right")):
        if name == "text":
            room = output.console().width - (4 + 6 + len(_fmt_values([0.0] * (2 * edge + 1), edge)) + 6 + 13)
            table.add_column(name, justify=justify, max_width=max(10, min(40, room)), overflow="ellipsis", no_wrap=True)
        else:
            table.add_column(name, justify=justify, no_wrap=True, min_width=len(name))
    for rec in records:
        vec = rec["vector"]
        norm = math.sqrt(sum(v * v for v in vec))
        table.add_row(str(rec["line"]), _short(rec["text"]), str(rec["n_tokens"]), _fmt_values(vec, edge), f"{norm:.4f}")
    return Group(title, table)


def _similarity_table(record: dict):
    from rich.table import Table

    table = Table(show_edge=False, header_style="bold", pad_edge=False, title="cosine similarity")
    table.add_column("", justify="right")
    table.add_column("text")
    for j in range(len(record["texts"])):
        table.add_column(str(j + 1), justify="right")
    for i, (text, row) in enumerate(zip(record["texts"], record["matrix"])):
        table.add_row(str(i + 1), _short(text, 30), *(f"{v:.4f}" for v in row))
    return table

"""`bertcli download`: fetch a hub model (config, tokenizer, one weights format) into the HF cache or a folder."""

from __future__ import annotations

from typing import Annotated

import typer

from bertcli import hub, output, settings
from bertcli.choices import BASE_FORMATS, choice_enum
from bertcli.commands._common import (
    FORMAT_HELP,
    QuietOpt,
    RevisionOpt,
    apply_output,
    complete_model,
    examples,
    format_option,
)
from bertcli.errors import UsageError
from bertcli.units import format_bytes

EXAMPLES = examples(
    "bertcli download albert",
    "bertcli download google/electra-small-discriminator --dry-run",
    "bertcli download FacebookAI/roberta-base config.json vocab.json merges.txt",
    "bertcli download bert --local-dir ./BertModel",
    "bertcli embed -m \"$(bertcli download albert -q)\" \"Beijing is a beautiful city\"",
)

#: ``path``: the snapshot folder on stdout (what auto and table print too)
FORMATS = ("auto", "path", *BASE_FORMATS[1:])
DownloadFormat = choice_enum("DownloadFormat", FORMATS)
DownloadFormatOpt = format_option(DownloadFormat, FORMAT_HELP + ", path (the folder only)")


def download(
    model: Annotated[str, typer.Argument(metavar="MODEL", autocompletion=complete_model, help="Alias (bert, albert, …) or hub id org/name[@rev].", show_default=False)],
    files: Annotated[list[str] | None, typer.Argument(metavar="FILES", help="Only these files (paths in the repo).", show_default=False)] = None,
    revision: RevisionOpt = None,
    include: Annotated[list[str] | None, typer.Option("--include", help="Glob of files to fetch instead of the default selection (repeatable).", show_default=False)] = None,
    exclude: Annotated[list[str] | None, typer.Option("--exclude", help="Glob of files to leave out (repeatable).", show_default=False)] = None,
    allow_pickle: Annotated[bool, typer.Option("--allow-pickle", help="Allow pickle weights (pytorch_model.bin): loading them can run code.")] = False,
    local_dir: Annotated[str | None, typer.Option("--local-dir", help="Write a plain folder here instead of the HF cache.", show_default=False)] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="List what would be fetched (sizes, already cached) and stop.")] = False,
    lock_timeout: Annotated[float, typer.Option("--lock-timeout", help="Seconds to wait for another process downloading the same files (0: forever).")] = hub.DEFAULT_LOCK_TIMEOUT,
    token: Annotated[str | None, typer.Option("--token", help="Hub token for gated or private repos (default: HF_TOKEN).", show_default=False)] = None,
    fmt: DownloadFormatOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """Download a hub model into the Hugging Face cache (shared with transformers and `hf`), or --local-dir.

    By default it fetches what running the model needs: config, tokenizer files, and ONE weights format —
    safetensors when the repo has it; pickle weights (pytorch_model.bin) only with --allow-pickle.
    Prints the snapshot folder on stdout (a JSON record with --format json); progress goes to stderr.
    """
    apply_output(fmt, quiet)
    from bertcli.resolve import canonical_repo_id, split_revision

    name, rev_in_ref = split_revision(model)
    if revision and rev_in_ref and revision != rev_in_ref:
        raise UsageError(f"two revisions given: {model!r} and --revision {revision}")
    repo_id, _alias = canonical_repo_id(name)
    fmt_resolved = (output.current().settings.format or "auto").lower()
    if fmt_resolved not in FORMATS:  # the global --format takes every command's formats
        raise UsageError(f"unknown --format {fmt_resolved!r}; choose one of: {', '.join(FORMATS)}")
    progress = hub.SilentProgress() if dry_run else output.DownloadProgressBar()
    result = hub.download(
        repo_id, revision=revision or rev_in_ref, files=files or None, include=include or None,
        exclude=exclude or None, allow_pickle=allow_pickle, cache_dir=settings.current().cache_dir, local_dir=local_dir,
        token=token or settings.current().token, offline=settings.current().offline, dry_run=dry_run,
        lock_timeout=lock_timeout or None, progress=progress,
    )
    if dry_run:
        _emit_plan(result, fmt_resolved)
        return
    record = result.record()
    if fmt_resolved in ("auto", "path", "table"):
        typer.echo(str(result.path))
    else:
        output.emit_one(record, fmt=fmt_resolved)


def _emit_plan(result: hub.DownloadResult, fmt: str) -> None:
    planned = result.planned
    fetch = [p for p in planned if not p.cached]
    output.info(f"{result.repo_id}@{result.revision} ({(result.commit or '')[:12]}): would fetch {len(fetch)} "
                f"file(s), {format_bytes(sum(p.size or 0 for p in fetch))}; {len(planned) - len(fetch)} already cached")
    if fmt in ("auto", "path"):
        fmt = output.resolve_format()
    output.emit((p.record() for p in planned), fmt=fmt, table=_plan_table,
                tsv_columns=["file", "size", "cached", "will_download"])


def _plan_table(records: list[dict]):
    from rich.table import Table

    table = Table(show_edge=False, header_style="bold")
    table.add_column("file")
    table.add_column("size", justify="right")
    table.add_column("status")
    for rec in records:
        table.add_row(rec["file"], format_bytes(rec["size"]),
                      "[dim]cached[/dim]" if rec["cached"] else "[green]download[/green]")
    return table

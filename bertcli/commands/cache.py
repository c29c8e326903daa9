"""`bertcli cache`: list, remove and verify the models in the Hugging Face hub cache (no network)."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from bertcli import output, settings
from bertcli.commands._common import FormatOpt, QuietOpt, apply_output, complete_model, examples
from bertcli.errors import ModelFileError, UsageError
from bertcli.units import format_bytes

app = typer.Typer(
    name="cache",
    help="List, remove and verify cached hub models (the cache shared with transformers and `hf`).",
    no_args_is_help=True,
    rich_markup_mode="rich",
    context_settings={"help_option_names": ["-h", "--help"]},
    epilog=examples("bertcli cache ls", "bertcli cache rm albert -y", "bertcli cache verify org/name"),
)

ModelArg = Annotated[str, typer.Argument(metavar="MODEL[@REV]", autocompletion=complete_model, help="Alias or hub id, optionally @branch/tag/commit.", show_default=False)]


@app.command("ls", epilog=examples("bertcli cache ls", "bertcli cache ls --all --format json"))
def ls(
    all_repos: Annotated[bool, typer.Option("--all", help="Every cached repo, not only BERT-family models.")] = False,
    fmt: FormatOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """List cached models: repo, revisions, size, last used, files, and whether the weights are complete."""
    apply_output(fmt, quiet)
    from bertcli import cache

    fmt_resolved = output.resolve_format()
    models = cache.list_models(settings.current().cache_dir, all_repos=all_repos)
    for problem in cache.cache_problems(settings.current().cache_dir):
        output.warn(f"unreadable cache entry: {problem}")
    if not models:
        from bertcli.env import hub_cache_dir

        root = hub_cache_dir(settings.current().cache_dir)
        if all_repos or not cache.list_models(settings.current().cache_dir, all_repos=True):
            output.info(f"the hub cache {root} holds no models")
        else:
            output.info(f"the hub cache {root} holds no BERT-family models (--all lists the other repos)")
    output.emit((m.record() for m in models), fmt=fmt_resolved, table=_ls_table, tsv_rows=_ls_rows,
                tsv_columns=["repo", "family", "commit", "refs", "size", "weights", "files", "last_used"])


def _ls_rows(record: dict):
    for rev in record["revisions"] or [{"commit": "", "refs": [], "size": 0, "weights": "", "files": []}]:
        yield {"repo": record["repo"], "family": record["family"], "commit": rev["commit"], "refs": rev["refs"],
               "size": rev["size"], "weights": rev["weights"], "files": rev["files"], "last_used": record["last_used"]}


def _ls_table(records: list[dict]):
    from bertcli.commands._common import fit_table

    # repo ids never wrap or truncate (they are copied into `cache rm`); the revision column folds, and
    # narrow terminals lose last used, then files, family, size and weights (all in `-f json`)
    return fit_table(lambda dropped: _ls_table_without(records, dropped),
                     ("last used", "files", "family", "size", "weights"))


def _ls_table_without(records: list[dict], dropped: set[str]):
    from rich.table import Table

    table = Table(show_edge=False, header_style="bold")
    columns = [c for c in ("repo", "family", "revision", "size", "weights", "files", "last used") if c not in dropped]
    longest = max((len(r["repo"]) for r in records), default=4)
    for col in columns:
        if col == "repo":
            table.add_column(col, overflow="fold", min_width=longest)  # folds only on a terminal narrower than an id
        elif col == "revision":
            table.add_column(col, overflow="fold", min_width=12)  # the short commit stays whole
        elif col == "last used":
            table.add_column(col, min_width=10)  # wraps between date and time
        else:
            table.add_column(col, justify="right" if col in ("size", "files") else "left", no_wrap=True)
    for rec in records:
        for i, rev in enumerate(rec["revisions"]):
            refs = ",".join(rev["refs"])
            weights = {"complete": "[green]complete[/green]", "incomplete": "[red]incomplete[/red]"}.get(
                rev["weights"], "[dim]none[/dim]")
            cells = {"repo": rec["repo"] if i == 0 else "", "family": rec["family"] if i == 0 else "",
                     "revision": f"{rev['commit'][:12]}" + (f" ({refs})" if refs else ""),
                     "size": format_bytes(rev["size"]), "weights": weights, "files": str(len(rev["files"])),
                     "last used": rec["last_used"].replace("T", " ")[:16] if i == 0 else ""}
            table.add_row(*(cells[c] for c in columns))
        if rec["partial_downloads"]:
            note = {"revision": f"[yellow]{rec['partial_downloads']} partial download(s)[/yellow]"}
            table.add_row(*(note.get(c, "") for c in columns))
    return table


@app.command("rm", epilog=examples("bertcli cache rm albert", "bertcli cache rm org/name@main -y"))
def rm(
    model: ModelArg,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show what would be removed and stop.")] = False,
    fmt: FormatOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """Remove a cached model (or one revision with @REV) and report the bytes freed.

    Asks for confirmation on a terminal unless -y. Only paths inside the cache folder are ever deleted.
    """
    apply_output(fmt, quiet)
    from bertcli import cache

    fmt_resolved = output.resolve_format()
    removal = cache.plan_removal(model, cache_dir=settings.current().cache_dir)
    what = removal.repo_id if removal.whole_repo else f"{removal.repo_id} ({', '.join(c[:12] for c in removal.commits)})"
    record = removal.record() | {"removed": False}
    if dry_run:
        output.info(f"would remove {what}, freeing {format_bytes(removal.freed_bytes)}")
        output.emit_one(record, fmt=fmt_resolved, table=_rm_view)
        return
    if not yes and sys.stdin.isatty():
        if not typer.confirm(f"Remove {what} ({format_bytes(removal.freed_bytes)}) from the cache?", default=False,
                             err=True):
            raise UsageError("nothing removed (not confirmed)")
    freed = cache.remove(removal)
    output.info(f"removed {what}: freed {format_bytes(freed)}")
    output.emit_one(record | {"removed": True, "freed_bytes": freed}, fmt=fmt_resolved, table=_rm_view)


def _rm_view(record: dict):
    verb = "removed" if record["removed"] else "would remove"
    return f"{verb} {record['repo']}: {format_bytes(record['freed_bytes'])} ({record['freed_bytes']} bytes)"


@app.command("verify", epilog=examples("bertcli cache verify albert", "bertcli cache verify org/name@main -f json"))
def verify(model: ModelArg, fmt: FormatOpt = None, quiet: QuietOpt = False) -> None:
    """Check every cached file of a model against the hub's sha256 / git hash, its listed size and its header.

    Reports corrupt, truncated or missing files and exits non-zero (6) if there is any. No network needed:
    the cache names each file after the hash the hub gave for it. Cached hub models only: a local folder has
    no hub hashes (`bertcli inspect FOLDER --tensors` reads its weights' headers).
    """
    apply_output(fmt, quiet)
    from bertcli import cache

    fmt_resolved = output.resolve_format()
    checks = cache.verify(model, cache_dir=settings.current().cache_dir)
    output.emit((c.record() for c in checks), fmt=fmt_resolved, table=_verify_table,
                tsv_columns=["commit", "file", "size", "status", "check", "detail"])
    failed = [c for c in checks if c.failed]
    if failed:
        names = ", ".join(f"{c.file} ({c.detail or c.status})" for c in failed[:3])
        raise ModelFileError(f"{len(failed)} of {len(checks)} cached files failed verification: {names}",
                             hint=f"run `bertcli cache rm {model} -y` and download it again")
    output.info(f"{sum(c.status == 'ok' for c in checks)} files verified")


def _verify_table(records: list[dict]):
    from rich.table import Table

    table = Table(show_edge=False, header_style="bold")
    for col in ("revision", "file", "size", "status", "check", "detail"):
        table.add_column(col, justify="right" if col == "size" else "left")
    colors = {"ok": "green", "corrupt": "red", "missing": "red", "partial": "yellow"}
    for rec in records:
        status = f"[{colors.get(rec['status'], 'white')}]{rec['status']}[/]"
        table.add_row(rec["commit"][:12], rec["file"], format_bytes(rec["size"]), status, rec["check"] or "",
                      rec["detail"])
    return table

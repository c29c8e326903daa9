"""`bertcli models`: the aliases bertcli knows, their hub ids, and whether each is in the local cache."""

from __future__ import annotations

from bertcli import output
from bertcli.commands._common import FormatOpt, QuietOpt, apply_output, examples

EXAMPLES = examples("bertcli models", "bertcli models --format json | jq -r '.[].repo_id'")


def models(fmt: FormatOpt = None, quiet: QuietOpt = False) -> None:
    """List the model aliases (bert, albert, roberta, electra, …), their hub ids, and which are cached."""
    apply_output(fmt, quiet)
    from bertcli.cli import run_settings
    from bertcli.resolve import ALIASES, lookup_cached_snapshot

    fmt_resolved = output.resolve_format()
    records = []
    for alias in ALIASES.values():
        snapshot = lookup_cached_snapshot(alias.repo_id, cache_dir=run_settings.cache_dir)
        records.append({
            "alias": alias.name,
            "repo_id": alias.repo_id,
            "legacy_ids": list(alias.legacy_ids),
            "family": alias.family,
            "description": alias.description,
            "cached": snapshot is not None,
            "path": str(snapshot) if snapshot else None,
        })
    output.emit(records, table=_table, fmt=fmt_resolved,
                tsv_columns=["alias", "repo_id", "family", "cached", "description"])


def _table(records: list[dict]):
    from rich.table import Table

    table = Table(show_edge=False, header_style="bold")
    table.add_column("alias", no_wrap=True)
    table.add_column("hub id", no_wrap=True)
    for col in ("family", "cached", "description"):
        table.add_column(col)
    for rec in records:
        hub = rec["repo_id"] + (f"\n[dim]legacy: {', '.join(rec['legacy_ids'])}[/dim]" if rec["legacy_ids"] else "")
        table.add_row(f"[bold]{rec['alias']}[/bold]", hub, rec["family"],
                      "[green]yes[/green]" if rec["cached"] else "[dim]no[/dim]", rec["description"])
    return table

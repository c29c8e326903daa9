"""`bertcli models`: the aliases bertcli knows, their hub ids, and whether each is in the local cache."""

from __future__ import annotations

from bertcli import output, settings
from bertcli.commands._common import FormatOpt, QuietOpt, apply_output, examples

EXAMPLES = examples("bertcli models", "bertcli models --format json | jq -r '.[].repo_id'")


def models(fmt: FormatOpt = None, quiet: QuietOpt = False) -> None:
    """List the model aliases (bert, albert, roberta, electra, …), their hub ids, and which are cached."""
    apply_output(fmt, quiet)
    from bertcli.resolve import ALIASES, lookup_cached_snapshot

    fmt_resolved = output.resolve_format()
    records = []
    for alias in ALIASES.values():
        snapshot = lookup_cached_snapshot(alias.repo_id, cache_dir=settings.current().cache_dir)
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
    from bertcli.commands._common import fit_table

    # hub ids never truncate: on a narrow terminal the description moves under the id instead of being cut,
    # then (long family names such as ModernBERT) the family moves under the alias
    return fit_table(lambda dropped: _table_without(records, dropped), ("description", "family"))


def _table_without(records: list[dict], dropped: set[str]):
    from rich.table import Table

    table = Table(show_edge=False, header_style="bold")
    longest = max((len(r["repo_id"]) for r in records), default=6)
    table.add_column("alias", no_wrap=True)
    table.add_column("hub id", overflow="fold", min_width=longest)
    if "family" not in dropped:
        table.add_column("family", no_wrap=True)
    table.add_column("cached", no_wrap=True)
    if "description" not in dropped:
        table.add_column("description", min_width=24)
    for rec in records:
        hub = rec["repo_id"] + (f"\n[dim]legacy: {', '.join(rec['legacy_ids'])}[/dim]" if rec["legacy_ids"] else "")
        if "description" in dropped:
            hub += f"\n[italic]{rec['description']}[/italic]"
        alias = f"[bold]{rec['alias']}[/bold]" + (f"\n[cyan]{rec['family']}[/cyan]" if "family" in dropped else "")
        cells = [alias, hub, *(() if "family" in dropped else (rec["family"],)),
                 "[green]yes[/green]" if rec["cached"] else "[dim]no[/dim]"]
        table.add_row(*cells, *(() if "description" in dropped else (rec["description"],)))
    return table

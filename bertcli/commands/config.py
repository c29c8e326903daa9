"""`bertcli config`: a model's config, grouped, with parameter arithmetic — from config.json alone."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from bertcli import output
from bertcli.commands._common import (
    FormatOpt,
    ModelOpt,
    QuietOpt,
    RevisionOpt,
    apply_output,
    complete_model,
    examples,
    resolve,
)
from bertcli.errors import ModelFileError, UsageError

EXAMPLES = examples(
    "bertcli config roberta",
    "bertcli config -m ./AlbertModel",
    "bertcli config albert --diff bert",
    "bertcli config electra --format json | jq .parameters.total",
)


def config(
    model_arg: Annotated[str | None, typer.Argument(metavar="[MODEL]", autocompletion=complete_model, help="Model (same as --model).", show_default=False)] = None,
    model: ModelOpt = None,
    diff: Annotated[str | None, typer.Option("--diff", autocompletion=complete_model, help="Show only the fields that differ from this model, side by side.")] = None,
    params: Annotated[bool, typer.Option("--params/--no-params", help="Show the parameter arithmetic.")] = True,
    revision: RevisionOpt = None,
    fmt: FormatOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """Show a model's config grouped (architecture, sizes, tokens, dropout, other) with parameter counts.

    Works from config.json alone: no weights, no torch. For ALBERT it shows the factorized embedding
    (V·E + E·H instead of V·H) and what cross-layer sharing saves; for ELECTRA the E→H projection.
    """
    apply_output(fmt, quiet)
    if model_arg and model and model_arg != model:
        raise UsageError("give the model once: as MODEL or with --model")
    ref = model_arg or model
    fmt_resolved = output.resolve_format()
    resolved = resolve(ref, revision=revision, config_only=True)
    cfg = _require_config(resolved)
    if diff is not None:
        other = resolve(diff, config_only=True)
        other_cfg = _require_config(other)
        rows = diff_configs(cfg, other_cfg)
        names = (resolved.display_name, other.display_name)
        output.emit(({"field": k, "a": a, "b": b} for k, a, b in rows), fmt=fmt_resolved,
                    table=lambda recs: _diff_table(recs, names), tsv_columns=["field", "a", "b"])
        return
    record = config_record(resolved, cfg, with_params=params)
    if fmt_resolved == "tsv":
        output.emit(({"group": g, "field": k, "value": v} for g, rows in record["groups"] for k, v in rows),
                    fmt="tsv", tsv_columns=["group", "field", "value"])
        return
    record = dict(record)
    record.pop("groups")
    output.emit_one(record, table=lambda rec: _config_view(rec, cfg), fmt=fmt_resolved)


def _require_config(resolved) -> dict[str, Any]:
    if not resolved.has_config:
        raise ModelFileError(f"{resolved.display_name} has no config.json (a tokenizer alone has no model config)")
    return resolved.config


def config_record(resolved, cfg: dict[str, Any], *, with_params: bool = True) -> dict[str, Any]:
    from bertcli.config import count_parameters, grouped_fields

    record: dict[str, Any] = {
        "model": resolved.display_name,
        "family": resolved.family,
        "path": str(resolved.path),
        "config": {k: v for k, v in cfg.items()},
        "groups": grouped_fields(cfg),
    }
    if resolved.commit:
        record["commit"] = resolved.commit
    if resolved.source == "bundled":  # bertcli's own copy of an alias's config.json (see bertcli/bundled.py)
        record["source"] = "bundled"
    if with_params:
        try:
            record["parameters"] = count_parameters(cfg).as_record()
        except ValueError as exc:
            from bertcli.config import ConfigSizeError

            record["parameters"] = None
            record["parameters_unavailable"] = str(exc)
            if isinstance(exc, ConfigSizeError):  # a corrupt config: say so loudly, not only in the record
                output.warn(f"{resolved.display_name}: {exc}")
    return record


def diff_configs(a: dict[str, Any], b: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    """Fields whose values differ (missing on one side shows as None), sorted by name. A DistilBERT config's
    sizes are compared under BERT's names too (``dim`` as ``hidden_size`` …), so that families line up."""
    from bertcli.limits import bert_names

    a, b = bert_names(a), bert_names(b)
    keys = sorted(set(a) | set(b))
    return [(k, a.get(k), b.get(k)) for k in keys if a.get(k) != b.get(k) and not k.startswith("_")]


def _fmt_value(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return str(value).lower() if isinstance(value, bool) else "—"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, (list, dict)):
        import json

        return json.dumps(value, ensure_ascii=False)
    return str(value)


def _config_view(record: dict, cfg: dict):
    from rich.console import Group
    from rich.table import Table

    from bertcli.config import grouped_fields

    from rich.text import Text

    title = Text.assemble((record["model"], "bold"), "  ·  ", (record["family"], "cyan"),
                          ("  (bundled config.json)" if record.get("source") == "bundled" else "", "dim"))
    table = Table(show_edge=False, header_style="bold")
    table.add_column("group", style="cyan")
    table.add_column("field")
    table.add_column("value", justify="right")
    for group, rows in grouped_fields(cfg):
        for i, (key, value) in enumerate(rows):
            table.add_row(group if i == 0 else "", key, _fmt_value(value))
        table.add_section()
    parts: list = [title, table]
    params = record.get("parameters")
    if params:
        parts += ["", _params_view(params)]
    elif record.get("parameters_unavailable"):
        parts.append(f"[dim]parameters: {record['parameters_unavailable']}[/dim]")
    return Group(*parts)


def _params_view(params: dict):
    from rich.console import Group
    from rich.table import Table

    table = Table(title=f"parameters ({params['architecture']})", show_edge=False, header_style="bold",
                  title_justify="left")
    table.add_column("part")
    table.add_column("parameters", justify="right")
    table.add_column("how", style="dim")
    for part in params["parts"]:
        table.add_row(part["name"], f"{part['params']:,}", part["formula"])
    table.add_section()
    table.add_row("[bold]total[/bold]", f"[bold]{params['total']:,}[/bold]", "")
    table.add_row("encoder layer", f"{params['per_layer']:,}", f"× {params['stored_layers']} stored, "
                  f"{params['run_layers']} run")
    parts: list = [table]
    fact = params.get("factorized_embedding")
    if fact:
        parts.append(
            f"\n[bold]factorized embedding[/bold]: V·E + E·H = {fact['V']:,}·{fact['E']} + {fact['E']}·{fact['H']} = "
            f"{fact['factorized']:,}  instead of  V·H = {fact['unfactorized']:,}  → saves {fact['saved']:,}"
        )
    share = params.get("sharing")
    if share:
        parts.append(
            f"[bold]cross-layer sharing[/bold]: {share['num_hidden_groups']} group(s) × {share['inner_group_num']} "
            f"layer(s) stored = {share['stored_layer_params']:,} parameters, run {share['num_hidden_layers']} times; "
            f"unshared would be {share['unshared_layer_params']:,}  → saves {share['saved']:,}"
        )
    proj = params.get("embedding_projection")
    if proj:
        parts.append(
            f"\n[bold]embedding projection[/bold]: embeddings of size E={proj['E']} projected to H={proj['H']} "
            f"({proj['params']:,} parameters); V·E + projection = {proj['embedding_params_factorized']:,} "
            f"vs V·H = {proj['embedding_params_if_unfactorized']:,}"
        )
    return Group(*parts)


def _diff_table(records: list[dict], names: tuple[str, str]):
    from rich.table import Table

    table = Table(show_edge=False, header_style="bold")
    table.add_column("field")
    table.add_column(names[0], justify="right")
    table.add_column(names[1], justify="right")
    for rec in records:
        table.add_row(rec["field"], _fmt_value(rec["a"]), _fmt_value(rec["b"]))
    if not records:
        table.caption = "no differences"
    return table

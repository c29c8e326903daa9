"""`bertcli variants`: the BERT-family catalog, one variant in detail, live numbers from a model's config."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from bertcli import output
from bertcli.commands._common import FormatOpt, ModelOpt, QuietOpt, apply_output, examples, resolve
from bertcli.errors import ModelFileError

EXAMPLES = examples(
    "bertcli variants",
    "bertcli variants albert",
    "bertcli variants -m ./AlbertModel",
    "bertcli variants albert -m albert --format json | jq .live.factorized_embedding",
)

OBJECTIVE_STYLES = {"MLM": "bold blue", "NSP": "bold magenta", "SOP": "bold yellow", "RTD": "bold red",
                    "SBO": "bold green",
                    "KD": "bold cyan", "COS": "bold cyan"}
MASKING_STYLES = {"static": "cyan", "dynamic": "magenta", "span": "green"}


def variants(
    variant: Annotated[str | None, typer.Argument(metavar="[VARIANT]", help="Show one variant in detail: bert, albert, roberta, electra, spanbert, distilbert, xlm-roberta, deberta, modernbert.", show_default=False)] = None,
    model: ModelOpt = None,
    fmt: FormatOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """The BERT-family variants side by side: objectives, masking, tokenizer, parameter tricks, hub ids.

    With -m MODEL, numbers computed from that model's config.json (no weights needed) fill the catalog:
    parameters, and for ALBERT the factorized embedding V·E + E·H vs V·H and what cross-layer sharing saves.
    """
    apply_output(fmt, quiet)
    from bertcli.variants import catalog, get_variant, live_numbers, variant_record

    chosen = get_variant(variant) if variant is not None else None
    fmt_resolved = output.resolve_format()
    live = None
    if model is not None:
        resolved = resolve(model, config_only=True)
        if not resolved.has_config:
            raise ModelFileError(f"{resolved.display_name} has no config.json: live numbers need the model's config")
        try:
            live = live_numbers(resolved.config, name_hints=[resolved.repo_id or "", str(resolved.path),
                                                             resolved.alias or ""])
        except ValueError as exc:
            raise ModelFileError(f"{resolved.display_name}: {exc}") from exc
        live = {"model": resolved.display_name, **live}
        if resolved.source == "bundled":
            live["source"] = "bundled"
        if chosen is not None and live["family"] != chosen.name:
            output.warn(f"{resolved.display_name} is {live['family']}, not {chosen.name}: its numbers are shown anyway")

    if chosen is not None:
        record = variant_record(chosen)
        if live is not None:
            record["live"] = live
        output.emit_one(record, table=_detail_view, fmt=fmt_resolved)
        return
    records = catalog()
    if live is not None:
        for rec in records:
            if rec["variant"] == live["family"]:
                rec["live"] = live
        if not any("live" in rec for rec in records):
            output.warn(f"{live['model']} is not one of the catalog's variants ({live['model_type']}); "
                        "its numbers are shown below the catalog")
            records.append({"variant": None, "live": live})
    output.emit(records, table=_catalog_view, fmt=fmt_resolved,
                tsv_columns=["variant", "objectives", "masking", "tokenizer", "marker", "tricks", "aliases"],
                tsv_rows=_tsv_rows)


def _tsv_rows(record: dict):
    if record.get("variant") is None:
        return []
    row = dict(record)
    row["aliases"] = [a["alias"] for a in record["aliases"]]
    return [row]


def _objectives(objectives: list[str]):
    from rich.text import Text

    text = Text()
    for i, name in enumerate(objectives):
        if i:
            text.append(" + ")
        text.append(name, style=OBJECTIVE_STYLES.get(name, "bold"))
    return text


def _hub(record: dict) -> str:
    return "\n".join(f"[bold]{a['alias']}[/bold] → {a['repo_id']}" for a in record["aliases"]) or "—"


def _catalog_view(records: list[dict]):
    from rich.console import Group
    from rich.table import Table

    table = Table(show_edge=False, header_style="bold", show_lines=True, title_justify="left",
                  title="BERT-family variants: what each changes in BERT")
    table.add_column("variant", style="bold")
    table.add_column("objectives")
    table.add_column("masking")
    table.add_column("tokenizer")
    table.add_column("parameter tricks")
    table.add_column("alias → hub id", overflow="fold")
    lives = []
    for rec in records:
        if rec.get("variant") is None:
            lives.append(rec["live"])
            continue
        name = rec["variant"] + ("\n[green]◀ model[/green]" if "live" in rec else "")
        table.add_row(
            name,
            _objectives(rec["objectives"]),
            f"[{MASKING_STYLES.get(rec['masking'], 'white')}]{rec['masking']}[/]",
            f"{rec['tokenizer']}\n[dim]marker[/dim] {rec['marker']}" if rec["marker"] else rec["tokenizer"],
            "\n".join(f"• {t}" for t in rec["tricks"]) or "[dim]—[/dim]",
            _hub(rec),
        )
        if "live" in rec:
            lives.append(rec["live"])
    parts: list[Any] = [table]
    legend = "  ".join(f"[{OBJECTIVE_STYLES[k]}]{k}[/] {k_desc.split(':')[0]}" for k, k_desc in _objective_items())
    parts.append(f"[dim]objectives:[/dim] {legend}")
    parts.append("[dim]run them:[/dim] " + "  ".join(f"[{OBJECTIVE_STYLES.get(k, 'bold')}]{k}[/] {command}"
                                                    for k, command in _objective_commands().items()))
    for live in lives:
        parts += ["", _live_view(live)]
    return Group(*parts)


def _objective_commands() -> dict[str, str]:
    from bertcli.variants import OBJECTIVE_COMMANDS

    return OBJECTIVE_COMMANDS


def _objective_items():
    from bertcli.variants import OBJECTIVES

    return OBJECTIVES.items()


def _detail_view(record: dict):
    from rich.console import Group
    from rich.panel import Panel
    from rich.table import Table

    from bertcli.variants import MASKINGS, OBJECTIVES

    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold", justify="right")
    grid.add_column()
    grid.add_row("changes", "\n".join(f"• {c}" for c in record["changes"]))
    commands = _objective_commands()
    grid.add_row("objectives", "\n".join(
        f"[{OBJECTIVE_STYLES.get(o, 'bold')}]{o}[/] {OBJECTIVES[o]}"
        + (f"\n    [dim]run it:[/dim] {commands[o]}" if o in commands else "") for o in record["objectives"]))
    masking = record["masking"]
    grid.add_row("masking", f"[{MASKING_STYLES.get(masking, 'white')}]{masking}[/]: {MASKINGS[masking]}\n"
                 f"{record['masking_detail']}\n[dim]see it:[/dim] bertcli mask TEXT -m MODEL --strategy "
                 f"{record['mask_strategy']}")
    tok = record["tokenizer"] + (f"  (pieces marked {record['marker']})" if record["marker"] else "")
    grid.add_row("tokenizer", tok)
    grid.add_row("tricks", "\n".join(f"• {t}" for t in record["trick_details"]) or "[dim]none: BERT's parameters[/dim]")
    grid.add_row("hub", _hub(record))
    parts: list[Any] = [Panel(grid, title=f"[bold]{record['variant']}[/bold] — {record['summary']}",
                              title_align="left", expand=False)]
    if "live" in record:
        parts.append(_live_view(record["live"]))
    return Group(*parts)


def _live_view(live: dict):
    from rich.console import Group
    from rich.table import Table

    s = live["sizes"]
    table = Table(title=f"live numbers: {live['model']}  ·  {live['family']}  ·  {live['architecture']}",
                  title_justify="left", show_edge=False, header_style="bold")
    table.add_column("quantity")
    table.add_column("value", justify="right")
    table.add_column("how", style="dim")
    table.add_row("parameters", f"[bold]{live['total']:,}[/bold]", f"{live['architecture']} (encoder alone: {live['base']:,})")
    table.add_row("sizes", f"V={s['V']:,} E={s['E']} H={s['H']}", f"{s['layers']} layers, {s['heads']} heads, FFN {s['intermediate']}")
    table.add_row("word embeddings", f"{live['word_embeddings']:,}",
                  f"V·E = {s['V']:,}·{s['E']}  ({live['word_embeddings_share']:.1%} of the parameters)")
    fact = live.get("factorized_embedding")
    if fact:
        table.add_row("[bold]factorized[/bold] V·E + E·H", f"[green]{fact['factorized']:,}[/green]",
                      f"{fact['V']:,}·{fact['E']} + {fact['E']}·{fact['H']}")
        table.add_row("unfactorized V·H", f"[red]{fact['unfactorized']:,}[/red]", f"{fact['V']:,}·{fact['H']}")
        table.add_row("saved by factorizing", f"[bold green]{fact['saved']:,}[/bold green]", "V·H − (V·E + E·H)")
    share = live.get("sharing")
    if share:
        table.add_row("layers stored / run", f"{live['stored_layers']} / {live['run_layers']}",
                      f"{share['num_hidden_groups']} group(s) × {share['inner_group_num']} layer(s), "
                      f"{live['per_layer']:,} parameters each")
        table.add_row("[bold]saved by sharing[/bold]", f"[bold green]{share['saved']:,}[/bold green]",
                      f"({share['num_hidden_layers']} − {live['stored_layers']}) × {live['per_layer']:,}")
    if live.get("saved_by_tricks") is not None:
        table.add_row("saved by both tricks", f"[bold green]{live['saved_by_tricks']:,}[/bold green]",
                      f"the model would have ≈{live['total'] + live['saved_by_tricks']:,} without them")
    distil = live.get("distillation")
    if distil:
        table.add_row("[bold]student / teacher[/bold]", f"[green]{distil['student_params']:,}[/green] / "
                      f"{distil['teacher_params']:,}", f"{distil['student_layers']} vs {distil['teacher_layers']} layers: "
                      f"{distil['share_of_teacher']:.0%} of the teacher")
    proj = live.get("embedding_projection")
    if proj:
        table.add_row("[bold]projection[/bold] E→H", f"{proj['params']:,}", f"E·H + H = {proj['E']}·{proj['H']} + {proj['H']}")
        table.add_row("V·E + projection", f"[green]{proj['embedding_params_factorized']:,}[/green]",
                      f"vs V·H = {proj['embedding_params_if_unfactorized']:,}")
    _deberta_modernbert_rows(table, live)
    return Group(table)


def _deberta_modernbert_rows(table, live: dict) -> None:
    """DeBERTa's relative positions; ModernBERT's GeGLU, biases left out, attention layout and tied decoder."""
    rel = live.get("relative_positions")
    if rel:
        span = rel["position_buckets"] or rel["max_relative_positions"]
        table.add_row("[bold]relative positions[/bold]", f"{rel['rel_embeddings']:,}",
                      f"2·{span}·H, {'/'.join(rel['pos_att_type'])}, "
                      + ("keys shared" if rel["share_att_key"]
                         else f"{rel['position_projections_per_layer']:,} per layer"))
        if not rel["absolute_positions_in_input"]:
            table.add_row("no position table in the input", f"[green]{rel['absolute_position_table_saved']:,}[/green]",
                          "P·E left out (enhanced mask decoder)")
    glu = live.get("glu")
    if glu:
        table.add_row("[bold]GeGLU[/bold] per layer", f"{glu['params_per_layer']:,}",
                      f"Wi H→2I = {glu['H']}·{2 * glu['I']}, Wo I→H = {glu['I']}·{glu['H']}")
    nob = live.get("no_bias")
    if nob:
        table.add_row("bias terms left out", f"[green]{nob['bias_params_left_out']:,}[/green]",
                      "attention, MLP and LayerNorm biases")
    att = live.get("attention_layers")
    if att:
        table.add_row("attention layers", f"{att['global']} global / {att['local']} local",
                      f"local window {att['local_window']} tokens; context {live['max_positions']:,}")
    tied = live.get("tied_decoder")
    if tied and tied["tied"]:
        table.add_row("tied MLM decoder", f"[green]{tied['decoder_params_saved']:,}[/green]",
                      "V·H shared with the embeddings")

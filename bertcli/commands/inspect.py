"""`bertcli inspect`: what a model is, what it can run, and its weight tensors — without loading it."""

from __future__ import annotations

from typing import Annotated

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
    "bertcli inspect ./all-MiniLM-L6-v2",
    "bertcli inspect albert --tensors",
    "bertcli inspect -m ./AlbertModel --tensors --filter '*embedding*'",
    "bertcli inspect spanbert --format json | jq '.capabilities[] | select(.available)'",
    "bertcli inspect ./old-bert --allow-pickle --tensors",
)

TENSOR_COLUMNS = ["module", "name", "shape", "dtype", "parameters", "file"]


def inspect(
    model_arg: Annotated[str | None, typer.Argument(metavar="[MODEL]", autocompletion=complete_model, help="Model (same as --model).", show_default=False)] = None,
    model: ModelOpt = None,
    tensors: Annotated[bool, typer.Option("--tensors", help="List the weight tensors (name, shape, dtype, parameters) grouped by module.")] = False,
    filter_: Annotated[str | None, typer.Option("--filter", metavar="GLOB", help="Only tensors whose name matches GLOB (implies --tensors; no wildcard = substring).")] = None,
    allow_pickle: Annotated[bool, typer.Option("--allow-pickle", help="Read pickle (.bin) weights, loaded with torch.load(weights_only=True).")] = False,
    revision: RevisionOpt = None,
    fmt: FormatOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """Show what a model is and what bertcli can run on it, from its files alone (no torch, no loading).

    Family, architectures, tokenizer (kind, files, special tokens and ids), max positions, token types, weight
    files (format, dtype, size), parameters checked against the config's arithmetic, and which commands can
    run (tokenize, embed, fill-mask, qa, detect) with the reason. --tensors lists the tensors from the
    safetensors header, grouped by module (embeddings, encoder layer i or ALBERT's shared group, pooler, heads).
    """
    apply_output(fmt, quiet)
    if model_arg and model and model_arg != model:
        raise UsageError("give the model once: as MODEL or with --model")
    show_tensors = tensors or filter_ is not None
    fmt_resolved = output.resolve_format()
    if fmt_resolved == "tsv" and not show_tensors:
        raise UsageError("--format tsv lists tensors: add --tensors (or use json for the summary)")

    from bertcli.inspect import inspect_model
    from bertcli.weights import filter_tensors

    resolved = resolve(model_arg or model, revision=revision, config_only=True)
    ins = inspect_model(resolved, allow_pickle=allow_pickle)
    selected = None
    if show_tensors:
        _require_tensors(ins)
        selected = filter_tensors(ins.tensors, filter_)
    for missing in ins.missing_packages:
        output.warn(f"{missing['needed_for']} needs {missing['package']}: {missing['install']}")
    for note in ins.notes:
        output.warn(note)
    if show_tensors and not selected:
        output.warn(f"no tensor name matches {filter_!r}")
    if fmt_resolved == "tsv":
        output.emit((_tensor_row(t) for t in selected or []), fmt="tsv", tsv_columns=TENSOR_COLUMNS)
        return
    record = ins.as_record(tensors=selected)
    if show_tensors:
        output.emit_one(record, table=lambda rec: _tensors_view(rec, filter_), fmt=fmt_resolved)
    else:
        output.emit_one(record, table=_summary_view, fmt=fmt_resolved)


def _require_tensors(ins) -> None:
    name = ins.resolved.display_name
    if not ins.resolved.has_config:
        raise ModelFileError(f"{name} is a tokenizer only: it has no weight tensors to list")
    if not ins.weight_files:
        raise ModelFileError(f"{name} has no weight files (model.safetensors or pytorch_model.bin)")
    if not ins.weights_read:
        pickles = [f.name for f in ins.weight_files if f.format == "pickle"]
        if pickles:
            raise ModelFileError(
                f"{name} has only pickle weights ({', '.join(pickles)}), which can run code when loaded",
                hint="pass --allow-pickle if you trust the source (they are then loaded with weights_only=True)",
            )
        raise ModelFileError(f"{name} has no safetensors or pickle weights bertcli can read "
                             f"({', '.join(f.name for f in ins.weight_files)})")


def _tensor_row(t: dict | object) -> dict:
    rec = t if isinstance(t, dict) else t.as_record()  # type: ignore[attr-defined]
    return {**rec, "shape": "×".join(map(str, rec["shape"])) or "scalar"}


# ---------------------------------------------------------------------------------------------------------
# table views


def _size(n: int) -> str:
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"  # pragma: no cover


def _esc(text: str) -> str:
    from rich.markup import escape

    return escape(str(text))


def _params_line(rec: dict) -> str:
    w = rec["weights"]
    if w["parameters"] is None:
        return "[dim]weights not read[/dim]"
    line = f"{w['parameters']:,} in {w['tensors']} tensors"
    if w["config_parameters"] is not None:
        line += ("  [green]= config arithmetic ✓[/green]" if w["matches_config"]
                 else f"  [red]≠ config arithmetic {w['config_parameters']:,}[/red]")
    if w["tied"]:
        line += (f"\n[dim]state_dict: {w['state_dict_parameters']:,} (+ tied "
                 + ", ".join(_esc(t["name"]) + " = " + _esc(t["tied_to"]) for t in w["tied"]) + ")[/dim]")
    return line


def _summary_view(rec: dict):
    from rich.console import Group
    from rich.table import Table

    tok = rec["tokenizer"]
    w = rec["weights"]
    table = Table(title=f"{_esc(rec['model'])}  ·  {rec['family']}", show_header=False, show_edge=False,
                  title_justify="left", box=None, padding=(0, 2, 0, 0))
    table.add_column(style="cyan", no_wrap=True)
    table.add_column()
    table.add_row("family", rec["family"] + (f" (model_type {rec['model_type']})" if rec["model_type"] else ""))
    if rec["architectures"]:
        table.add_row("architectures", ", ".join(rec["architectures"]))
    table.add_row("source", f"{rec['source']}  {_esc(rec['path'])}")
    if rec["repo_id"]:
        table.add_row("revision", f"{_esc(rec['repo_id'])}@{rec['revision'] or 'main'}"
                      + (f"  commit {rec['commit']}" if rec["commit"] else ""))
    if tok["kind"]:
        table.add_row("tokenizer", f"{tok['kind']} from {tok['source']}  [dim]({', '.join(tok['files'])})[/dim]")
        specials = "  ".join(f"{role.removesuffix('_token')} {_esc(v['token'])}={v['id'] if v['id'] is not None else '?'}"
                             for role, v in tok["special_tokens"].items())
        table.add_row("special tokens", specials or "[dim]unknown[/dim]")
    else:
        table.add_row("tokenizer", "[red]none[/red]")
    if rec["max_positions"] is not None or tok["model_max_length"] is not None:
        table.add_row("max positions", f"{rec['max_positions'] if rec['max_positions'] is not None else '—'}"
                      + (f"  (tokenizer max length {tok['model_max_length']})" if tok["model_max_length"] else ""))
    if rec["token_types"] is not None:
        table.add_row("token types", f"{rec['token_types']}  "
                      + ("(token_type_ids used)" if rec["uses_token_types"] else "(token_type_ids not used)"))
    if w["files"]:
        table.add_row("weights", "\n".join(
            f"{_esc(f['name'])}  {f['format']}, {_size(f['size'])}" + (f"  [dim]{_esc(f['note'])}[/dim]" if f.get("note") else "")
            for f in w["files"]))
        if w["dtype"]:
            table.add_row("dtype", w["dtype"])
        table.add_row("parameters", _params_line(rec))
    parts: list = [table, ""]
    caps = Table(show_edge=False, header_style="bold", box=None, padding=(0, 2, 0, 0))
    caps.add_column("command")
    caps.add_column("runs", justify="center")
    caps.add_column("why")
    for c in rec["capabilities"]:
        caps.add_row(c["command"], "[green]✓[/green]" if c["available"] else "[red]✗[/red]", _esc(c["reason"]))
    parts.append(caps)
    if w["modules"]:
        mods = Table(show_edge=False, header_style="bold", box=None, padding=(0, 2, 0, 0))
        mods.add_column("module")
        mods.add_column("tensors", justify="right")
        mods.add_column("parameters", justify="right")
        for m in w["modules"]:
            mods.add_row(m["module"], str(m["tensors"]), f"{m['parameters']:,}")
        parts += ["", mods]
    parts += _albert_electra_lines(w)
    for m in rec["missing_packages"]:
        parts.append(f"[yellow]missing:[/yellow] {_esc(m['package'])} for {_esc(m['needed_for'])}: {_esc(m['install'])}")
    return Group(*parts)


def _albert_electra_lines(w: dict) -> list[str]:
    lines = []
    fact = w.get("factorized_embedding")
    if fact:
        lines.append(f"\n[bold]factorized embedding[/bold]: word_embeddings V×E = {fact['V']:,}×{fact['E']} plus the "
                     f"E→H projection {fact['E']}×{fact['H']}: V·E + E·H = {fact['factorized']:,} instead of "
                     f"V·H = {fact['unfactorized']:,}")
    share = w.get("sharing")
    if share:
        lines.append(f"[bold]cross-layer sharing[/bold]: {share['num_hidden_groups']} shared layer group(s) × "
                     f"{share['inner_group_num']} layer(s) stored, run for all {share['num_hidden_layers']} layers "
                     f"(saves {share['saved']:,} parameters)")
    proj = w.get("embedding_projection")
    if proj:
        lines.append(f"\n[bold]embedding projection[/bold]: embeddings of size E={proj['E']} projected to "
                     f"H={proj['H']} ({proj['params']:,} parameters)")
    return lines


def _tensors_view(rec: dict, pattern: str | None):
    from rich.console import Group
    from rich.table import Table

    w = rec["weights"]
    shown = rec["tensors"]
    title = f"{_esc(rec['model'])}  ·  {rec['family']}  ·  {w['format']}"
    table = Table(title=title, show_edge=False, header_style="bold", title_justify="left")
    table.add_column("module", style="cyan", max_width=30)
    table.add_column("tensor", overflow="fold")
    table.add_column("shape", justify="right")
    table.add_column("dtype")
    table.add_column("parameters", justify="right")
    current = None
    subtotal = 0

    def close_group():
        if current is not None:
            table.add_row("", "[dim]subtotal[/dim]", "", "", f"[dim]{subtotal:,}[/dim]")
            table.add_section()

    for t in shown:
        if t["module"] != current:
            close_group()
            current, subtotal = t["module"], 0
            first = True
        else:
            first = False
        subtotal += t["parameters"]
        params = f"{t['parameters']:,}" if not t["buffer"] else "[dim]buffer[/dim]"
        table.add_row(t["module"] if first else "", _esc(t["name"]), "×".join(map(str, t["shape"])) or "scalar",
                      t["dtype"], params)
    close_group()
    matched = sum(t["parameters"] for t in shown)
    if pattern:
        table.add_row("[bold]matching[/bold]", f"{len(shown)} tensor(s) match {_esc(pattern)}", "", "",
                      f"[bold]{matched:,}[/bold]")
    table.add_row("[bold]total[/bold]", f"{w['tensors']} tensors", "", w["dtype"] or "", f"[bold]{w['parameters']:,}[/bold]")
    parts: list = [table, "", f"parameters: {_params_line(rec)}"]
    parts += _albert_electra_lines(w)
    return Group(*parts)

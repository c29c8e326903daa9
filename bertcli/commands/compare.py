"""`bertcli compare`: the same text through several tokenizers side by side, and where their splits differ."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from bertcli import output
from bertcli.commands._common import FormatOpt, QuietOpt, apply_output, complete_model, examples, resolve
from bertcli.errors import BadInputError, UsageError
from bertcli.inputs import iter_lines, require_nonempty

EXAMPLES = examples(
    "bertcli compare 'I had a sudden epiphany' -m bert -m albert -m roberta",
    "bertcli compare 'Beijing is a beautiful city' -m ./AlbertModel -m ./RobertaModel --special-tokens",
    "bertcli compare 'It was a great day' -m bert -m roberta --format json | jq '.differences.regions'",
    "cat lines.txt | bertcli compare -m bert -m roberta --format tsv",
)

#: The longest text compare takes, in characters (exit 5 beyond): a record lists every token of every model
#: and every difference, which for a whole book would be gigabytes of records no one reads, and as much memory.
MAX_CHARS = 100_000

CHIPS_SHARED = ("black on grey70", "black on grey54")
CHIPS_DIFFERENT = ("black on bright_yellow", "black on bright_magenta")


def compare(
    texts: Annotated[list[str] | None, typer.Argument(metavar="[TEXT]...", help="Texts to compare (default: lines of --file or stdin).", show_default=False)] = None,
    models: Annotated[list[str] | None, typer.Option("--model", "-m", autocompletion=complete_model, help="A model to compare (give two or more: -m A -m B [-m C]); alias, hub id, folder or tokenizer file.", show_default=False)] = None,
    file: Annotated[Path | None, typer.Option("--file", help="Read one text a line from FILE ('-' = stdin); at most 100,000 characters a text.")] = None,
    special: Annotated[bool, typer.Option("--special-tokens", help="Include [CLS]/[SEP] (<s>/</s>) in tokens and counts.")] = False,
    fmt: FormatOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """Tokenize the same text with several models side by side: pieces, ids, counts, and where splits differ.

    WordPiece marks pieces that continue a word with ##, SentencePiece marks word starts with ▁, byte-level
    BPE marks a preceding space with Ġ. Tokens are aligned by their character offsets in the text: a cut
    that not every tokenizer makes is a difference, listed with each model's pieces of that word.
    """
    apply_output(fmt, quiet)
    refs = list(models or [])
    if len(refs) < 2:
        raise UsageError("compare needs at least two models: -m A -m B [-m C]")
    if len(set(refs)) != len(refs):
        raise UsageError("each model may be given once")
    fmt_resolved = output.resolve_format()

    from bertcli.compare import compare_record, tokenize
    from bertcli.tokenizer import load_tokenizer

    labels = _labels(refs)
    resolved = [resolve(ref) for ref in refs]
    with output.loading("the tokenizers"):
        tokenizers = [load_tokenizer(r) for r in resolved]

    def records():
        for n, line in enumerate(require_nonempty(iter_lines(texts, file)), start=1):
            if len(line.text) > MAX_CHARS:
                raise BadInputError(f"{line.label}: {len(line.text):,} characters is more than compare takes "
                                    f"({MAX_CHARS:,}): compare a sentence or a paragraph, not a whole file")
            runs = [tokenize(tok, line.text, label, add_special_tokens=special) for tok, label in zip(tokenizers, labels)]
            yield {"line": n, **compare_record(line.text, runs)}

    output.emit(output.track(records(), description="comparing"), table=_view, table_batch=1, fmt=fmt_resolved,
                tsv_columns=["line", "model", "kind", "count", "tokens", "ids"], tsv_rows=_tsv_rows)


def _labels(refs: list[str]) -> list[str]:
    """Short names for the models: the reference itself, or a path's last part(s) when those stay distinct."""
    short = []
    for ref in refs:
        path = Path(ref).expanduser()
        if path.exists():
            full = path.resolve()
            generic = path.is_file() or full.name in ("model", "models", "tokenizer")
            short.append(f"{full.parent.name}/{full.name}" if generic else full.name)
        else:
            short.append(ref)
    return short if len(set(short)) == len(short) else refs


def _tsv_rows(record: dict):
    for m in record["models"]:
        yield {"line": record["line"], "model": m["model"], "kind": m["kind"], "count": m["count"], "tokens": m["tokens"],
               "ids": m["ids"]}


def _chips(model: dict, text: str, regions: list[dict]):
    """The model's tokens as coloured chips; tokens inside a region where splits differ stand out."""
    from rich.text import Text

    chips = Text()
    alt = {True: 0, False: 0}
    for i, (token, (start, end), special) in enumerate(zip(model["tokens"], model["offsets"], model["special"])):
        if i:
            chips.append(" ")
        if special:
            chips.append(token, style="dim")
            continue
        differs = any(r["start"] < end and start < r["end"] for r in regions) and end > start
        styles = CHIPS_DIFFERENT if differs else CHIPS_SHARED
        chips.append(token, style=styles[alt[differs] % 2])
        alt[differs] += 1
    return chips


def _view(records: list[dict]):
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    parts: list[Any] = []
    for rec in records:
        diff = rec["differences"]
        regions = diff["regions"]
        header = Text(rec["text"], style="bold")
        counts = ", ".join(f"{m['model']} {m['count']}" for m in rec["models"])
        header.append(f"   (tokens: {counts})", style="dim")
        table = Table(show_edge=False, header_style="bold", show_lines=False)
        table.add_column("model", style="bold", no_wrap=True)
        table.add_column("kind")
        table.add_column("n", justify="right")
        table.add_column("tokens")
        for m in rec["models"]:
            table.add_row(m["model"], f"{m['kind']} [dim]{m['marker'] or ''}[/dim]", str(m["count"]),
                          _chips(m, rec["text"], regions))
        parts += [header, table]
        if regions:
            where = Table(title="where the splits differ", title_justify="left", show_edge=False,
                          header_style="bold", title_style="bold yellow")
            where.add_column("text")
            for m in rec["models"]:
                where.add_column(m["model"])
            for r in regions:
                where.add_row(r["text"], *("|".join(r["pieces"][m["model"]]) for m in rec["models"]))
            parts.append(where)
            parts.append(Text(f"{len(diff['shared'])} cuts shared by all, {len(diff['not_shared'])} not shared",
                              style="dim"))
        else:
            parts.append(Text("all models split this text at the same places", style="green"))
        parts.append("")
    return Group(*parts)

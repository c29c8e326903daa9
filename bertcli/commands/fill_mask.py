"""`bertcli fill-mask`: the top-k fillers, with probabilities, for every [MASK] in a text."""

from __future__ import annotations

from typing import Annotated

import typer

from bertcli import output
from bertcli.backends import DEFAULT_BACKEND
from bertcli.commands._choices import BackendOption
from bertcli.commands._common import DeviceOpt, FileOpt, FormatOpt, ModelOpt, QuietOpt, apply_output, examples, resolve
from bertcli.inputs import batched, iter_lines, require_nonempty

EXAMPLES = examples(
    'bertcli fill-mask "The capital of France is [MASK]." -m bert',
    'bertcli fill-mask "The capital of France is [MASK]." -m roberta --top-k 10',
    'bertcli fill-mask "[MASK] is the capital of [MASK]." -m albert --format json',
    "cat cloze.txt | bertcli fill-mask -m electra-generator --top-k 1 | jq -r .filled",
)

BATCH_LINES = 16


def fill_mask(
    texts: Annotated[list[str] | None, typer.Argument(help="Texts with [MASK] (or <mask>) where words are missing (default: lines of --file or stdin).", show_default=False)] = None,
    model: ModelOpt = None,
    top_k: Annotated[int, typer.Option("--top-k", "-k", min=1, help="Fillers to list per mask.")] = 5,
    file: FileOpt = None,
    device: DeviceOpt = "auto",
    backend: BackendOption = DEFAULT_BACKEND,
    fmt: FormatOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """Fill masks with a masked-LM head: the top-k words and their probabilities for each [MASK].

    Works with BERT, ALBERT, RoBERTa and ELECTRA's generator. Write [MASK] or <mask> whatever the model:
    both become the model's own mask token (RoBERTa's is <mask>). Several masks in one text are each
    predicted on their own (as transformers' fill-mask pipeline does); "filled" puts every top-1 back in.
    """
    apply_output(fmt, quiet)
    fmt_resolved = output.resolve_format()
    from bertcli.fillmask import load_fill_masker

    resolved = resolve(model)
    lines = require_nonempty(iter_lines(texts, file))
    first = next(lines)  # read input (and fail on empty input) before loading the model
    with output.loading(resolved.display_name):
        masker = load_fill_masker(resolved, device=device, backend=backend)

    def records():
        line_no = 0
        for batch in batched(_chain(first, lines), BATCH_LINES):
            where = [ln.label for ln in batch]
            for result in masker.fill([ln.text for ln in batch], top_k=top_k, where=where):
                line_no += 1
                yield {"line": line_no, **result.as_record()}

    output.emit(output.track(records(), description="filling masks"), table=_table, table_batch=1, fmt=fmt_resolved,
                tsv_rows=_tsv_rows,
                tsv_columns=["line", "mask", "position", "rank", "token", "token_id", "word", "score"])


def _chain(first, rest):
    yield first
    yield from rest


def _tsv_rows(rec: dict):
    for mask in rec["masks"]:
        for rank, pred in enumerate(mask["predictions"], start=1):
            yield {"line": rec["line"], "mask": mask["mask"], "position": mask["position"], "rank": rank, **pred}


def _table(records: list[dict]):
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    parts = []
    for rec in records:
        header = _highlight_filled(rec)
        if len(rec["masks"]) > 1:
            header.append(f"   ({len(rec['masks'])} masks, each predicted on its own)", style="dim")
        parts.append(header)
        table = Table(show_edge=False, header_style="bold", pad_edge=False)
        table.add_column("mask @pos", justify="right")
        table.add_column("#", justify="right")
        table.add_column("word")
        table.add_column("token", style="dim")
        table.add_column("score", justify="right")
        table.add_column("", no_wrap=True)
        for mask in rec["masks"]:
            for rank, pred in enumerate(mask["predictions"], start=1):
                label = f"{mask['mask']} @{mask['position']}" if rank == 1 else ""
                table.add_row(label, str(rank), pred["word"], pred["token"], f"{pred['score']:.4f}",
                              Text(output.score_bar(pred["score"]), style="green" if rank == 1 else "dim"),
                              style="bold" if rank == 1 else None)
            table.add_section()
        parts += [table, ""]
    return Group(*parts)


def _highlight_filled(rec: dict):
    """The filled sentence with each top-1 word highlighted where its mask stood."""
    from rich.text import Text

    text = rec.get("model_text", rec["text"])
    out = Text(style="bold")
    pos = 0
    for mask in rec["masks"]:
        if mask["start"] < pos or mask["end"] <= mask["start"]:
            continue
        out.append(text[pos:mask["start"]])
        out.append(mask["predictions"][0]["word"], style="bold black on bright_green")
        pos = mask["end"]
    out.append(text[pos:])
    return out

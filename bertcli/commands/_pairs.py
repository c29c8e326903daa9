"""What `bertcli nsp` and `bertcli sop` share: their options, reading the pairs, and the rendering.

The two commands differ only in the head they run (`bertcli.nsp.OBJECTIVES`) and their words.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from bertcli import output
from bertcli.errors import BadInputError, UsageError

SegmentsArg = Annotated[list[str] | None, typer.Argument(
    metavar="A B", help="The two segments (default: --pairs or --file, else A<TAB>B lines on stdin).",
    show_default=False)]
PairsOpt = Annotated[Path | None, typer.Option(
    "--pairs", metavar="TSV", help="Read one pair a line, A<TAB>B, from TSV ('-' = stdin).")]
FileOpt = Annotated[Path | None, typer.Option(
    "--file", help="Read a text ('-' = stdin), split it into sentences and score each with the next one "
                   "(a blank line ends a paragraph: no pair across it).")]
SwapOpt = Annotated[bool, typer.Option(
    "--swap", help="Also score each pair reversed (B, A), shown side by side.")]

#: what probability index 0 is, as a column heading, by objective
HEADINGS = {"nsp": ("p(B follows A)", "p(A follows B)"), "sop": ("p(in order)", "p(in order) swapped")}
VERDICTS = {"nsp": ("follows", "random"), "sop": ("in order", "swapped")}


def pairs_from(segments: list[str] | None, pairs: Path | None, file: Path | None):
    """The pairs to score, from the two arguments, a TSV (``--pairs``), a text (``--file``) or stdin (TSV)."""
    from bertcli.inputs import check_utf8, iter_lines
    from bertcli.nsp import Pair, iter_sentence_pairs, iter_tsv_pairs

    given = [name for name, value in (("A B", segments), ("--pairs", pairs), ("--file", file)) if value]
    if len(given) > 1:
        raise UsageError(f"give the pairs one way: {' or '.join(given)}, not both")
    if segments:
        if len(segments) != 2:
            raise UsageError(f"expected two segments, A and B, got {len(segments)} "
                             "(quote each one; use --pairs for several pairs)")
        a, b = (check_utf8(s, f"segment {n}") for n, s in zip("AB", segments))
        if not a.strip() or not b.strip():
            raise BadInputError("empty segment: both A and B need some text")
        return iter([Pair(1, a, b)])
    if file is not None:
        stream = iter_sentence_pairs(iter_lines(None, file))
    else:
        stream = iter_tsv_pairs(iter_lines(None, pairs))
    return _require_pairs(stream)


def _require_pairs(stream):
    seen = False
    for pair in stream:
        seen = True
        yield pair
    if not seen:
        raise BadInputError("no pairs in the input: give two segments, A<TAB>B lines, or a text of at least "
                            "two sentences")


def run_pairs(objective: str, segments, model, pairs, file, swap: bool, backend: str, device: str,
              fmt, quiet: bool) -> None:
    """The body of `bertcli nsp` / `bertcli sop`."""
    from bertcli.commands._common import apply_output, resolve
    from bertcli.nsp import load_scorer

    apply_output(fmt, quiet)
    fmt_resolved = output.resolve_format()
    stream = pairs_from(segments, pairs, file)
    resolved = resolve(model)
    first = next(stream)  # read input (and fail on empty input) before loading the model
    with output.loading(resolved.display_name):
        scorer = load_scorer(resolved, objective, backend=backend, device=device)

    def records():
        for score in scorer.score(_chain(first, stream), swap=swap):
            if score.truncated:
                output.warn(f"{score.pair.label}: {score.truncated} token(s) past the model's maximum of "
                            f"{scorer.max_length} were left out (longest side first)")
            yield score.as_record()

    columns = ["line", "a", "b", "probability", "predicted"] + (["swapped_probability"] if swap else [])
    output.emit(output.track(records(), description="scoring pairs"), fmt=fmt_resolved,
                table=lambda recs: _table(objective, recs), table_batch=32, tsv_columns=columns,
                tsv_rows=_tsv_rows)


def _chain(first, rest):
    yield first
    yield from rest


def _tsv_rows(rec: dict):
    row = {k: rec[k] for k in ("line", "a", "b", "probability", "predicted")}
    if "swapped" in rec:
        row["swapped_probability"] = rec["swapped"]["probability"]
    yield row


def _cell(p: float):
    from rich.text import Text

    return Text(f"{p:.3f} {output.score_bar(p, 10)}", style="green" if p > 0.5 else "red")


def _table(objective: str, records: list[dict]):
    from rich.table import Table

    heading, swapped_heading = HEADINGS[objective]
    yes, no = VERDICTS[objective]
    swap = any("swapped" in rec for rec in records)
    table = Table(show_edge=False, header_style="bold", pad_edge=False)
    table.add_column("line", justify="right")
    table.add_column("A", overflow="fold", min_width=12)
    table.add_column("B", overflow="fold", min_width=12)
    table.add_column(heading, no_wrap=True)
    if swap:
        table.add_column(swapped_heading, no_wrap=True)
    table.add_column("verdict", no_wrap=True)
    for rec in records:
        verdict = yes if rec["predicted"] else no
        cells = [str(rec["line"]), rec["a"], rec["b"], _cell(rec["probability"])]
        if swap:
            cells.append(_cell(rec["swapped"]["probability"]))
            verdict += " / " + (yes if rec["swapped"]["predicted"] else no)
        table.add_row(*cells, verdict)
    return table

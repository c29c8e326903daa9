"""`bertcli attention`: one layer/head's attention map — a terminal heatmap, a top-N list, JSON, or a PNG."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from bertcli import files, output
from bertcli.backends import DEFAULT_BACKEND
from bertcli.commands._choices import BackendOption, Scale
from bertcli.commands._common import DeviceOpt, FormatOpt, ModelOpt, QuietOpt, apply_output, examples, resolve
from bertcli.errors import UsageError
from bertcli.inputs import iter_lines, require_nonempty

EXAMPLES = examples(
    'bertcli attention "The chef cooked the meal." -m bert --layer 3 --head 5',
    'bertcli attention "The chef cooked the meal." -m bert --layer -1 --head mean --top 3',
    "bertcli attention -m bert --file page.txt --png attention.png",
    'bertcli attention "It was a great day" -m bert --format json | jq .attention[0]',
)

MAX_CELLS = 64  # the terminal grid never gets more than this many rows/columns
LABEL_WIDTH = 20

# viridis, sampled: dark purple (little attention) → yellow (much)
_RAMP = [(68, 1, 84), (72, 40, 120), (62, 74, 137), (49, 104, 142), (38, 130, 142), (31, 158, 137),
         (53, 183, 121), (109, 205, 89), (180, 222, 44), (253, 231, 37)]


def attention(
    text: Annotated[str | None, typer.Argument(help="The text (default: all of --file or stdin, lines joined by spaces).", show_default=False)] = None,
    model: ModelOpt = None,
    layer: Annotated[int, typer.Option("--layer", "-l", help="Encoder layer 1…L as in embed's --layer (0 is the embedding output, which has no attention); negative counts from the end (-1 = last).")] = -1,
    head: Annotated[str, typer.Option("--head", "-H", help="Head, 0-based as in transformers (negative from the end), or 'mean' for the mean of all heads.")] = "mean",
    top: Annotated[int | None, typer.Option("--top", "-t", min=1, help="List each token's N most-attended tokens instead of the map.")] = None,
    png: Annotated[Path | None, typer.Option("--png", help="Write the map as a PNG picture (needs: pip install 'bertcli[plot]').")] = None,
    scale: Annotated[Scale, typer.Option("--scale", case_sensitive=False, help="Colour scale: auto (linear up to 64 tokens, log beyond), linear, log.")] = "auto",
    cells: Annotated[int | None, typer.Option("--cells", min=2, help="At most N×N cells in the terminal map (default: what fits the width, ≤ 64).")] = None,
    file: Annotated[Path | None, typer.Option("--file", help="Read the text from FILE ('-' = stdin).")] = None,
    device: DeviceOpt = "auto",
    backend: BackendOption = DEFAULT_BACKEND,
    fmt: FormatOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """Show the attention of one layer and head: a heatmap, each token's top-N, JSON, or a PNG.

    Row i is how token i spreads its attention over the tokens (each row sums to 1). Long inputs (up to the
    model's 512 tokens) are shown in the terminal as a grid of buckets of consecutive tokens that fits the
    width; each cell is the attention mass one bucket gives another, and the view says so. With --png only
    the picture is written unless --top or --format asks for output too.
    """
    explicit_format = fmt is not None or output.current().settings.format not in (None, "auto")
    apply_output(fmt, quiet)
    fmt_resolved = output.resolve_format()
    from bertcli.attention import (
        as_record,
        check_config,
        load_attention_reader,
        parse_head,
        require_matplotlib,
    )

    head_value = parse_head(head)
    if png is not None:
        require_matplotlib()
        files.check_target(png, option="--png")  # a folder or a missing folder: exit 9 before any work
        files.refuse_overwrite(png, option="--png", inputs=[file])
    resolved = resolve(model)
    files.refuse_overwrite(png, option="--png", inputs=[file], model=resolved)
    check_config(resolved.config, layer, head_value)
    body = _read_text(text, file)
    with output.loading(resolved.display_name):
        reader = load_attention_reader(resolved, device=device, backend=backend)
    amap = reader.read(body, layer=layer, head=head_value)
    if amap.truncated:
        output.warn(f"the text is {len(amap.tokens) + amap.truncated} tokens; the model takes {len(amap.tokens)}, "
                    f"so the last {amap.truncated} were left out")
    if png is not None:
        from bertcli.attention import save_png

        with output.status(f"drawing {png} …"), output.atomic_write(png, seekable=True) as handle:
            save_png(amap, handle, scale=scale)
        output.info(f"wrote {png} ({len(amap.tokens)} tokens, {amap.describe()})")
        if top is None and not explicit_format:
            return
    if fmt_resolved == "tsv":
        output.emit(_tsv_rows(amap, top), fmt="tsv", tsv_columns=_tsv_columns(top))
        return
    record = as_record(amap, top=top)
    # json is written compact, like jsonl: indented, a 512×512 matrix would take a quarter of a million lines
    fmt_record = "jsonl" if fmt_resolved == "json" else fmt_resolved
    if top is not None:
        output.emit_one(record, table=lambda rec: _top_view(rec, amap), fmt=fmt_record)
    else:
        output.emit_one(record, table=lambda rec: _heatmap(amap, scale=scale, cells=cells), fmt=fmt_record)


def _read_text(text: str | None, file: Path | None) -> str:
    if text is not None:
        if file is not None:
            raise UsageError("give the text as an argument or with --file, not both")
        from bertcli.inputs import check_utf8

        check_utf8(text, "the text argument")
        if not text.strip():
            from bertcli.errors import BadInputError

            raise BadInputError("empty input: no text to process")
        return text
    lines = [line.text for line in require_nonempty(iter_lines(None, file))]
    return " ".join(line.strip() for line in lines if line.strip())


def _tsv_columns(top: int | None) -> list[str]:
    base = ["query", "query_token"]
    return base + (["rank"] if top else []) + ["key", "key_token", "weight"]


def _tsv_rows(amap, top: int | None):
    from bertcli.attention import top_attended

    tokens = amap.tokens
    if top is None:
        for i, row in enumerate(amap.matrix):
            for j, w in enumerate(row):
                yield {"query": i, "query_token": tokens[i], "key": j, "key_token": tokens[j], "weight": f"{w:.6f}"}
        return
    order, weights = top_attended(amap.matrix, top)
    for i in range(len(tokens)):
        for rank, (j, w) in enumerate(zip(order[i], weights[i]), start=1):
            yield {"query": i, "query_token": tokens[i], "rank": rank, "key": int(j), "key_token": tokens[j],
                   "weight": f"{w:.6f}"}


def _title(amap):
    from rich.text import Text

    from bertcli.attention import short_name

    title = Text(short_name(amap.model), style="bold")
    title.append(f"  ·  {amap.describe()}  ·  {len(amap.tokens)} tokens", style="")
    return title


def _top_view(record: dict, amap):
    from rich.console import Group
    from rich.table import Table

    table = Table(show_edge=False, header_style="bold", pad_edge=False)
    table.add_column("#", justify="right")
    table.add_column("token")
    n = len(record["top"][0]) if record["top"] else 0
    for k in range(1, n + 1):
        table.add_column(f"top {k}", no_wrap=True)
    for i, (token, tops) in enumerate(zip(record["tokens"], record["top"])):
        table.add_row(str(i), token, *[f"{t['token']} [dim]@{t['position']}[/dim] {t['weight']:.3f}" for t in tops])
    return Group(_title(amap), table)


def _color(level: float) -> tuple[int, int, int]:
    x = level * (len(_RAMP) - 1)
    i = min(int(x), len(_RAMP) - 2)
    f = x - i
    a, b = _RAMP[i], _RAMP[i + 1]
    return tuple(round(a[k] + (b[k] - a[k]) * f) for k in range(3))  # type: ignore[return-value]


def _label(token: str, width: int) -> str:
    """``token`` cut to ``width`` terminal cells (CJK characters take two; a lone combining mark becomes ·)."""
    from rich.cells import cell_len, get_character_cell_size, set_cell_size

    token = "".join(c if get_character_cell_size(c) else "·" for c in token)
    return token if cell_len(token) <= width else set_cell_size(token, width - 1) + "…"


def _heatmap(amap, *, scale: str, cells: int | None):
    """The map as shaded cells (two characters each), bucketed to fit the terminal width."""
    from rich.cells import set_cell_size
    from rich.console import Group
    from rich.style import Style
    from rich.text import Text

    from bertcli.attention import bucket_matrix, pick_scale, shade

    n = len(amap.tokens)
    width = output.console().width
    fit = max(2, (width - LABEL_WIDTH - 1) // 2)
    limit = min(fit, MAX_CELLS) if cells is None else cells
    grid = bucket_matrix(amap.matrix, limit)
    scale_used = pick_scale(scale, n)
    levels = shade(grid.values, scale_used, uniform=grid.size / n)
    colour = output.shows_colour()

    lines: list = [_title(amap)]
    if grid.bucketed:
        lines.append(Text(
            f"{n} tokens in {len(grid.ranges)}×{len(grid.ranges)} buckets of {grid.size} consecutive tokens "
            f"(the last may be shorter): a cell is the attention mass its row's tokens give its column's tokens "
            f"(averaged over the row's tokens, so rows still sum to 1). Use --top, --format json or --png for "
            f"every token.", style="dim"))
    lines.append(Text("rows attend to columns · columns are numbered by their first token's position, read downwards",
                      style="dim", overflow="fold"))
    digits = len(str(grid.ranges[-1][0]))
    for d in range(digits):
        header = Text(" " * (LABEL_WIDTH + 1))
        for start, _ in grid.ranges:
            header.append(str(start).rjust(digits)[d] + " ", style="dim")
        lines.append(header)
    for r, (start, end) in enumerate(grid.ranges):
        if grid.bucketed:
            span = f"{start:>{digits}}–{end - 1:<{digits}}"
            label = f"{span} {_label(amap.tokens[start], LABEL_WIDTH - len(span) - 2)}…"
        else:
            label = f"{start:>{digits}} {_label(amap.tokens[start], LABEL_WIDTH - digits - 1)}"
        row = Text(set_cell_size(label, LABEL_WIDTH) + " ")
        for level in levels[r]:
            if colour:
                row.append("  ", style=Style(bgcolor=_rgb(_color(float(level)))))
            else:
                row.append(output.shade_char(float(level)) * 2)
        lines.append(row)
    legend = Text(" " * (LABEL_WIDTH + 1))
    top_value = float(grid.values.max())
    low = "0" if scale_used == "linear" else f"≤{min(grid.size / n / 10, top_value / 10):.0e}"
    legend.append(f"{low} ")
    for k in range(10):
        level = k / 9
        if colour:
            legend.append("  ", style=Style(bgcolor=_rgb(_color(level))))
        else:
            legend.append(output.shade_char(level) * 2)
    legend.append(f" {top_value:.3f}   ({scale_used} scale)", style="")
    lines.append(legend)
    return Group(*lines)


def _rgb(rgb: tuple[int, int, int]):
    from rich.color import Color

    return Color.from_rgb(*rgb)

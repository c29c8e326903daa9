"""`bertcli tag`: token classification (named entities, parts of speech …) with a token-classification head."""

from __future__ import annotations

import os
from collections import deque
from typing import Annotated

import typer

from bertcli import output
from bertcli.backends import DEFAULT_BACKEND
from bertcli.commands._choices import Aggregation, BackendOption
from bertcli.commands._common import (
    DeviceOpt,
    FileOpt,
    FormatOpt,
    ModelOpt,
    QuietOpt,
    ThreadsOpt,
    apply_output,
    batch_size_option,
    examples,
    max_length_option,
    resolve,
)
from bertcli.inputs import iter_lines, require_nonempty

EXAMPLES = examples(
    'bertcli tag "John Smith lives in Paris." -m dslim/bert-base-NER',
    'bertcli tag "John Smith lives in Paris." -m dslim/bert-base-NER --aggregation first -f json',
    "cat news.txt | bertcli tag -m dslim/bert-base-NER -f tsv > entities.tsv",
    "bertcli tag --file book.txt -m ./ner --max-length 256 --stride 64",
)

#: background colours of the entity groups, in the order of the model's labels
PALETTE = ("dodger_blue2", "green3", "orange3", "magenta3", "gold3", "cyan3", "red3", "medium_purple3",
           "spring_green3", "deep_pink3", "steel_blue1", "dark_orange")

WindowBatchSizeOpt = batch_size_option("window")
MaxLengthOpt = max_length_option("Tokens per window; longer texts are split into overlapping windows "
                                 "[default: the model's limit].")


def tag(
    texts: Annotated[list[str] | None, typer.Argument(help="Texts to tag (default: lines of --file or stdin).", show_default=False)] = None,
    model: ModelOpt = None,
    aggregation: Annotated[Aggregation, typer.Option("--aggregation", "-a", case_sensitive=False, help="How tokens become entities, as transformers' pipeline: none (one per token), simple (adjacent tokens with the same tag), first / average / max (a word's pieces agree first).")] = Aggregation("simple"),
    file: FileOpt = None,
    max_length: MaxLengthOpt = None,
    stride: Annotated[int | None, typer.Option("--stride", min=0, help="Tokens shared by consecutive windows of a long text [default: min(128, half a window)].", show_default=False)] = None,
    batch_size: WindowBatchSizeOpt = None,
    threads: ThreadsOpt = None,
    device: DeviceOpt = "auto",
    backend: BackendOption = DEFAULT_BACKEND,
    fmt: FormatOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """Tag tokens with a token-classification model (NER, POS …): entities with labels, scores and offsets.

    The same entities, groups, words, character offsets and scores as transformers'
    pipeline("token-classification", aggregation_strategy=…). Texts longer than the model's limit are split into
    windows sharing --stride tokens and the entities merged (the pipeline's stride=), so none is cut at a
    window's edge. On a terminal each text is shown with its entities highlighted, one colour per group.
    """
    apply_output(fmt, quiet)
    fmt_resolved = output.resolve_format()
    # idle OpenMP threads sleep instead of spinning (as embed does); set before torch loads; env wins
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    from bertcli.tagging import TagOptions, groups, load_tagger

    resolved = resolve(model)
    lines = require_nonempty(iter_lines(texts, file))
    first = next(lines)  # read input (and fail on empty input) before loading the model
    options = TagOptions(aggregation=str(aggregation), max_length=max_length, stride=stride, batch_size=batch_size,
                         device=device, threads=threads, backend=str(backend))
    with output.loading(resolved.display_name):
        tagger = load_tagger(resolved, options)
    colours = {group: PALETTE[i % len(PALETTE)] for i, group in enumerate(groups(tagger.id2label))}

    def chained():
        yield first
        yield from lines

    def records():
        for n, entities in enumerate(tagger.tag(line.text for line in _remember(chained(), held)), start=1):
            yield {"line": n, "text": held.popleft(), "entities": entities}

    held: deque[str] = deque()
    key = "entity" if aggregation == "none" else "entity_group"
    columns = ["line", key, "score", "word", "start", "end"] + (["index"] if aggregation == "none" else [])
    output.emit(output.track(records(), description="tagging"), table=lambda recs: _table(recs, colours, key),
                table_batch=1, fmt=fmt_resolved, tsv_rows=_tsv_rows, tsv_columns=columns)


def _remember(lines, held: deque[str]):
    """Yield each line, keeping its text in ``held`` until its record is made (the tagger reads ahead)."""
    for line in lines:
        held.append(line.text)
        yield line


def _tsv_rows(rec: dict):
    for entity in rec["entities"]:
        yield {"line": rec["line"], **entity}


def group_of(entity: dict) -> str:
    """The entity's group: ``entity_group``, or the per-token label without its B-/I- prefix."""
    return entity.get("entity_group") or entity["entity"].split("-", 1)[-1]


def highlighted(text: str, entities: list[dict], colours: dict[str, str], colour: bool):
    """The text with each entity marked: on its group's colour with the label after it (like displaCy), or
    ``[words](LABEL)`` when colours are off (NO_COLOR, dumb terminal)."""
    from rich.text import Text

    out = Text()
    pos = 0
    for entity in sorted(entities, key=lambda e: e["start"]):
        start, end = entity["start"], entity["end"]
        if start < pos:
            continue  # never overlaps in the pipeline's output; keep the view sane if it did
        group = group_of(entity)
        out.append(text[pos:start])
        if colour:
            style = f"bold black on {colours.get(group, 'grey70')}"
            out.append(text[start:end], style=style)
            out.append(f" {group}", style=style.replace("bold ", "") + " dim")
        else:
            out.append(f"[{text[start:end]}]({group})", style="bold")
        pos = end
    out.append(text[pos:])
    return out


def legend(groups: list[str], colours: dict[str, str]):
    from rich.text import Text

    out = Text("  ")
    for group in groups:
        out.append(f" {group} ", style=f"bold black on {colours.get(group, 'grey70')}")
        out.append(" ")
    return out


def _table(records: list[dict], colours: dict[str, str], key: str):
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    colour = output.shows_colour()
    parts = []
    for rec in records:
        line = Text()
        line.append(f"{rec['line']}  ", style="dim")
        line.append(highlighted(rec["text"], rec["entities"], colours, colour))
        parts.append(line)
        if not rec["entities"]:
            parts += [Text("   no entities", style="dim"), ""]
            continue
        present = list(dict.fromkeys(group_of(e) for e in rec["entities"]))
        if colour:
            parts.append(legend(present, colours))
        table = Table(show_edge=False, header_style="bold", pad_edge=False, box=None)
        for name, justify in ((key, "left"), ("word", "left"), ("score", "right"), ("", "left"), ("span", "right")):
            table.add_column(name, justify=justify, no_wrap=True)
        for e in rec["entities"]:
            label = e[key]
            table.add_row(Text(label, style=f"bold {colours.get(group_of(e), '')}" if colour else "bold"),
                          e["word"], f"{e['score']:.3f}", output.score_bar(e["score"], 10), f"{e['start']}–{e['end']}")
        parts += [table, ""]
    return Group(*parts)

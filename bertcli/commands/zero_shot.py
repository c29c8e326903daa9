"""`bertcli zero-shot`: label texts with labels of your choosing through an NLI model (entailment per label)."""

from __future__ import annotations

import os
from itertools import islice
from typing import Annotated

import typer

from bertcli import output
from bertcli.backends import DEFAULT_BACKEND
from bertcli.commands._choices import BackendOption
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
    'bertcli zero-shot -m FacebookAI/roberta-large-mnli "The match went to penalties" --labels sports,politics,cooking',
    'bertcli zero-shot -m FacebookAI/roberta-large-mnli "I need this fixed today!" --labels urgent,phone,billing --multi-label',
    "bertcli zero-shot -m ./nli --labels positive,negative --template 'The review is {}.' --file reviews.txt -f jsonl",
)

TSV_COLUMNS = ["line", "rank", "label", "score"]

PairBatchSizeOpt = batch_size_option("(text, label) pair")
MaxLengthOpt = max_length_option("Cut each (text, hypothesis) pair to N tokens, from the text only (default: "
                                 "the model's limit).")


def zero_shot(
    texts: Annotated[list[str] | None, typer.Argument(help="Texts to label (default: lines of --file or stdin).", show_default=False)] = None,
    model: ModelOpt = None,
    labels: Annotated[str | None, typer.Option("--labels", "-l", help="The candidate labels, comma-separated: sports,politics,cooking.", show_default=False)] = None,
    multi_label: Annotated[bool, typer.Option("--multi-label", help="Score each label on its own (entailment against contradiction) instead of softmax across the labels.")] = False,
    template: Annotated[str, typer.Option("--template", help="The hypothesis; {} is where the label goes.")] = "This example is {}.",
    file: FileOpt = None,
    batch_size: PairBatchSizeOpt = None,
    max_length: MaxLengthOpt = None,
    threads: ThreadsOpt = None,
    device: DeviceOpt = "auto",
    backend: BackendOption = DEFAULT_BACKEND,
    fmt: FormatOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """Zero-shot classification: how well each of your labels fits each text, with an NLI model.

    Each text is paired with one hypothesis per label ("This example is sports.") and the model's entailment
    score decides: by default softmax across the labels (the scores sum to 1); with --multi-label each label
    on its own (entailment against contradiction). The method and numbers of transformers'
    zero-shot-classification pipeline. The model must be an NLI model: its id2label names an entailment class.
    """
    apply_output(fmt, quiet)
    fmt_resolved = output.resolve_format()
    from bertcli.zeroshot import hypotheses, parse_labels

    candidates = parse_labels(labels)
    hypotheses(template, candidates)  # usage errors before any model is resolved
    lines = require_nonempty(iter_lines(texts, file))
    first = list(islice(lines, 1))  # empty or undecodable input fails before the model loads
    resolved = resolve(model)
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as embed: idle OpenMP threads sleep on a shared CPU
    from bertcli.zeroshot import load_zero_shot

    with output.loading(resolved.display_name):
        classifier = load_zero_shot(resolved, candidates, template=template, multi_label=multi_label,
                                    backend=backend, device=device, threads=threads, batch_size=batch_size,
                                    max_length=max_length)

    def records():
        for n, result in enumerate(classifier.classify(_chain(first, lines)), start=1):
            yield {"line": n, **result.as_record()}

    output.emit(output.track(records(), description="labelling"), table=_table, table_batch=16, fmt=fmt_resolved,
                tsv_rows=_tsv_rows, tsv_columns=TSV_COLUMNS)
    stats = classifier.stats
    if stats.truncated:
        output.warn(f"{stats.truncated} text(s) longer than {classifier.max_length} tokens with the hypothesis "
                    f"were cut to fit (the first: {stats.first_truncated})")


def _chain(first, rest):
    yield from first
    yield from rest


def _tsv_rows(rec: dict):
    for rank, (label, score) in enumerate(zip(rec["labels"], rec["scores"]), start=1):
        yield {"line": rec["line"], "rank": rank, "label": label, "score": score}


def _table(records: list[dict]):
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    parts = []
    for rec in records:
        parts.append(Text(rec["text"], style="bold"))
        table = Table(show_edge=False, show_header=False, pad_edge=False, box=None)
        table.add_column("label", no_wrap=True)
        table.add_column("score", justify="right")
        table.add_column("", no_wrap=True)
        for rank, (label, score) in enumerate(zip(rec["labels"], rec["scores"])):
            table.add_row(label, f"{score:.4f}", Text(output.score_bar(score), style="green" if rank == 0 else "dim"),
                          style="bold" if rank == 0 else None)
        parts += [table, ""]
    return Group(*parts)

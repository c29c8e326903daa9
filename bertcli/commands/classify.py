"""`bertcli classify`: a label and a score per text (or text pair) from a sequence-classification model."""

from __future__ import annotations

import os
from typing import Annotated

import typer

from bertcli import output
from bertcli.backends import DEFAULT_BACKEND
from bertcli.commands._choices import BackendOption, Function
from bertcli.commands._common import (
    BatchSizeOpt,
    DeviceOpt,
    FileOpt,
    FormatOpt,
    MaxTokensOpt,
    ModelOpt,
    QuietOpt,
    ThreadsOpt,
    apply_output,
    examples,
    max_length_option,
    resolve,
)
from bertcli.errors import UsageError

EXAMPLES = examples(
    'bertcli classify -m ./sst2-model "What a lovely afternoon" "The food was cold"',
    "cat reviews.txt | bertcli classify -m ./sst2-model -f jsonl",
    "bertcli classify -m ./sst2-model --top-k 0 'It was fine, I guess'",
    "bertcli classify -m ./nli-model 'A man plays a guitar.' --pair 'A person makes music.'",
    "bertcli classify -m ./nli-model --pairs --file pairs.tsv -f tsv",
)

TABLE_BATCH = 64  # records per table printed while the stream goes on
TABLE_LABELS = 5  # labels shown per input in the table when --top-k is not given

MaxLengthOpt = max_length_option("Truncate inputs to N tokens, pairs longest first (default: the model's limit).")


def classify(
    texts: Annotated[list[str] | None, typer.Argument(help="Texts to classify (default: lines of --file or stdin).", show_default=False)] = None,
    model: ModelOpt = None,
    file: FileOpt = None,
    pair: Annotated[str | None, typer.Option("--pair", help="Second sequence for a single TEXT (NLI premise/hypothesis, question/passage).")] = None,
    pairs: Annotated[bool, typer.Option("--pairs", help="Each input line is 'TEXT<TAB>PAIR'.")] = False,
    top_k: Annotated[int | None, typer.Option("--top-k", min=0, help="Also list the best N labels with their scores (0 = all labels).", show_default=False)] = None,
    function: Annotated[Function | None, typer.Option("--function", help="softmax | sigmoid | none (raw logits). Default: as transformers' pipeline does: sigmoid for one label or problem_type multi_label_classification, none for regression, else softmax.", show_default=False)] = None,
    device: DeviceOpt = "auto",
    threads: ThreadsOpt = None,
    batch_size: BatchSizeOpt = None,
    max_tokens: MaxTokensOpt = None,
    max_length: MaxLengthOpt = None,
    backend: BackendOption = DEFAULT_BACKEND,
    fmt: FormatOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """Classify texts or text pairs: the best label and its score, or the top N labels (--top-k).

    Labels come from the model's id2label; scores equal transformers' text-classification pipeline. Input
    streams from --file or stdin in constant memory; records come out in input order. Inputs longer than the
    model's limit are truncated (counted in a warning).
    """
    apply_output(fmt, quiet)
    fmt_resolved = output.resolve_format()
    if pair is not None and (pairs or not texts or len(texts) != 1):
        raise UsageError("--pair goes with exactly one TEXT (use --pairs for many)" if not pairs
                         else "--pair and --pairs do not go together")
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as embed: idle OpenMP threads sleep on a shared CPU
    from itertools import chain, islice

    from bertcli.classify import ClassifyOptions, items_from, load_classifier
    from bertcli.inputs import iter_lines, require_nonempty

    options = ClassifyOptions(max_length=max_length, device=device, threads=threads, max_tokens=max_tokens,
                              batch_size=batch_size, backend=backend, function=function)
    items = items_from(require_nonempty(iter_lines(texts, file)), pair=pair, pairs=pairs)
    first = list(islice(items, 256))  # bad input fails before the model loads
    resolved = resolve(model)
    with output.loading(resolved.display_name):
        classifier = load_classifier(resolved, options)
    shown = top_k if top_k is not None else (TABLE_LABELS if fmt_resolved == "table" else None)

    def records():
        for result in classifier.classify(chain(first, items)):
            yield _record(classifier, result, shown, with_labels=top_k is not None or fmt_resolved == "table")

    output.emit(output.track(records(), description="classifying"), table=_table, table_batch=TABLE_BATCH,
                fmt=fmt_resolved, tsv_rows=_tsv_rows if top_k is not None else None,
                tsv_columns=_tsv_columns(pair is not None or pairs, top_k is not None))
    stats = classifier.stats
    if stats.truncated:
        output.warn(f"{stats.truncated} input(s) longer than {classifier.max_length} tokens were truncated "
                    f"(the first: {stats.first_truncated})")


def _record(classifier, result, top_k: int | None, *, with_labels: bool) -> dict:
    item = result.item
    rec: dict = {"line": item.number, "text": item.text}
    if item.pair is not None:
        rec["pair"] = item.pair
    best = classifier.top(result.scores, 1)[0]
    rec["label"], rec["score"] = best
    if with_labels:
        rec["labels"] = [{"label": label, "score": score} for label, score in classifier.top(result.scores, top_k)]
    return rec


def _tsv_columns(paired: bool, ranked: bool) -> list[str]:
    columns = ["line", "text", *(["pair"] if paired else [])]
    return columns + (["rank", "label", "score"] if ranked else ["label", "score"])


def _tsv_rows(rec: dict):
    base = {k: rec[k] for k in ("line", "text", "pair") if k in rec}
    for rank, entry in enumerate(rec["labels"], start=1):
        yield {**base, "rank": rank, **entry}


def _table(records: list[dict]):
    from rich.table import Table
    from rich.text import Text

    table = Table(show_edge=False, header_style="bold", pad_edge=False, show_lines=True)
    table.add_column("#", justify="right", no_wrap=True)
    table.add_column("text", ratio=1, overflow="fold")
    table.add_column("label", no_wrap=True, style="bold")
    table.add_column("scores", no_wrap=True)
    for rec in records:
        text = rec["text"] + (f"  ⟷  {rec['pair']}" if "pair" in rec else "")
        entries = rec.get("labels") or [{"label": rec["label"], "score": rec["score"]}]
        width = max(len(e["label"]) for e in entries)
        bars = Text()
        for n, entry in enumerate(entries):
            score = entry["score"]
            bars.append(("\n" if n else "") + f"{entry['label']:<{width}} ")
            bars.append(output.score_bar(min(1.0, max(0.0, score)), width=16), style="green" if n == 0 else "dim")
            bars.append(f" {score:.3f}")
        table.add_row(str(rec["line"]), text, rec["label"], bars)
    return table

"""`bertcli nsp`: next sentence prediction — BERT's probability that segment B follows segment A."""

from __future__ import annotations

from bertcli.backends import DEFAULT_BACKEND
from bertcli.commands._choices import BackendOption
from bertcli.commands._common import DeviceOpt, FormatOpt, ModelOpt, QuietOpt, examples
from bertcli.commands._pairs import FileOpt, PairsOpt, SegmentsArg, SwapOpt, run_pairs

EXAMPLES = examples(
    'bertcli nsp -m bert "The storm knocked out the power." "We lit candles and waited."',
    'bertcli nsp -m bert "The storm knocked out the power." "We lit candles and waited." --swap',
    "bertcli nsp -m bert --pairs pairs.tsv --format tsv",
    "bertcli nsp -m bert --file story.txt --swap",
)


def nsp(
    segments: SegmentsArg = None,
    model: ModelOpt = None,
    pairs: PairsOpt = None,
    file: FileOpt = None,
    swap: SwapOpt = False,
    backend: BackendOption = DEFAULT_BACKEND,
    device: DeviceOpt = "auto",
    fmt: FormatOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """Next sentence prediction: how likely BERT's NSP head thinks segment B follows segment A.

    The model reads [CLS] A [SEP] B [SEP]; its NSP head (BertForPreTraining's seq_relationship, also in
    google-bert/bert-base-uncased) gives two logits, and the softmax of the first is p(B follows A). --swap
    scores (B, A) too: NSP was trained against random sentences from other documents, so it can answer from
    topic alone, and a reversed pair of one topic often still "follows" (compare bertcli sop).
    """
    run_pairs("nsp", segments, model, pairs, file, swap, backend, device, fmt, quiet)

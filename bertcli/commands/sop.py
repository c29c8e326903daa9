"""`bertcli sop`: sentence order prediction — ALBERT's probability that two segments are in their original order."""

from __future__ import annotations

from bertcli.backends import DEFAULT_BACKEND
from bertcli.commands._choices import BackendOption
from bertcli.commands._common import DeviceOpt, FormatOpt, ModelOpt, QuietOpt, examples
from bertcli.commands._pairs import FileOpt, PairsOpt, SegmentsArg, SwapOpt, run_pairs

EXAMPLES = examples(
    'bertcli sop -m ./AlbertForPreTraining "The storm knocked out the power." "We lit candles and waited."',
    'bertcli sop -m ./AlbertForPreTraining "The storm knocked out the power." "We lit candles and waited." --swap',
    "bertcli sop -m ./AlbertForPreTraining --file story.txt --swap --format json",
)


def sop(
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
    """Sentence order prediction: how likely ALBERT's SOP head thinks A, B are in their original order.

    The model reads [CLS] A [SEP] B [SEP]; AlbertForPreTraining's sop_classifier gives two logits, and the
    softmax of the first is p(in order). SOP was trained on consecutive segments against the same two swapped,
    so topic cannot answer it: --swap scores (B, A) side by side, where a good SOP head flips (compare
    bertcli nsp).
    """
    run_pairs("sop", segments, model, pairs, file, swap, backend, device, fmt, quiet)

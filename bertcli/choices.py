"""The fixed sets of values that options take, in one light module (no numpy, torch or Typer).

The core modules that use a set import it from here (`bertcli.embed.POOLINGS`, `bertcli.masking.STRATEGIES`,
`bertcli.attention.SCALES`, `bertcli.output.BASE_FORMATS` …), and `bertcli.commands._common` builds the
options' Enum types from the same tuples, so `--help` lists the choices, the shell completes them and click
checks them once — without the CLI importing numpy to learn them.
"""

from __future__ import annotations

#: embed: --pooling, --on-long, --compute (matmul precision), --dtype (output precision), --engine
POOLINGS: tuple[str, ...] = ("cls", "pooler", "mean", "max", "none")
ON_LONG: tuple[str, ...] = ("truncate", "error")
COMPUTE: tuple[str, ...] = ("float32", "bfloat16", "float16")
DTYPES: tuple[str, ...] = ("float32", "float16")
ENGINES: tuple[str, ...] = ("local", "ray")

#: mask --strategy: the masking schemes of `bertcli.masking`
STRATEGIES: tuple[str, ...] = ("static", "dynamic", "whole-word", "span", "ngram")

#: tag --aggregation: transformers' token-classification aggregation strategies
AGGREGATIONS: tuple[str, ...] = ("none", "simple", "first", "average", "max")

#: classify/rerank --function: how a classification head's logits become scores (bertcli.scores)
FUNCTIONS: tuple[str, ...] = ("softmax", "sigmoid", "none")

#: attention --scale
SCALES: tuple[str, ...] = ("auto", "linear", "log")

#: --device: the kinds (``cuda:N`` picks a GPU by number, so --device stays free text; these complete)
DEVICE_KINDS: tuple[str, ...] = ("auto", "cpu", "cuda", "mps")

#: --format: every command's; commands add extras (tokenize ``ids``/``text``, embed ``npy``, download ``path``)
BASE_FORMATS: tuple[str, ...] = ("auto", "table", "json", "jsonl", "tsv")
FORMAT_EXTRAS: tuple[str, ...] = ("ids", "text", "npy", "path")


def choice_enum(name: str, values: tuple[str, ...]) -> type:
    """A str Enum whose members are ``values`` (each member's name is its value), for an option's type.

    Typer shows its members in ``--help``, offers them to shell completion and lets click reject any other
    value (one ``error: …`` line, exit 2). The members are `str`, so the core compares and stores them as the
    plain strings it always took. Assign the result to a module-level name equal to ``name`` (pickling finds
    the class there).
    """
    import enum
    import sys

    module = sys._getframe(1).f_globals.get("__name__", __name__)
    return enum.StrEnum(name, [(value, value) for value in values], module=module)

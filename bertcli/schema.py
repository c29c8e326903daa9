"""The JSON records every command writes with ``-f json`` / ``-f jsonl``: key → type, declared once.

The rule (README, "Output"):

- a **stream** of records (one per input text, per cached model, per config field …): ``jsonl`` writes one
  record a line, ``json`` the array of the same records;
- a **report** (one of a kind: a model's config, an inspection, an attention map, masking statistics):
  ``json`` writes the one object, ``jsonl`` the same object on one line.

Every record that comes from an input text carries ``line``: the text's number, counted from 1 over the TEXT
arguments or the lines of --file / stdin.

Types are strings: ``str``, ``int``, ``float``, ``bool``, ``any`` (a value copied from a file, e.g. a config
field), ``object`` (a mapping whose keys depend on the model); ``T|null``; ``[T]`` for a list of T (written as
a Python list of one element, the element's type); a dict for a nested record. A key ending in ``?`` appears
only in some runs (its docs page says when). The docs pages show these tables (`markdown`), and
``tests/test_json_contract.py`` runs every command against them and checks that the pages match.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Union

Shape = Union[str, list, dict]


@dataclass(frozen=True)
class Schema:
    """One kind of record: which command (and options) write it, stream or report, and its fields."""

    command: str  # e.g. "tokenize --count"
    kind: str  # "stream" | "report"
    fields: dict[str, Shape]
    page: str  # the docs page that shows it, e.g. "docs/tokenize.md"


_TOKEN_RECORD = {
    "line": "int", "text": "str", "pair?": "str", "tokens": ["str"], "input_ids": ["int"],
    "token_type_ids?": ["int"], "attention_mask": ["int"], "offsets": [["int"]], "word_ids": ["int|null"],
    "special_tokens_mask": ["int"], "sequence_ids?": ["int|null"],
}
_ANSWER = {"answer": "str", "score": "float", "start": "int", "end": "int", "window": "int", "no_answer": "bool"}
_MASK_HEADER = {"model": "str", "kind": "str", "text": "str", "strategy": "str", "seed": "int", "mask_prob": "float",
                "mask_token": "str"}
_ATTENTION_HEADER = {"model": "str", "layer": "int", "head": "int|null", "num_layers": "int", "num_heads": "int",
                     "tokens": ["str"], "truncated_tokens?": "int"}
_DETECT_TOKEN = {"position": "int", "token": "str", "id": "int", "word": "int|null", "start": "int", "end": "int",
                 "special": "bool", "swapped": "bool", "logit": "float", "probability": "float",
                 "predicted_replaced": "bool"}
_PAIR_SCORE = {"probability": "float", "logits": ["float"], "predicted": "bool"}
_PAIR = {"line": "int", "a": "str", "b": "str", **_PAIR_SCORE, "swapped?": _PAIR_SCORE, "truncated_tokens?": "int"}
_VARIANT = {
    "variant": "str", "summary": "str", "objectives": ["str"], "masking": "str", "masking_detail": "str",
    "mask_strategy": "str", "tokenizer": "str", "marker": "str", "tricks": ["str"], "trick_details": ["str"],
    "changes": ["str"], "model_types": ["str"],
    "aliases": [{"alias": "str", "repo_id": "str", "legacy_ids": ["str"], "description": "str"}],
    "live?": "object",
}

SCHEMAS: dict[str, Schema] = {s.command: s for s in [
    Schema("tokenize", "stream", _TOKEN_RECORD, "docs/tokenize.md"),
    Schema("tokenize --count", "stream", {"line": "int", "text": "str", "count": "int"}, "docs/tokenize.md"),
    Schema("tokenize --truncate", "stream", {"line": "int", "text": "str", "count": "int"}, "docs/tokenize.md"),
    Schema("embed", "stream", {"line": "int", "text": "str", "n_tokens": "int", "vector": ["float"]}, "docs/embed.md"),
    Schema("embed --pooling none", "stream",
           {"line": "int", "text": "str", "tokens": ["str"], "n_tokens": "int", "vector": [["float"]]}, "docs/embed.md"),
    Schema("embed --similarity", "stream", {"line": "int", "text": "str", "similarity": ["float"]}, "docs/embed.md"),
    Schema("qa", "stream", {
        "id?": "any", "question": "str", **_ANSWER, "null_score": "float", "answers?": [_ANSWER],
        "windows?": [{"window": "int", "tokens": "int", "context_tokens": "int", "start": "int", "end": "int"}],
    }, "docs/qa.md"),
    Schema("config", "report", {
        "model": "str", "family": "str", "path": "str", "config": "object", "commit?": "str",
        "parameters": "object|null", "parameters_unavailable?": "str",
    }, "docs/config.md"),
    Schema("config --diff", "stream", {"field": "str", "a": "any", "b": "any"}, "docs/config.md"),
    Schema("inspect", "report", {
        "model": "str", "source": "str", "path": "str", "repo_id": "str|null", "revision": "str|null",
        "commit": "str|null", "family": "str|null", "model_type": "str|null", "architectures": ["str"],
        "tokenizer": "object|null", "max_positions": "int|null", "token_types": "int|null",
        "uses_token_types": "bool", "weights": "object|null",
        "capabilities": [{"command": "str", "available": "bool", "reason": "str"}],
        "missing_packages": ["object"], "notes": ["str"], "tensors?": [{
            "name": "str", "module": "str", "shape": ["int"], "dtype": "str", "parameters": "int", "buffer": "bool",
            "file": "str"}],
    }, "docs/inspect.md"),
    Schema("models", "stream", {
        "alias": "str", "repo_id": "str", "legacy_ids": ["str"], "family": "str", "description": "str",
        "cached": "bool", "path": "str|null",
    }, "docs/models.md"),
    Schema("download", "report", {
        "repo": "str", "revision": "str", "commit": "str|null", "path": "str", "files": ["str"], "bytes": "int",
        "downloaded_bytes": "int",
    }, "docs/download.md"),
    Schema("download --dry-run", "stream",
           {"file": "str", "size": "int|null", "cached": "bool", "will_download": "bool"}, "docs/download.md"),
    Schema("cache ls", "stream", {
        "repo": "str", "type": "str", "family": "str", "size": "int", "last_used": "str",
        "revisions": [{"commit": "str", "refs": ["str"], "size": "int", "files": ["str"], "weights": "str",
                       "path": "str"}],
        "partial_downloads": "int", "path": "str",
    }, "docs/cache.md"),
    Schema("cache rm", "report", {
        "repo": "str", "commits": ["str"], "whole_repo": "bool", "freed_bytes": "int", "paths": ["str"],
        "removed": "bool",
    }, "docs/cache.md"),
    Schema("cache verify", "stream", {
        "commit": "str", "file": "str", "size": "int|null", "status": "str", "check": "str|null", "detail": "str",
    }, "docs/cache.md"),
    Schema("variants", "stream", _VARIANT, "docs/variants.md"),
    Schema("variants VARIANT", "report", _VARIANT, "docs/variants.md"),
    Schema("compare", "stream", {
        "line": "int", "text": "str",
        "models": [{"model": "str", "kind": "str", "marker": "str|null", "tokens": ["str"], "ids": ["int"],
                    "offsets": [["int"]], "special": ["bool"], "count": "int"}],
        "differences": {"shared": ["int"], "not_shared": ["object"], "regions": ["object"]},
    }, "docs/compare.md"),
    Schema("mask", "stream", {
        **_MASK_HEADER, "epoch": "int", "new_mask": "bool", "budget": "int", "tokens": ["str"],
        "masked_tokens": ["str"], "action": ["str"], "selected": ["int"], "targets": ["str|null"],
        "special": ["bool"], "word_ids": ["int|null"], "spans?": [["int"]], "boundaries?": [["int"]],
        "span_lengths?": ["int"],
    }, "docs/mask.md"),
    Schema("mask --samples", "report", {
        **_MASK_HEADER, "samples": "int", "maskable": "int", "budget": "int",
        "rate": {"nominal": "float", "expected": "float", "observed": "float", "selected_min": "int",
                 "selected_mean": "float", "selected_max": "int"},
        "split": "object", "span_lengths?": "object",
    }, "docs/mask.md"),
    Schema("fill-mask", "stream", {
        "line": "int", "text": "str", "model_text?": "str", "filled": "str", "tokens": ["str"],
        "masks": [{"mask": "int", "position": "int", "start": "int", "end": "int",
                   "predictions": [{"token": "str", "token_id": "int", "word": "str", "score": "float"}]}],
    }, "docs/fill-mask.md"),
    Schema("detect", "stream", {
        "line": "int", "text": "str", "original?": "str",
        "replacements?": [{"word": "int", "old": "str", "new": "str", "start": "int", "end": "int"}],
        "tokens": [_DETECT_TOKEN],
        "truncated_tokens?": "int",
    }, "docs/detect.md"),
    Schema("detect --corrupt", "stream", {
        "line": "int", "seed": "int", "text": "str", "corrupted": "str",
        "corruptions": [{"position": "int", "original": "str", "original_id": "int", "sampled": "str",
                         "sampled_id": "int", "generator_probability": "float", "replaced": "bool"}],
        "caught": {"replaced": "int", "caught": "int", "original": "int", "false_alarms": "int"},
        "tokens": [_DETECT_TOKEN],
        "truncated_tokens?": "int",
    }, "docs/detect.md"),
    Schema("nsp", "stream", _PAIR, "docs/nsp.md"),
    Schema("sop", "stream", _PAIR, "docs/nsp.md"),
    Schema("zero-shot", "stream", {"line": "int", "text": "str", "labels": ["str"], "scores": ["float"]},
           "docs/zero-shot.md"),
    Schema("tag", "stream", {
        "line": "int", "text": "str",
        "entities": [{"entity_group": "str", "score": "float", "word": "str", "start": "int", "end": "int"}],
    }, "docs/tag.md"),
    Schema("tag --aggregation none", "stream", {
        "line": "int", "text": "str",
        "entities": [{"entity": "str", "score": "float", "index": "int", "word": "str", "start": "int", "end": "int"}],
    }, "docs/tag.md"),
    Schema("classify", "stream", {
        "line": "int", "text": "str", "pair?": "str", "label": "str", "score": "float",
        "labels?": [{"label": "str", "score": "float"}],
    }, "docs/classify.md"),
    Schema("rerank", "stream", {
        "query_line?": "int", "query": "str", "rank": "int", "corpus_id": "int", "line": "int", "score": "float",
        "text?": "str",
    }, "docs/rerank.md"),
    Schema("attention", "report", {**_ATTENTION_HEADER, "attention": [["float"]]}, "docs/attention.md"),
    Schema("attention --top", "report",
           {**_ATTENTION_HEADER, "top": [[{"position": "int", "token": "str", "weight": "float"}]]},
           "docs/attention.md"),
]}

_SCALARS = {
    "str": lambda v: isinstance(v, str),
    "int": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "float": lambda v: isinstance(v, float),
    "bool": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
    "any": lambda v: True,
    "object": lambda v: isinstance(v, dict),
}


def problems(value: Any, shape: Shape, path: str = "") -> list[str]:
    """Where ``value`` (parsed JSON) breaks ``shape``: a list of 'path: expected T, got …' (empty when it fits)."""
    if isinstance(shape, str):
        if any(_SCALARS[t](value) for t in shape.split("|")):
            return []
        return [f"{path or '.'}: expected {shape}, got {type(value).__name__} {value!r:.60}"]
    if isinstance(shape, list):
        if not isinstance(value, list):
            return [f"{path or '.'}: expected a list, got {type(value).__name__}"]
        found: list[str] = []
        for i, item in enumerate(value):
            found += problems(item, shape[0], f"{path}[{i}]")
            if found:
                break  # the first bad item says enough
        return found
    if not isinstance(value, dict):
        return [f"{path or '.'}: expected a record, got {type(value).__name__}"]
    found = []
    keys = {k.rstrip("?"): k.endswith("?") for k in shape}
    for key, optional in keys.items():
        if key not in value:
            if not optional:
                found.append(f"{path}.{key}: missing")
            continue
        found += problems(value[key], shape[key + "?" if optional else key], f"{path}.{key}")
    found += [f"{path}.{k}: not in the schema" for k in value if k not in keys]
    return found


def type_name(shape: Shape) -> str:
    """How a shape reads in the docs: ``int|null``, ``[str]``, ``[{…}]``, ``{…}``."""
    if isinstance(shape, str):
        return shape
    if isinstance(shape, list):
        return f"[{type_name(shape[0])}]"
    return "{…}"


def rows(fields: dict[str, Shape], prefix: str = "") -> list[tuple[str, str]]:
    """(key, type) per field, nested records flattened with dotted keys (``masks[].predictions[].score``)."""
    out: list[tuple[str, str]] = []
    for key, shape in fields.items():
        name = prefix + key
        out.append((name, type_name(shape)))
        inner, suffix = shape, ""
        while isinstance(inner, list):
            inner, suffix = inner[0], suffix + "[]"
        if isinstance(inner, dict):
            out += rows(inner, name.rstrip("?") + suffix + ".")
    return out


def markdown(command: str) -> str:
    """The docs table of one record kind (docs pages carry it verbatim; a test checks that they do)."""
    schema = SCHEMAS[command]
    what = ("one record a line with `-f jsonl`, an array of them with `-f json`" if schema.kind == "stream"
            else "one object (`-f json`), on one line with `-f jsonl`")
    lines = [f"`{command}` — {what}:", "", "| key | type |", "|---|---|"]
    lines += [f"| `{key}` | `{kind}` |".replace("|null", "\\|null") for key, kind in rows(schema.fields)]
    return "\n".join(lines)

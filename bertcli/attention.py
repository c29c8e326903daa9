"""Attention maps: one layer's attention (one head, or the mean of its heads) for a text, and ways to read it.

- `AttentionReader.read` runs the encoder with eager attention (the only implementation that returns the
  weights) and keeps one ``[tokens × tokens]`` matrix: row i is how token i spreads its attention (rows sum to 1).
- `bucket_matrix` shrinks a long input (up to 512 tokens) into a grid that fits a terminal: tokens are grouped
  into consecutive buckets and each cell is the attention *mass* a bucket of queries gives a bucket of keys
  (mean over the bucket's rows of the sum over its columns), so every grid row still sums to 1.
- `top_attended` lists each token's most-attended tokens; `save_png` draws the map with matplotlib (extra
  ``bertcli[plot]``).

Layers are numbered as everywhere in bertcli (and as transformers' ``hidden_states``): 0 is the embedding output,
1..L the encoder layers — attention exists for layers 1..L only. Heads are 0-based as in transformers. Negative
numbers count from the end (-1 = the last layer or head).
torch, transformers and matplotlib are imported inside the functions.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import IO, Any

import numpy as np

from bertcli.choices import SCALES
from bertcli.errors import MissingDependencyError, UsageError
from bertcli.limits import bert_names
from bertcli.resolve import ResolvedModel

PLOT_HINT = "pip install 'bertcli[plot]'"


@dataclass
class AttentionMap:
    """One layer's attention over a text's tokens: ``matrix[i, j]`` = how much token i attends to token j."""

    model: str
    tokens: list[str]
    layer: int  # 1..num_layers (0 is the embedding output, which has no attention)
    head: int | None  # 0-based; None: the mean over all heads
    num_layers: int
    num_heads: int
    matrix: np.ndarray  # float32, [n, n]
    truncated: int = 0

    @property
    def head_label(self) -> str:
        return "mean" if self.head is None else str(self.head)

    def describe(self) -> str:
        """'layer 6 of 1–6 · head 3 of 0–11' (or 'mean of 12 heads')."""
        head = f"mean of {self.num_heads} heads" if self.head is None else f"head {self.head} of 0–{self.num_heads - 1}"
        return f"layer {self.layer} of 1–{self.num_layers} · {head}"


@dataclass
class Grid:
    """A matrix grouped into buckets of consecutive tokens: ``ranges[k]`` = (first, last + 1) of bucket k."""

    values: np.ndarray  # [buckets, buckets]
    ranges: list[tuple[int, int]]
    size: int  # tokens per bucket (the last may hold fewer)

    @property
    def bucketed(self) -> bool:
        return self.size > 1


def resolve_index(value: int, count: int, what: str) -> int:
    """A 0-based index into ``count`` items; negative counts from the end. UsageError names the valid range."""
    if not -count <= value < count:
        raise UsageError(f"--{what} {value} is out of range: this model has {count} {what}s, "
                         f"so use 0..{count - 1} (or -{count}..-1 from the end)")
    return value % count


def resolve_layer(value: int, num_layers: int) -> int:
    """--layer N (1..L, negative from the end; 0 is the embedding output) → a 0-based index into the attentions."""
    if value == 0:
        raise UsageError(f"--layer 0 is the embedding output, which has no attention: use an encoder layer, "
                         f"1..{num_layers} (or -{num_layers}..-1 from the end)")
    if not -num_layers <= value <= num_layers:
        raise UsageError(f"--layer {value} is out of range: this model has {num_layers} layers, "
                         f"so use 1..{num_layers} (or -{num_layers}..-1 from the end)")
    return value - 1 if value > 0 else num_layers + value


def parse_head(value: str | int | None) -> int | str:
    """``"mean"`` (or None) → ``"mean"``; a number (possibly negative) → int; anything else → UsageError."""
    if value is None or (isinstance(value, str) and value.strip().lower() in ("mean", "avg", "average")):
        return "mean"
    try:
        return int(value)
    except (TypeError, ValueError):
        raise UsageError(f"--head {value!r}: give a head number (0-based, negative from the end) or 'mean'") from None


def check_layer_head(num_layers: int, num_heads: int, layer: int, head: int | str) -> tuple[int, int | None]:
    """0-based indices (into the attentions, and of the head; None = the mean); UsageError names the range."""
    layer_index = resolve_layer(layer, num_layers)
    head_index = None if head == "mean" else resolve_index(int(head), num_heads, "head")
    return layer_index, head_index


def check_config(config: dict, layer: int, head: int | str) -> None:
    """Validate layer/head from config.json alone, before any weights are loaded (when the config says)."""
    config = bert_names(config)  # DistilBERT: n_layers, n_heads
    layers, heads = config.get("num_hidden_layers"), config.get("num_attention_heads")
    if isinstance(layers, int) and isinstance(heads, int) and layers > 0 and heads > 0:
        check_layer_head(layers, heads, layer, head)


def bucket_matrix(matrix: np.ndarray, cells: int) -> Grid:
    """Group rows and columns into at most ``cells`` buckets of consecutive tokens (attention mass per cell)."""
    n = matrix.shape[0]
    if cells < 1:
        raise ValueError("cells must be at least 1")
    size = max(1, math.ceil(n / cells))
    starts = np.arange(0, n, size)
    ranges = [(int(s), int(min(s + size, n))) for s in starts]
    if size == 1:
        return Grid(values=matrix.astype(np.float64), ranges=ranges, size=1)
    col_sums = np.add.reduceat(matrix.astype(np.float64), starts, axis=1)
    row_sums = np.add.reduceat(col_sums, starts, axis=0)
    counts = np.array([e - s for s, e in ranges], dtype=np.float64)
    return Grid(values=row_sums / counts[:, None], ranges=ranges, size=size)


def top_attended(matrix: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """For each row, the ``n`` columns it attends to most (ties: lower position first) and their weights."""
    if n < 1:
        raise UsageError("--top must be at least 1")
    n = min(n, matrix.shape[1])
    order = np.argsort(-matrix, axis=1, kind="stable")[:, :n]
    return order, np.take_along_axis(matrix, order, axis=1)


class AttentionReader:
    """A loaded encoder (eager attention) plus its tokenizer; `read` gives one layer/head's map for a text."""

    def __init__(self, loaded, tok):
        from bertcli.limits import token_limit

        self.loaded = loaded
        self.tok = tok
        config = loaded.config
        self.num_layers = int(config.num_hidden_layers)
        self.num_heads = int(config.num_attention_heads)
        self.max_length = token_limit(config, tok.model_max_length)

    def check(self, layer: int, head: int | str) -> tuple[int, int | None]:
        """Validate layer/head against the model; returns 0-based indices (None = mean of heads)."""
        return check_layer_head(self.num_layers, self.num_heads, layer, head)

    def read(self, text: str, *, layer: int = -1, head: int | str = "mean") -> AttentionMap:
        """The attention of ``layer`` (one head, or the mean of all heads) over ``text``'s tokens."""
        from bertcli.runner import batch_inputs

        layer_index, head_index = self.check(layer, head)
        enc, truncated = self.tok.encode_capped(text, self.max_length)
        attentions = self.loaded.run(*batch_inputs([enc], self.tok), attention_layer=layer_index).attentions
        if attentions is None:
            raise UsageError("this model did not return attention weights")
        heads = attentions[0]  # [heads, n, n]
        matrix = heads.mean(axis=0, dtype=np.float32) if head_index is None else heads[head_index]
        return AttentionMap(model=self.loaded.resolved.display_name, tokens=list(enc.tokens), layer=layer_index + 1,
                            head=head_index, num_layers=self.num_layers, num_heads=self.num_heads,
                            matrix=np.asarray(matrix, dtype=np.float32), truncated=truncated)


def load_attention_reader(resolved: ResolvedModel, *, device: str = "cpu", backend: str = "auto") -> AttentionReader:
    """Any model's encoder, loaded so that the attention weights come back (torch: eager attention; ONNX: the
    export with attention outputs)."""
    from bertcli.backends import load_backend
    from bertcli.tokenizer import load_tokenizer

    tok = load_tokenizer(resolved)
    loaded = load_backend(resolved, "base", backend=backend, device=device, features=("attentions",), tokenizer=tok)
    return AttentionReader(loaded, tok)


# ---------------------------------------------------------------------------------------------------------
# PNG


def require_matplotlib() -> None:
    """Fail early, with the install line, when the ``plot`` extra is missing."""
    try:
        import matplotlib  # noqa: F401
    except ImportError as exc:
        raise MissingDependencyError("--png needs matplotlib, which is not installed", hint=PLOT_HINT) from exc


MAX_TICKS = 40
LOG_ABOVE = 64  # `auto` switches to a log colour scale above this many tokens


def pick_scale(scale: str, n_tokens: int) -> str:
    """``auto`` → ``linear`` for short inputs, ``log`` for long ones (where weights near 1/n all look alike)."""
    scale = (scale or "auto").lower()
    if scale not in SCALES:
        raise UsageError(f"--scale {scale!r}: choose one of {', '.join(SCALES)}")
    if scale == "auto":
        return "log" if n_tokens > LOG_ABOVE else "linear"
    return scale


def shade(values: np.ndarray, scale: str, *, uniform: float) -> np.ndarray:
    """Values mapped to 0..1 for shading: linear from 0 to the max, or log from a tenth of ``uniform`` to the max.

    ``uniform`` is what a cell would hold if attention were spread evenly (1/n per token, more per bucket).
    """
    top = float(values.max()) if values.size else 0.0
    if top <= 0:
        return np.zeros_like(values, dtype=np.float64)
    if scale == "linear":
        return np.clip(values / top, 0.0, 1.0)
    floor = min(uniform / 10.0, top / 10.0)
    logged = (np.log(np.maximum(values, floor)) - math.log(floor)) / (math.log(top) - math.log(floor))
    return np.clip(logged, 0.0, 1.0)


def tick_positions(n: int, max_ticks: int = MAX_TICKS) -> list[int]:
    """Every position when they fit, else every k-th (k a round step) so at most ``max_ticks`` labels show."""
    if n <= max_ticks:
        return list(range(n))
    raw = n / max_ticks
    steps = (2, 4, 5, 8, 10, 16, 20, 25, 32, 40, 50, 64, 100, 128)
    step = next((s for s in steps if s >= raw), math.ceil(raw))
    return list(range(0, n, step))


def save_png(amap: AttentionMap, handle: IO[bytes], *, scale: str = "auto", title: str | None = None,
             dpi: int = 110) -> None:
    """Draw the map (queries down, keys across) with a colour bar, thinned tick labels and a title."""
    require_matplotlib()
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.colors import LogNorm, Normalize
    from matplotlib.figure import Figure

    n = len(amap.tokens)
    scale = pick_scale(scale, n)
    top = float(amap.matrix.max()) or 1.0
    if scale == "log":
        floor = min(0.1 / n, top / 10.0)
        norm, data = LogNorm(vmin=floor, vmax=top), np.maximum(amap.matrix, floor)
    else:
        norm, data = Normalize(vmin=0.0, vmax=top), amap.matrix
    side = min(12.0, max(6.0, 3.0 + 0.2 * n))
    fig = Figure(figsize=(side + 1.4, side), dpi=dpi, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    image = ax.imshow(data, cmap="viridis", norm=norm, interpolation="nearest", aspect="equal")
    ticks = tick_positions(n)
    thinned = len(ticks) < n
    labels = [_tick_label(amap.tokens[i], i, thinned=thinned) for i in ticks]
    fontsize = 9 if n <= 24 else 7
    ax.set_xticks(ticks, labels, rotation=90, fontsize=fontsize)
    ax.set_yticks(ticks, labels, fontsize=fontsize)
    ax.set_xlabel("attended token (key)")
    ax.set_ylabel("attending token (query)")
    colorbar = fig.colorbar(image, ax=ax, shrink=0.8, pad=0.02, extend="min" if scale == "log" else "neither")
    colorbar.set_label("attention weight" + (" (log scale)" if scale == "log" else ""))
    notes = f"{n} tokens" + (f" · a tick every {ticks[1] - ticks[0]} tokens (position token)" if thinned else "")
    if amap.truncated:
        notes += f" · {amap.truncated} more cut off"
    ax.set_title(title or f"{short_name(amap.model)}\n{amap.describe()} · {notes}", fontsize=10)
    with warnings.catch_warnings():  # a token the font lacks (CJK, emoji) is drawn as a box, not warned about
        warnings.filterwarnings("ignore", message="Glyph .* missing from", category=UserWarning)
        fig.savefig(handle, format="png")


def short_name(model: str) -> str:
    """A hub id as is; a local path shortened to its last two parts (titles stay one line)."""
    parts = model.replace("\\", "/").rstrip("/").split("/")
    return model if not model.startswith(("/", ".", "~")) or len(parts) <= 2 else "…/" + "/".join(parts[-2:])


def _tick_label(token: str, position: int, *, thinned: bool) -> str:
    token = token if len(token) <= 14 else token[:13] + "…"
    return f"{position} {token}" if thinned else token


def as_record(amap: AttentionMap, *, top: int | None = None, decimals: int = 6) -> dict[str, Any]:
    """The JSON record: tokens plus the matrix (rounded) or, with ``top``, each token's top-N."""
    rec: dict[str, Any] = {"model": amap.model, "layer": amap.layer, "head": amap.head,
                           "num_layers": amap.num_layers, "num_heads": amap.num_heads, "tokens": amap.tokens}
    if amap.truncated:
        rec["truncated_tokens"] = amap.truncated
    if top is None:
        rec["attention"] = np.round(amap.matrix.astype(np.float64), decimals).tolist()
        return rec
    order, weights = top_attended(amap.matrix, top)
    rec["top"] = [
        [{"position": int(j), "token": amap.tokens[j], "weight": round(float(w), decimals)}
         for j, w in zip(order[i], weights[i])]
        for i in range(len(amap.tokens))
    ]
    return rec

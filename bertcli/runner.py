"""Loading a torch model for a head, devices and threads — shared by embed, qa, fill-mask, detect, attention.

torch and transformers are imported inside the functions: importing this module costs nothing.

A head is asked for by name (``base``, ``mlm``, ``qa``, ``rtd``); a model whose weights lack that head is refused
with a message that names the head that is missing and the command that fits, instead of silently running a
randomly initialised head (transformers only warns about that). The head tables and that refusal live in the
torch-free `bertcli.heads`.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from typing import Any

from bertcli.errors import MissingDependencyError, ModelFileError, UsageError
from bertcli.heads import HEAD_TENSORS, HEADS, architectures, check_head, missing_head_error
from bertcli.resolve import ResolvedModel

@dataclass
class LoadedModel:
    """A model ready for inference, plus facts the commands need."""

    model: Any  # torch.nn.Module in eval mode
    head: str
    device: Any  # torch.device
    resolved: ResolvedModel
    missing_keys: list[str] = field(default_factory=list)

    @property
    def config(self) -> Any:
        return self.model.config

    @property
    def has_pooler(self) -> bool:
        pooler = getattr(self.model, "pooler", None)
        return pooler is not None and not any(k.startswith("pooler.") for k in self.missing_keys)


def pick_device(device: str = "auto"):
    """``cpu``, ``cuda[:N]``, ``mps`` or ``auto`` (cuda, then mps, then cpu) → torch.device; clear error if absent."""
    import torch

    device = (device or "auto").lower()
    if device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise UsageError("--device cuda: no CUDA GPU is available to this torch build (try --device cpu)")
        return torch.device(device)
    if device == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise UsageError("--device mps: Apple's MPS backend is not available here (try --device cpu)")
        return torch.device("mps")
    if device == "cpu":
        return torch.device("cpu")
    raise UsageError(f"unknown --device {device!r}: choose cpu, cuda, cuda:N, mps or auto")


def set_threads(threads: int | None) -> None:
    """Set torch's intra-op threads (default: what torch picks, i.e. the physical cores)."""
    if threads is None:
        return
    if threads < 1:
        raise UsageError("--threads must be at least 1")
    import torch

    torch.set_num_threads(threads)


def quiet_transformers() -> None:
    """Keep transformers' own warnings and progress bars off stdout/stderr (we report what matters)."""
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    logging.getLogger("transformers").setLevel(logging.ERROR)
    try:
        from transformers.utils import logging as tlog

        tlog.set_verbosity_error()
        tlog.disable_progress_bar()
    except Exception:  # noqa: BLE001 - cosmetic only
        pass


def _deberta_original_mlm_head(resolved: ResolvedModel) -> bool:
    """A DeBERTa checkpoint whose MLM head is DeBERTa's own (``lm_predictions.*``, as microsoft/deberta-base and
    the v2 checkpoints ship it) and whose config does not say ``legacy``: transformers' default (legacy: True)
    would build another head and initialise it randomly, so fill-mask would answer noise."""
    from bertcli.resolve import DEBERTA_TYPES
    from bertcli.weights import read_safetensors

    if resolved.config.get("model_type") not in DEBERTA_TYPES or "legacy" in resolved.config:
        return False
    return any(t.name.startswith("lm_predictions.") for f in resolved.weight_files() if f.endswith(".safetensors")
               for t in read_safetensors(resolved.file(f)))


def preflight(resolved: ResolvedModel, head: str = "base", *, allow_pickle: bool = False, tokenizer: Any = None) -> None:
    """What is checked before torch is imported, whichever backend runs: config.json and a model_type, the head,
    weights in safetensors (pickles only with ``allow_pickle``), the config's sizes against the safetensors
    headers, and ``tokenizer``'s ids against the vocabulary; each failure a `ModelFileError` naming the file."""
    from bertcli.modelfiles import check_model, check_vocab_fits

    if head not in HEADS:
        raise ValueError(f"unknown head {head!r}")
    if not resolved.has_config:
        raise ModelFileError(f"{resolved.display_name} is a tokenizer only: running a model needs config.json and weights")
    if not resolved.config.get("model_type"):  # transformers cannot tell the class: say that, not "no encoder"
        from bertcli.inspect import no_model_type_error

        raise no_model_type_error(resolved)
    check_head(resolved, head)
    weights = [f for f in resolved.files if f.endswith(".safetensors")]
    pickles = [f for f in resolved.files if f.endswith(".bin")]
    if not weights and not pickles:
        raise ModelFileError(f"{resolved.display_name} has no weights (model.safetensors or pytorch_model.bin)")
    if not weights and not allow_pickle:
        raise ModelFileError(
            f"{resolved.display_name} has only pickle weights ({', '.join(pickles)}), which can run code when loaded, "
            "and bertcli runs safetensors weights only",
            hint=f"if you trust the source, convert them once: python -c \"import transformers as t; "
            f"t.{HEADS[head][0]}.from_pretrained('DIR').save_pretrained('DIR')\" writes model.safetensors "
            "(`bertcli inspect --allow-pickle` reads them without converting)",
        )
    check_model(resolved)
    if tokenizer is not None:
        check_vocab_fits(tokenizer, resolved)


def load_model(
    resolved: ResolvedModel,
    head: str = "base",
    *,
    device: str = "cpu",
    dtype: str | None = None,
    trust_remote_code: bool = False,
    allow_pickle: bool = False,
    attn_implementation: str | None = None,
    tokenizer: Any = None,
) -> LoadedModel:
    """Load ``resolved`` with the given head, in eval mode on ``device``.

    Before torch is imported, config.json's sizes and the safetensors headers are checked (`bertcli.modelfiles`):
    a corrupt file, or a config whose layers or sizes the weights do not hold, is a `ModelFileError` naming the
    file. With ``tokenizer``, its ids are checked against the model's vocabulary too.
    """
    from bertcli.modelfiles import model_files

    preflight(resolved, head, allow_pickle=allow_pickle, tokenizer=tokenizer)
    weights = [f for f in resolved.files if f.endswith(".safetensors")]
    torch_device = pick_device(device)
    quiet_transformers()
    try:
        import torch
        import transformers
    except ImportError as exc:  # pragma: no cover - core dependency
        raise MissingDependencyError(f"running models needs torch and transformers: {exc}") from exc
    auto_cls = getattr(transformers, HEADS[head][0])
    kwargs: dict[str, Any] = {"trust_remote_code": trust_remote_code, "output_loading_info": True}
    if weights:
        kwargs["use_safetensors"] = True
    if dtype:
        kwargs["dtype"] = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}[dtype]
    if attn_implementation:
        kwargs["attn_implementation"] = attn_implementation
    if head == "mlm" and _deberta_original_mlm_head(resolved):
        kwargs["legacy"] = False  # read the lm_predictions.* head DeBERTa v1/v2 checkpoints ship
    try:
        with model_files(f"cannot load {resolved.display_name}"):
            if resolved.inferred_model_type:  # config.json has no model_type: transformers 5 needs the config given
                kwargs["config"] = transformers.AutoConfig.for_model(**resolved.config)
            model, info = auto_cls.from_pretrained(str(resolved.path), **kwargs)
    except ModelFileError as exc:
        cause = str(exc.__cause__ or "")
        if "Unrecognized configuration class" in cause or "Unrecognized model" in cause:
            raise missing_head_error(resolved, head, architectures(resolved)) from exc.__cause__
        raise
    missing = list(info.get("missing_keys") or [])
    if head != "base":
        body = _base_prefix(model)
        head_missing = [k for k in missing if not k.startswith(body) and "position_ids" not in k
                        and k.startswith(HEAD_TENSORS.get(head, ""))]
        if head_missing:
            raise missing_head_error(resolved, head, architectures(resolved))
    model.eval()
    model.to(torch_device)
    return LoadedModel(model=model, head=head, device=torch_device, resolved=resolved, missing_keys=missing)


def _base_prefix(model: Any) -> str:
    prefix = getattr(model, "base_model_prefix", "") or ""
    return prefix + "." if prefix else ""


def batch_inputs(encs, tok, *, with_types: bool | None = None):
    """Right-padded model inputs as numpy int64 arrays, for `bertcli.backends.Backend.run`: (input_ids,
    attention_mask, token_type_ids or None when the model does not use them)."""
    import numpy as np

    pad_id = tok.special_ids.get("pad_token", 0)
    width = max(len(e.ids) for e in encs)
    ids = np.full((len(encs), width), pad_id, dtype=np.int64)
    mask = np.zeros((len(encs), width), dtype=np.int64)
    types = np.zeros((len(encs), width), dtype=np.int64)
    for i, enc in enumerate(encs):
        n = len(enc.ids)
        ids[i, :n] = enc.ids
        mask[i, :n] = 1
        types[i, :n] = enc.type_ids
    return ids, mask, (types if (tok.uses_token_types if with_types is None else with_types) else None)

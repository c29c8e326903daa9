"""The torch backend: a transformers model for any head (`bertcli.runner.load_model`), run on numpy inputs.

`TorchBackend.run` moves the numpy inputs to the model's device, runs one forward pass under
``torch.inference_mode`` (`session` adds ``torch.autocast`` for bfloat16/float16 compute), and hands the outputs back
as float32 numpy arrays on the CPU: the ``base`` head's hidden states and pooler output, the other heads' logits.

torch is imported inside the methods only.
"""

from __future__ import annotations

import contextlib
import inspect
from dataclasses import dataclass
from typing import Any

import numpy as np

from bertcli.backends import BackendOutput, ConfigFacts
from bertcli.heads import HEAD_LOGITS


@dataclass
class TorchBackend(ConfigFacts):
    """`bertcli.backends.Backend` over a `bertcli.runner.LoadedModel`."""

    loaded: Any  # bertcli.runner.LoadedModel
    name: str = "torch"

    @classmethod
    def load(cls, resolved: Any, head: str = "base", *, device: str = "cpu", tokenizer: Any = None,
             threads: int | None = None, attn_implementation: str | None = None,
             allow_pickle: bool = False) -> TorchBackend:
        """Load ``resolved`` with ``head`` (see `bertcli.runner.load_model`); ``threads`` sets torch's intra-op threads."""
        from bertcli.runner import load_model, set_threads

        set_threads(threads)
        loaded = load_model(resolved, head, device=device, tokenizer=tokenizer, allow_pickle=allow_pickle,
                            attn_implementation=attn_implementation)
        return cls(loaded=loaded)

    # -- facts --------------------------------------------------------------------------------------------

    @property
    def head(self) -> str:
        return self.loaded.head

    @property
    def resolved(self) -> Any:
        return self.loaded.resolved

    @property
    def model(self) -> Any:
        """The torch module (for the few callers that need torch itself, e.g. the ONNX exporter)."""
        return self.loaded.model

    @property
    def config(self) -> Any:
        return self.loaded.config

    @property
    def architecture(self) -> str:
        return type(self.loaded.model).__name__

    @property
    def device(self) -> str:
        return str(self.loaded.device)

    @property
    def has_pooler(self) -> bool:
        return self.loaded.has_pooler

    @property
    def pooler_layer(self) -> bool:
        """The model class has a pooler layer (trained or not)."""
        return getattr(self.loaded.model, "pooler", None) is not None

    @property
    def accepts_token_types(self) -> bool:
        return "token_type_ids" in inspect.signature(self.loaded.model.forward).parameters

    # -- running ------------------------------------------------------------------------------------------

    def session(self, compute: str = "float32"):
        """One inference-mode scope for several `run` calls; matmuls under autocast for bfloat16/float16."""
        import torch

        stack = contextlib.ExitStack()
        stack.enter_context(torch.inference_mode())
        if compute != "float32":
            stack.enter_context(torch.autocast(self.loaded.device.type, dtype=getattr(torch, compute)))
        return stack

    def run(self, input_ids: np.ndarray, attention_mask: np.ndarray, token_type_ids: np.ndarray | None = None, *,
            layer: int | None = None, attention_layer: int | None = None,
            positions: tuple[list[int], list[int]] | None = None) -> BackendOutput:
        import torch

        device = self.loaded.device
        inputs = {"input_ids": torch.from_numpy(input_ids).to(device),
                  "attention_mask": torch.from_numpy(attention_mask).to(device)}
        if token_type_ids is not None:
            inputs["token_type_ids"] = torch.from_numpy(token_type_ids).to(device)
        kwargs: dict[str, Any] = {"return_dict": True}
        if layer is not None:
            kwargs["output_hidden_states"] = True
        if attention_layer is not None:
            kwargs["output_attentions"] = True
        with torch.inference_mode():
            out = self.loaded.model(**inputs, **kwargs)
            result = BackendOutput()
            if self.head == "base":
                hidden = out.hidden_states[layer] if layer is not None else out.last_hidden_state
                result.hidden = _numpy(hidden)
                pooled = getattr(out, "pooler_output", None)
                result.pooled = _numpy(pooled) if pooled is not None else None
            for name in HEAD_LOGITS.get(self.head, ()):
                value = getattr(out, name)
                if positions is not None:
                    value = value[list(positions[0]), list(positions[1])]
                result.logits[name] = _numpy(value)
            if attention_layer is not None:
                attentions = getattr(out, "attentions", None)
                picked = attentions[attention_layer] if attentions else None
                result.attentions = _numpy(picked) if picked is not None else None
        return result


def _numpy(tensor: Any) -> np.ndarray:
    """A float32 numpy array on the CPU (no copy when the tensor already is one)."""
    return tensor.float().cpu().numpy()

"""Low-rank adapters (LoRA, Hu et al. 2021, arXiv 2106.09685) through ``peft``: ``agent.lora.*``.

With ``agent.lora.rank > 0`` the trainer wraps its policy with :func:`apply_lora`: the base
weights are frozen and only the adapters ``A`` (r x in) and ``B`` (out x r) of the targeted
linear layers train, so every learner (the SFT warm start, the RL learner) updates adapters
only; its optimizer takes the parameters that require gradients. The rollout side sees the
adapted policy:

* the HF backend serves the very wrapped model object, whose forward pass adds ``B A x``;
* a backend with its own engine (vLLM) gets :func:`merged_state_dict`: the base weights with
  ``W + (alpha / r) B A`` folded in, under the plain model's names, pushed through its
  ``update_weights``.

Checkpoints hold the adapter (:func:`adapter_state_dict`, restored with
:func:`load_adapter_state_dict`), and :func:`save_merged` writes a plain model folder that
``from_pretrained`` loads without ``peft``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

if TYPE_CHECKING:
    from agentropy.configs.schema import LoRAConfig

__all__ = [
    "adapter_state_dict",
    "apply_lora",
    "is_lora",
    "load_adapter_state_dict",
    "merged_state_dict",
    "save_merged",
    "trainable_parameters",
]

_ADAPTER = "default"


def apply_lora(model: nn.Module, cfg: LoRAConfig) -> nn.Module:
    """Wrap a causal LM with fresh adapters (``B = 0``: the wrapped model computes what the base
    computes) and freeze everything else.

    Raises:
        ValueError: no module of the model matches ``cfg.target_modules``.
    """
    from peft import LoraConfig, get_peft_model

    names = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()}
    if not names & set(cfg.target_modules):
        raise ValueError(f"agent.lora.target_modules: none of {cfg.target_modules} is a module of the model "
                         f"(its linear layers include {sorted(n for n in names if n.endswith('proj'))})")
    config = LoraConfig(r=cfg.rank, lora_alpha=cfg.alpha, lora_dropout=cfg.dropout,
                        target_modules=list(cfg.target_modules), task_type="CAUSAL_LM", bias="none")
    return get_peft_model(model, config)


def is_lora(model: nn.Module) -> bool:
    """The model is wrapped by :func:`apply_lora`."""
    from peft import PeftModel

    return isinstance(model, PeftModel)


def trainable_parameters(model: nn.Module) -> tuple[int, int]:
    """(parameters that train, all parameters)."""
    params = list(model.parameters())
    return sum(p.numel() for p in params if p.requires_grad), sum(p.numel() for p in params)


def adapter_state_dict(model: nn.Module) -> dict[str, Tensor]:
    """The adapter weights only (``peft``'s names), for checkpoints."""
    from peft import get_peft_model_state_dict

    return get_peft_model_state_dict(model, adapter_name=_ADAPTER)


def load_adapter_state_dict(model: nn.Module, state: dict[str, Tensor]) -> None:
    """Restore adapter weights saved by :func:`adapter_state_dict`.

    Raises:
        KeyError: an adapter weight of the model is missing from ``state``.
    """
    from peft import set_peft_model_state_dict

    result = set_peft_model_state_dict(model, state, adapter_name=_ADAPTER)
    missing = [k for k in result.missing_keys if "lora_" in k]
    if missing or result.unexpected_keys:
        raise KeyError(f"adapter checkpoint: missing {missing[:3]}, "
                       f"unexpected {list(result.unexpected_keys)[:3]}")


@torch.no_grad()
def merged_state_dict(model: nn.Module) -> dict[str, Tensor]:
    """The plain model's state dict with the adapters folded in: ``W + (alpha / r) B A``.

    The names are those of the unwrapped model (``model.layers.0.self_attn.q_proj.weight``), so an
    engine that loads checkpoints takes it as is. The wrapped model is left unchanged. A model
    that is not wrapped returns its own ``state_dict()``.
    """
    if not is_lora(model):
        return model.state_dict()
    from peft.tuners.lora import LoraLayer

    base = model.get_base_model()
    deltas = {
        f"{name}.base_layer.weight": module.get_delta_weight(_ADAPTER)
        for name, module in base.named_modules()
        if isinstance(module, LoraLayer) and _ADAPTER in module.lora_A
    }
    out: dict[str, Tensor] = {}
    for key, value in base.state_dict().items():
        if ".lora_" in key:
            continue
        if key in deltas:
            value = value + deltas[key].to(value.dtype)
        out[key.replace(".base_layer.", ".")] = value
    return out


def save_merged(model: nn.Module, tokenizer: Any, out_dir: str | Path) -> Path:
    """Save the policy as a plain model folder (adapters merged) with its tokenizer."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    base = model.get_base_model() if is_lora(model) else model
    base.save_pretrained(out, state_dict=merged_state_dict(model))
    if tokenizer is not None:
        tokenizer.save_pretrained(out)
    return out

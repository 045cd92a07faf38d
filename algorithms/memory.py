"""Memory and precision of the learner's forward and backward passes.

Pure helpers the learner calls at a few places; each is one setting of
:class:`agentropy.configs.schema.AlgorithmConfig` (see ``bench/results/memory.md`` for what each
saves):

* :func:`token_budget_slices`: micro-batches by a token budget (``max_tokens_per_micro_batch``)
  rather than a row count. The loss weights are computed over the whole mini-batch, so the
  split does not change the gradient.
* :func:`split_lm`: the backbone and output head of a causal LM, so that the head runs only at
  completion positions (:func:`agentropy.algorithms.functional.completion_logprobs_and_entropy`).
* :func:`enable_activation_checkpointing`: recompute each decoder layer's activations in the
  backward pass instead of keeping them.
* :func:`autocast` / :func:`autocast_supported`: the forward and backward in the compute dtype
  (``agent.dtype``) over float32 master weights.
* :func:`frozen_reference`: the KL reference, frozen, in the compute dtype, on a chosen device.
* :func:`engine_state_dict`: the master weights cast to the rollout engine's dtype.
"""

from __future__ import annotations

import contextlib
import copy
import logging
from collections.abc import Callable, Iterator, Mapping

import torch
from torch import Tensor, nn

__all__ = [
    "DTYPES",
    "as_dtype",
    "autocast",
    "autocast_supported",
    "enable_activation_checkpointing",
    "engine_state_dict",
    "frozen_reference",
    "split_lm",
    "stochastic_round",
    "StochasticRoundingAdamW",
    "token_budget_slices",
]

log = logging.getLogger(__name__)

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16,
          "float64": torch.float64}


def as_dtype(dtype: torch.dtype | str) -> torch.dtype:
    """``torch.bfloat16`` from ``"bfloat16"`` (a dtype passes through)."""
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype not in DTYPES:
        raise ValueError(f"unknown dtype {dtype!r}; expected one of {sorted(DTYPES)}")
    return DTYPES[dtype]


def token_budget_slices(lengths: Tensor, *, max_rows: int, max_tokens: int = 0) -> list[slice]:
    """Split rows, in order, into contiguous micro-batches.

    A micro-batch's cost is what its forward pass sees after trimming: rows x its longest row.
    Each micro-batch takes rows while it has at most ``max_rows`` rows and, when ``max_tokens``
    > 0, costs at most ``max_tokens``; a row longer than the budget gets a micro-batch of its own.

    Args:
        lengths: (B,) tokens of each row (prompt + completion, without padding).
        max_rows: most rows per micro-batch (>= 1).
        max_tokens: token budget per micro-batch; 0 means rows only.

    Returns:
        slices covering ``range(B)`` in order, none empty.
    """
    if max_rows < 1:
        raise ValueError(f"max_rows must be >= 1, got {max_rows}")
    n = int(lengths.shape[0])
    if max_tokens <= 0:
        return [slice(s, min(n, s + max_rows)) for s in range(0, n, max_rows)]
    out, start, longest = [], 0, 0
    for i, length in enumerate(lengths.tolist()):
        wider = max(longest, int(length))
        if i > start and (i - start >= max_rows or (i - start + 1) * wider > max_tokens):
            out.append(slice(start, i))
            start, wider = i, int(length)
        longest = wider
    if start < n:
        out.append(slice(start, n))
    return out


def split_lm(model: nn.Module) -> tuple[nn.Module, Callable[[Tensor], Tensor]] | None:
    """The backbone (returning ``last_hidden_state``) and output head of a causal LM, or None.

    Only models whose logits are exactly ``head(last_hidden_state)`` qualify: Hugging Face
    causal LMs of the Llama / Qwen2 / Mistral families (the ones this project runs). Others
    (logit soft-capping, scaled logits) return None and the learner computes full logits. A
    ``peft`` wrapper is looked through: its adapters live inside the wrapped model's layers.
    """
    get_base = getattr(model, "get_base_model", None)
    if get_base is not None:
        model = get_base()
    prefix = getattr(model, "base_model_prefix", None)
    backbone = getattr(model, prefix, None) if prefix else None
    get_head = getattr(model, "get_output_embeddings", None)
    head = get_head() if get_head is not None else None
    config = getattr(model, "config", None)
    if backbone is None or backbone is model or not isinstance(head, nn.Linear) or config is None:
        return None
    if getattr(config, "final_logit_softcapping", None) or getattr(config, "logit_scale", None):
        return None
    if getattr(config, "model_type", "") not in ("qwen2", "qwen3", "llama", "mistral"):
        return None
    return backbone, head


def enable_activation_checkpointing(model: nn.Module) -> bool:
    """Turn on Hugging Face activation checkpointing (non-reentrant); False if the model has none.

    The layers recompute their activations in the backward pass only in training mode; the
    learner runs its gradient passes with ``model.train()`` (the project's models have no
    dropout, so this changes nothing else).
    """
    if not getattr(model, "supports_gradient_checkpointing", False):
        log.warning("activation checkpointing: %s does not support it; left off", type(model).__name__)
        return False
    if hasattr(model, "activation_checkpointing_enable"):  # transformers >= 5
        model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
    else:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    return True


def autocast_supported(device: torch.device, dtype: torch.dtype) -> bool:
    """Whether ``torch.autocast`` runs ``dtype`` on ``device`` (CUDA: bf16/fp16, CPU: bf16/fp16)."""
    if dtype not in (torch.bfloat16, torch.float16):
        return False
    if device.type == "cuda":
        return dtype != torch.bfloat16 or torch.cuda.is_bf16_supported()
    return device.type == "cpu"


@contextlib.contextmanager
def autocast(device: torch.device, compute_dtype: torch.dtype, param_dtype: torch.dtype) -> Iterator[None]:
    """Run the enclosed forward (and its backward) in ``compute_dtype`` when it is narrower than
    the parameters and the device supports it; otherwise a no-op."""
    narrower = torch.finfo(compute_dtype).bits < torch.finfo(param_dtype).bits
    if narrower and autocast_supported(device, compute_dtype):
        with torch.autocast(device_type=device.type, dtype=compute_dtype):
            yield
    else:
        yield


def frozen_reference(model: nn.Module, *, dtype: torch.dtype, device: torch.device | str) -> nn.Module:
    """A frozen copy of ``model`` in ``dtype`` on ``device`` (the KL reference), in eval mode."""
    ref = copy.deepcopy(model).to(device=device, dtype=dtype)
    ref.requires_grad_(False)
    return ref.eval()


def engine_state_dict(model: nn.Module, dtype: torch.dtype | str) -> dict[str, Tensor]:
    """The weights a rollout engine loads: ``model``'s state dict with any LoRA adapters merged
    in (:func:`agentropy.agents.lora.merged_state_dict`), floating tensors cast to ``dtype`` (the
    engine's); tensors already in ``dtype`` are the model's own (no copy)."""
    from agentropy.agents.lora import merged_state_dict

    dtype = as_dtype(dtype)
    state: Mapping[str, Tensor] = merged_state_dict(model)
    return {k: v.detach().to(dtype) if v.is_floating_point() else v.detach() for k, v in state.items()}


def stochastic_round(x: Tensor, dtype: torch.dtype) -> Tensor:
    """Round float32 ``x`` to bfloat16 at random, up with probability equal to the distance
    from the lower neighbour (so the rounding is unbiased: E[round(x)] = x). Other dtypes are
    rounded to nearest."""
    if dtype != torch.bfloat16 or x.dtype != torch.float32:
        return x.to(dtype)
    bits = x.contiguous().view(torch.int32)
    noise = torch.randint(0, 1 << 16, bits.shape, dtype=torch.int32, device=x.device)
    return ((bits + noise) & -65536).view(torch.float32).to(dtype)  # -65536 = ~0xFFFF


class StochasticRoundingAdamW(torch.optim.Optimizer):
    """AdamW for weights kept in bfloat16 (``algorithm.master_weights=compute``).

    The moments are float32; each step computes the new weight in float32 (decoupled weight
    decay, bias-corrected Adam update) and stores it with :func:`stochastic_round`, so that
    updates far below bfloat16's spacing (lr 1e-6 on weights of size 1e-2, whose spacing is
    about 6e-5) still move the weights in expectation instead of being rounded away, as they are
    with torch's AdamW on bfloat16 parameters.
    """

    def __init__(self, params, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.01) -> None:
        super().__init__(params, {"lr": lr, "betas": betas, "eps": eps, "weight_decay": weight_decay})

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:
        loss = closure() if closure is not None else None
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            lr = group["lr"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:
                    state["step"] = torch.zeros((), dtype=torch.float32)
                    state["exp_avg"] = torch.zeros_like(p, dtype=torch.float32)
                    state["exp_avg_sq"] = torch.zeros_like(p, dtype=torch.float32)
                state["step"] += 1
                t = float(state["step"])
                grad = p.grad.float()
                state["exp_avg"].lerp_(grad, 1 - beta1)
                state["exp_avg_sq"].mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
                denom = (state["exp_avg_sq"] / (1 - beta2 ** t)).sqrt_().add_(group["eps"])
                weight = p.float().mul_(1 - lr * group["weight_decay"])
                weight.addcdiv_(state["exp_avg"], denom, value=-lr / (1 - beta1 ** t))
                p.copy_(stochastic_round(weight, p.dtype))
        return loss

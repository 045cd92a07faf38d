"""The supervised warm start: imitate the environments' own experts.

The expert data is made by the same machinery as RL data: a scripted expert backend plays the
training split through the same prompt templates, so each expert turn is a ``Turn`` whose prompt
is exactly what the policy will see and whose completion is the expert's answer
``<think></think><action>CMD</action><|im_end|>`` in the policy's tokens. SFT is then the
cross-entropy of those completion tokens given their prompts: ``collate`` gives the rows and the
loss mask, :func:`agentropy.algorithms.functional.token_logprobs` the log-likelihoods.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from agentropy.algorithms.data import Trajectory, collate
from agentropy.algorithms.functional import token_logprobs
from agentropy.algorithms.registry import LR_SCHEDULES
from agentropy.configs.schema import SFTConfig
from torch import nn

__all__ = ["SFTResult", "sft_train"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SFTResult:
    """What a warm start did.

    Attributes:
        rows: training rows (expert turns) available.
        steps: optimizer steps taken.
        first_loss: mean token NLL of the first step.
        last_loss: mean token NLL over the last 10 steps.
        tokens: completion tokens trained on, summed over steps.
    """

    rows: int
    steps: int
    first_loss: float
    last_loss: float
    tokens: int


def _lr_factor(step: int, total: int, warmup_ratio: float, min_ratio: float) -> float:
    warmup = max(1, round(total * warmup_ratio))
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return LR_SCHEDULES.get("cosine")(min(progress, 1.0), min_ratio)


def sft_train(
    model: nn.Module,
    trajectories: Sequence[Trajectory],
    cfg: SFTConfig,
    *,
    pad_token_id: int,
    seed: int = 0,
    on_step: Callable[[int, float], None] | None = None,
) -> SFTResult:
    """Train ``model`` in place on the completions of ``trajectories``.

    Args:
        model: a causal LM.
        trajectories: expert episodes (every turn is a training row).
        cfg: steps, batch size, learning-rate schedule.
        pad_token_id: the tokenizer's pad id.
        seed: seeds the row sampling.
        on_step: called as ``on_step(step, loss)`` after each optimizer step (progress).

    Returns:
        A summary of the run.
    """
    batch = collate(trajectories, pad_token_id=pad_token_id)
    device = next(model.parameters()).device
    generator = torch.Generator().manual_seed(seed)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: _lr_factor(s, cfg.steps, cfg.warmup_ratio, cfg.min_lr_ratio)
    )
    model.train()
    losses: list[float] = []
    tokens = 0
    order = torch.randperm(batch.batch_size, generator=generator)
    cursor = 0
    for step in range(cfg.steps):
        if cursor + cfg.batch_size > len(order):  # a new epoch over the rows
            order, cursor = torch.randperm(batch.batch_size, generator=generator), 0
        rows = order[cursor : cursor + cfg.batch_size]
        cursor += cfg.batch_size
        mb = batch.select(rows).trim().to(device)
        logits = model(input_ids=mb.input_ids, attention_mask=mb.attention_mask).logits
        logp = token_logprobs(logits, mb.input_ids)
        mask = mb.loss_mask.to(logp.dtype)
        loss = -(logp * mask).sum() / mask.sum().clamp_min(1.0)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
        optimizer.step()
        scheduler.step()
        losses.append(float(loss.detach()))
        tokens += int(mb.loss_mask.sum())
        if on_step is not None:
            on_step(step, losses[-1])
    model.eval()
    tail = losses[-10:]
    result = SFTResult(
        rows=batch.batch_size,
        steps=cfg.steps,
        first_loss=losses[0] if losses else math.nan,
        last_loss=sum(tail) / len(tail) if tail else math.nan,
        tokens=tokens,
    )
    log.info("SFT: %d steps on %d rows, loss %.3f -> %.3f", result.steps, result.rows,
             result.first_loss, result.last_loss)
    return result

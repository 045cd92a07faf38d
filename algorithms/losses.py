"""Policy losses, one signature: ``fn(inputs: PolicyInputs, cfg: PolicyLossConfig) -> LossOutput``.

A loss returns the *per-token* loss matrix and which tokens were clipped or singled out; it
does not aggregate. The learner weights the matrix with an aggregation mode
(:func:`agentropy.algorithms.functional.aggregation_weights`), adds KL and entropy terms, and sums. So
"Dr.GRPO" is ``ppo_clip`` + ``seq-mean-token-sum-norm`` + ``grpo`` without std: three config
values, not a new loss.

Registered: ``ppo_clip`` (separate low/high clip, dual clip), ``clip_cov``, ``kl_cov``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from agentropy.algorithms import functional as fn
from agentropy.algorithms.registry import POLICY_LOSSES
from torch import Tensor

if TYPE_CHECKING:
    from agentropy.configs.schema import PolicyLossConfig

__all__ = ["PolicyInputs", "LossOutput"]


@dataclass(frozen=True)
class PolicyInputs:
    """The tensors of one micro-batch a policy loss sees, all (N, T).

    Attributes:
        logp: current log-probabilities (with gradient), 0 outside ``mask``.
        old_logp: behaviour log-probabilities (the ratio's denominator).
        advantages: per-token advantages, 0 outside ``mask``.
        mask: bool; the tokens that are trained on.
        generator: random source for losses that sample tokens (Clip-Cov).
    """

    logp: Tensor
    old_logp: Tensor
    advantages: Tensor
    mask: Tensor
    generator: torch.Generator | None = None


@dataclass(frozen=True)
class LossOutput:
    """A policy loss's result, all (N, T).

    Attributes:
        loss: per-token loss (finite everywhere; the learner weights it).
        clipped: bool; tokens whose gradient a ratio clip cut (PPO clip or dual clip).
        selected: bool; tokens singled out by a covariance rule (Clip-Cov, KL-Cov).
    """

    loss: Tensor
    clipped: Tensor
    selected: Tensor


def _surrogates(inp: PolicyInputs, cfg: PolicyLossConfig) -> tuple[Tensor, Tensor, Tensor]:
    return fn.ppo_surrogates(inp.logp, inp.old_logp, inp.advantages, clip_low=cfg.clip_low,
                             clip_high=cfg.clip_high)


@POLICY_LOSSES.register("ppo_clip")
def ppo_clip(inp: PolicyInputs, cfg: PolicyLossConfig) -> LossOutput:
    """PPO-clip with separate low/high bounds and dual clip
    (:func:`agentropy.algorithms.functional.ppo_clip_loss`), surrogates computed once."""
    _, unclipped, clipped = _surrogates(inp, cfg)
    surrogate = torch.maximum(unclipped, clipped)
    loss = fn.dual_clip(surrogate, inp.advantages, cfg.dual_clip_c)
    cut = clipped > unclipped
    if cfg.dual_clip_c is not None:
        cut = cut | ((inp.advantages < 0) & (-inp.advantages * cfg.dual_clip_c < surrogate))
    mask = inp.mask.bool()
    return LossOutput(loss=loss, clipped=cut & mask, selected=torch.zeros_like(mask))


@POLICY_LOSSES.register("clip_cov")
def clip_cov(inp: PolicyInputs, cfg: PolicyLossConfig) -> LossOutput:
    """Clip-Cov (arXiv 2505.22617; docs/algorithms.md section 4).

    Standard PPO clip (no dual clip); among the tokens PPO did not clip whose covariance
    (A - mean A)(log pi - mean log pi) lies in (lb, ub), a random ``clip_cov_ratio`` fraction
    of the valid tokens (at least one) is detached: their loss is 0 and gives no gradient.
    The covariance and the pick are taken over the current micro-batch, as in the reference
    code (so they depend on the micro-batch size; docs/algorithms.md section 9.5).
    """
    _, unclipped, clipped = _surrogates(inp, cfg)
    mask = inp.mask.bool()
    cut = (clipped > unclipped) & mask
    cov = fn.token_covariance(inp.logp, inp.advantages, mask)
    selected = fn.clip_cov_select(cov, mask, cut, ratio=cfg.clip_cov_ratio, lb=cfg.clip_cov_lb,
                                 ub=cfg.clip_cov_ub, generator=inp.generator)
    loss = torch.maximum(unclipped, clipped)
    loss = torch.where(selected, torch.zeros_like(loss), loss)
    return LossOutput(loss=loss, clipped=cut, selected=selected)


@POLICY_LOSSES.register("kl_cov")
def kl_cov(inp: PolicyInputs, cfg: PolicyLossConfig) -> LossOutput:
    """KL-Cov (arXiv 2505.22617; docs/algorithms.md section 4).

    Loss = -A r with no clipping; the top ``kl_cov_ratio`` fraction of valid tokens by
    covariance (at least one; a raw fraction, not PRIME-RL's percent) get an extra
    ``kl_cov_coef`` |log pi - log pi_old|. Selection per micro-batch, as in the reference code.
    """
    ratio, unclipped, _ = _surrogates(inp, cfg)
    mask = inp.mask.bool()
    cov = fn.token_covariance(inp.logp, inp.advantages, mask)
    selected = fn.kl_cov_select(cov, mask, ratio=cfg.kl_cov_ratio)
    penalty = cfg.kl_cov_coef * (inp.logp - inp.old_logp).abs()
    loss = torch.where(selected, unclipped + penalty, unclipped)
    return LossOutput(loss=loss, clipped=torch.zeros_like(mask), selected=selected)

"""Advantage estimators, one signature: ``fn(batch, cfg, inputs) -> AdvantageOutput``.

Each estimator reads the :class:`~agentropy.algorithms.data.TokenBatch` keys it needs, its own part of the
:class:`~agentropy.configs.schema.AlgorithmConfig`, and the :class:`AdvantageInputs` the learner prepared
(scores, step rewards, old-policy entropies and values). The learner looks the estimator up by
``cfg.advantage`` and never branches on its name; an estimator that needs old-policy entropies or
values says so in its ``needs`` attribute, and the learner's old-policy pass computes them.

Registered: ``gae`` (PPO), ``grpo``, ``gigpo``, ``empg`` (over grpo or gigpo).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from agentropy.algorithms import functional as fn
from agentropy.algorithms.data import TokenBatch
from agentropy.algorithms.registry import ADVANTAGES
from torch import Tensor

if TYPE_CHECKING:
    from agentropy.configs.schema import AlgorithmConfig, GroupConfig, RewardConfig

__all__ = [
    "AdvantageInputs",
    "AdvantageOutput",
    "RewardSignals",
    "reward_signals",
    "episode_advantages",
]


@dataclass(frozen=True)
class RewardSignals:
    """What the advantages see, per row (docs/algorithms.md sections 0.5 and 7.2).

    Attributes:
        scores: (B,) the row's score: outcome + tool-call bonus - invalid-action penalty.
        step_rewards: (B,) the per-step outcome reward (GiGPO's r_t), without the penalty.
        penalties: (B,) the row's invalid-action penalty (0 for a valid action).
        tool_weight: the tool-call curriculum weight mu_t at this step.
    """

    scores: Tensor
    step_rewards: Tensor
    penalties: Tensor
    tool_weight: float


def reward_signals(batch: TokenBatch, cfg: RewardConfig, step: int) -> RewardSignals:
    """Turn env rewards into the scores of ``cfg``.

    ``success``: the outcome is ``scale`` x won, paid at the episode's last step (verl-agent:
    10 x won). ``return``: ``scale`` x the env's per-step rewards. SPEAR's tool-call bonus
    mu_t min(cap, coef L) (L = the episode's number of actions) is added to every row's score.

    Args:
        batch: the rows (uses success, episode_return, rewards, turn_index, num_turns,
            action_is_valid, and format_is_valid for ``penalize: format`` when it is set).
        cfg: the reward settings.
        step: the global step (for the tool-call curriculum).
    """
    dtype = batch.rewards.dtype
    if cfg.outcome == "success":
        last = (batch.turn_index == batch.num_turns - 1).to(dtype)
        step_rewards = cfg.scale * batch.success * last
        outcome = cfg.scale * batch.success
    else:
        step_rewards = cfg.scale * batch.rewards
        outcome = cfg.scale * batch.episode_return
    invalid = ~batch.action_is_valid
    if cfg.penalize == "format" and batch.format_is_valid is not None:
        invalid = ~batch.format_is_valid
    penalties = cfg.invalid_action_penalty * invalid.to(dtype)
    weight = 1.0 if cfg.tool_call_schedule == "constant" else fn.cosine_fall(step, cfg.tool_call_steps)
    bonus = weight * fn.tool_call_reward(batch.num_turns, coef=cfg.tool_call_coef, cap=cfg.tool_call_cap)
    scores = outcome + bonus.to(dtype) - penalties
    return RewardSignals(scores=scores, step_rewards=step_rewards, penalties=penalties,
                         tool_weight=weight if cfg.tool_call_coef > 0 else 0.0)


@dataclass(frozen=True)
class AdvantageInputs:
    """What the learner prepared for the estimators.

    Attributes:
        signals: the rows' scores, step rewards and penalties.
        old_entropy: (B, T) token entropies under the old policy, 0 outside ``loss_mask``;
            set when the estimator ``needs`` ``"entropy"``.
        values: (B, T) value predictions of the old critic; set when it ``needs`` ``"values"``.
    """

    signals: RewardSignals
    old_entropy: Tensor | None = None
    values: Tensor | None = None


@dataclass(frozen=True)
class AdvantageOutput:
    """An estimator's result.

    Attributes:
        advantages: (B, T) per-token advantages, 0 outside ``loss_mask``.
        returns: (B, T) value targets (GAE), else None.
        row_advantages: (B,) the advantage of each row when it is one number per row (GRPO,
            GiGPO, EMPG), else None.
    """

    advantages: Tensor
    returns: Tensor | None = None
    row_advantages: Tensor | None = None


AdvantageFn = Callable[[TokenBatch, "AlgorithmConfig", AdvantageInputs], AdvantageOutput]


def _needs(*what: str) -> Callable[[AdvantageFn], AdvantageFn]:
    def mark(estimator: AdvantageFn) -> AdvantageFn:
        estimator.needs = frozenset(what)  # type: ignore[attr-defined]
        return estimator

    return mark


def _broadcast(row_adv: Tensor, batch: TokenBatch) -> AdvantageOutput:
    tokens = row_adv[:, None] * batch.loss_mask.to(row_adv.dtype)
    return AdvantageOutput(advantages=tokens, row_advantages=row_adv)


def episode_advantages(scores: Tensor, batch: TokenBatch, group: GroupConfig) -> Tensor:
    """GRPO's advantage of each row, with statistics over rows or over trajectories.

    Over rows (verl-agent's default, ``compute_mean_std_cross_all_data``): every row of a group
    is one sample, so long trajectories weigh more. Over trajectories (the paper's formula):
    one score per trajectory, the mean of its rows' scores; each row is then normalised by its
    group's trajectory statistics. A group with one entry gets mean 0 and std 1.

    Args:
        scores: (B,) row scores.
        batch: gives group_index and traj_index.
        group: the statistics settings.

    Returns:
        (B,) advantages.
    """
    if group.over_rows:
        return fn.grpo_advantages(scores, batch.group_index, norm_by_std=group.norm_by_std,
                                 eps=group.eps)
    traj, traj_score, traj_group = fn.trajectory_scores(scores, batch.traj_index, batch.group_index)
    mean, std = (x[traj] for x in fn.grpo_baseline(traj_score, traj_group))
    return fn.normalise(scores, mean, std, norm_by_std=group.norm_by_std, eps=group.eps)


@ADVANTAGES.register("grpo")
def grpo(batch: TokenBatch, cfg: AlgorithmConfig, inputs: AdvantageInputs) -> AdvantageOutput:
    """GRPO, verl-agent's multi-turn version (docs/algorithms.md section 2): the row's group-relative score,
    broadcast over its completion tokens."""
    return _broadcast(episode_advantages(inputs.signals.scores, batch, cfg.group), batch)


def _gigpo_rows(batch: TokenBatch, cfg: AlgorithmConfig, inputs: AdvantageInputs) -> Tensor:
    signals = inputs.signals
    episode = episode_advantages(signals.scores, batch, cfg.group)
    returns = fn.trajectory_returns(signals.step_rewards, batch.traj_index, batch.turn_index,
                                   cfg.gigpo.gamma) - signals.penalties
    step = fn.gigpo_step_advantages(returns, batch.anchor_index, norm_by_std=cfg.gigpo.step_norm_by_std,
                                   eps=cfg.group.eps)
    return episode + cfg.gigpo.step_weight * step


@ADVANTAGES.register("gigpo")
def gigpo(batch: TokenBatch, cfg: AlgorithmConfig, inputs: AdvantageInputs) -> AdvantageOutput:
    """GiGPO (arXiv 2505.10978; docs/algorithms.md section 3): A = A_episode + omega A_step.

    A_episode is GRPO's advantage; A_step compares the discounted step return (gamma 0.95,
    minus the row's invalid-action penalty after discounting) with the other rows of the same
    anchor state (same group, same raw observation: ``batch.anchor_index``). Similarity merging
    of anchors is not implemented (exact observation match, the default).
    """
    return _broadcast(_gigpo_rows(batch, cfg, inputs), batch)


@ADVANTAGES.register("empg")
@_needs("entropy")
def empg(batch: TokenBatch, cfg: AlgorithmConfig, inputs: AdvantageInputs) -> AdvantageOutput:
    """EMPG over GRPO or GiGPO (arXiv 2509.09265; docs/algorithms.md section 6).

    The step entropy is the mean token entropy of the row's completion under the old policy;
    g and the future-clarity bonus f are computed per step-row, step t + 1 is keyed by
    (trajectory, turn index), and the modulated advantages are made zero-mean over the batch
    (:func:`agentropy.algorithms.functional.empg_advantages`). Over GiGPO, the modulated advantage is
    the combined A_episode + omega A_step of the row.
    """
    if inputs.old_entropy is None:
        raise ValueError("empg needs the old policy's token entropies (inputs.old_entropy)")
    inner = ADVANTAGES.get(cfg.empg.over)(batch, cfg, inputs)
    if inner.row_advantages is None:
        raise ValueError(f"empg needs a per-row trajectory advantage; {cfg.empg.over!r} has none")
    mask = batch.loss_mask.to(inputs.old_entropy.dtype)
    step_entropy = (inputs.old_entropy * mask).sum(-1) / mask.sum(-1).clamp_min(1.0)
    rows = fn.empg_advantages(inner.row_advantages, step_entropy.to(inner.row_advantages.dtype),
                             batch.traj_index, batch.turn_index, k=cfg.empg.k,
                             k_next=cfg.empg.k_next, zeta=cfg.empg.zeta, eps=cfg.empg.eps)
    return _broadcast(rows, batch)


@ADVANTAGES.register("gae")
@_needs("values")
def gae(batch: TokenBatch, cfg: AlgorithmConfig, inputs: AdvantageInputs) -> AdvantageOutput:
    """PPO's GAE within each row (docs/algorithms.md section 1).

    The row's score is the reward at its last completion token; with gamma = lambda = 1 this
    is A_t = R - V_t. There is no bootstrapping across turns: the critic learns V(prompt of
    step t, partial response) ~ E[score]. Advantages are whitened over the batch when
    ``cfg.ppo.whiten``; returns (the value targets) are computed before whitening.
    """
    if inputs.values is None:
        raise ValueError("gae needs the old critic's values (inputs.values)")
    values = inputs.values.to(inputs.signals.scores.dtype)
    rewards = torch.zeros_like(values)
    last = (batch.prompt_length + batch.completion_length - 1).clamp_min(0)
    has = batch.completion_length > 0
    rows = torch.arange(batch.batch_size, device=values.device)
    rewards[rows[has], last[has]] = inputs.signals.scores[has]
    adv, returns = fn.gae_advantages(rewards, values, batch.loss_mask, gamma=cfg.ppo.gamma,
                                    lam=cfg.ppo.lam)
    if cfg.ppo.whiten:
        adv = fn.masked_whiten(adv, batch.loss_mask)
    return AdvantageOutput(advantages=adv, returns=returns)

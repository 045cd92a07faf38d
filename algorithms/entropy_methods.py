"""Entropy interventions from the 2025 LLM-RL literature, as pure tensor functions.

This is the math tier only: each function takes explicit tensors (and explicit state where a
method keeps any) and returns tensors or a new state; nothing is registered here. Conventions
follow :mod:`agentropy.algorithms.functional`: N rows, T token positions, V vocabulary entries,
``mask`` (N, T) marks the response tokens of a row (bool or 0/1 float), no device or dtype
assumption. Statistics that the released codes take "per micro-batch" are taken over whatever
tensors are passed in, so the caller chooses the scope (micro-batch, mini-batch or batch).

Methods and the part each becomes once wired into the learner:

- SIREN, Selective entropy regularisation (arXiv 2509.25133): top-p entropy, peak-entropy token
  mask, self-anchored squared penalty -> extra loss term.
- STEER, entropy-change-aware token weights (arXiv 2510.10150) -> per-token loss weight.
- AEPO-T (prefix ``aepo_t_``), *Arbitrary* Entropy Policy Optimization (arXiv 2510.08141):
  REINFORCE rows sampled at a switched temperature -> sampling temperature + advantage override.
- AEPO-A (prefix ``aepo_a_``), *Agentic* Entropy-Balanced Policy Optimization (arXiv 2510.14545):
  entropy-scaled advantage and stop-gradient high-entropy clipping -> policy loss; the branching
  rule of its rollout -> rollout branching.
- Lp-Reg, low-probability regularisation (arXiv 2510.03222) -> extra loss term + clip range.
- CANON, conditional advantage estimation (arXiv 2509.23962) -> advantage.
- HAPO, heterogeneous adaptive policy optimisation (arXiv 2509.16591) -> sampling temperature,
  advantage, per-token advantage scale and clip ranges.
- ARES's entropy shaping (prefix ``ares_``), the "AEPO" inside ARES (arXiv 2510.08457) -> reward
  shaping + per-difficulty KL coefficient.

Three papers call their method AEPO; the prefixes ``aepo_t_`` (temperature), ``aepo_a_``
(agentic) and ``ares_`` keep them apart everywhere in this package.

Where a public implementation departs from its paper's stated intent, the intent is the default
and a keyword flag reproduces the released behaviour; each such function says so.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from agentropy.agents.temperature import HapoEntropyStats, hapo_normalized_entropy, hapo_temperature
from agentropy.algorithms.functional import (
    grpo_advantages,
    kl_k3,
    masked_mean,
    policy_ratio,
)
from torch import Tensor

__all__ = [
    # shared
    "behaviour_logprobs",
    "response_mean",
    "response_length",
    # SIREN
    "siren_top_p_entropy",
    "siren_peak_mask",
    "siren_selected_entropy",
    "siren_entropy_loss",
    # STEER
    "steer_omega",
    "steer_token_weights",
    # AEPO-T
    "aepo_t_entropy_estimate",
    "aepo_t_temperature",
    "AepoTState",
    "aepo_t_reinforce_rows",
    # AEPO-A
    "aepo_a_normalized_entropy",
    "aepo_a_advantages",
    "aepo_a_policy_loss",
    "aepo_a_step_entropy",
    "aepo_a_token_step_entropy",
    "aepo_a_global_samples",
    "aepo_a_branch_probability",
    "aepo_a_branch_count",
    # Lp-Reg
    "lp_reg_proxy_logprobs",
    "lp_reg_select",
    "lp_reg_policy_loss",
    # CANON
    "canon_advantages",
    # HAPO
    "HapoEntropyStats",
    "hapo_entropy_stats",
    "hapo_normalized_entropy",
    "hapo_temperature",
    "hapo_token_group_advantages",
    "hapo_clip_ranges",
    "hapo_redistribute",
    "hapo_policy_loss",
    # ARES
    "ares_topk_entropy",
    "ares_window_entropy",
    "ares_hwe_count",
    "ares_difficulty_bucket",
    "ares_entropy_reward",
    "ares_alpha_update",
    "ares_threshold_update",
    "AresKLState",
    "ares_kl_update",
]


def _f(mask: Tensor, like: Tensor) -> Tensor:
    return mask.to(like.dtype)


# --------------------------------------------------------------------------------------------
# Shared: behaviour log-probabilities at the sampling temperature
# --------------------------------------------------------------------------------------------


def behaviour_logprobs(
    logits: Tensor, tokens: Tensor, temperature: Tensor | float = 1.0, *, at_unit_temperature: bool = False
) -> Tensor:
    """Log-probability of the sampled tokens under the distribution they were sampled from.

    AEPO-T and HAPO sample some tokens at a temperature T != 1, while the released codes compute
    ``old_log_probs`` at T = 1, so the PPO ratio is taken against a policy that did not generate
    the data. By default this returns log softmax(z / T)[a], the true behaviour probability (T may
    be per token, e.g. HAPO's T_t); ``at_unit_temperature=True`` returns log softmax(z)[a], the
    released behaviour. AEPO-T's paper treats the tempered rows as a regulariser and intends the
    T = 1 denominator, so its config selects the flag; HAPO's does not (uncorrected in its code).

    Args:
        logits: (..., V) unscaled logits of the behaviour policy.
        tokens: (...) long, sampled ids.
        temperature: scalar or (...) per-token temperature (> 0).
        at_unit_temperature: ignore ``temperature`` (released behaviour).

    Returns:
        (...) log-probabilities in ``logits``' dtype.
    """
    if not at_unit_temperature:
        t = torch.as_tensor(temperature, dtype=logits.dtype, device=logits.device)
        logits = logits / (t.unsqueeze(-1) if t.dim() > 0 else t)
    return torch.log_softmax(logits, dim=-1).gather(-1, tokens.unsqueeze(-1)).squeeze(-1)


def _unit_sum(per_row: Tensor, unit_ids: Tensor | None) -> Tensor:
    if unit_ids is None:
        return per_row
    _, dense = torch.unique(unit_ids, return_inverse=True)
    total = torch.zeros(int(dense.max()) + 1, dtype=per_row.dtype, device=per_row.device)
    return total.index_add_(0, dense, per_row)[dense]


def response_mean(x: Tensor, mask: Tensor, unit_ids: Tensor | None = None) -> Tensor:
    """Token mean of ``x`` per response, where a response is a row or, given ``unit_ids`` (e.g.
    trajectory ids), all rows sharing an id (every turn of an episode). CANON's metric and ARES's
    per-trajectory statistics use the trajectory unit in multi-turn runs.

    Args: x, mask (N, T); unit_ids (N,) or None. Returns (N,), each row carrying its unit's value.
    """
    m = _f(mask, x)
    return _unit_sum((x * m).sum(-1), unit_ids) / _unit_sum(m.sum(-1), unit_ids).clamp_min(1.0)


def response_length(mask: Tensor, unit_ids: Tensor | None = None) -> Tensor:
    """Response tokens per row, or per unit (summed over its rows) given ``unit_ids``. Returns (N,)."""
    return _unit_sum(mask.to(torch.float64).sum(-1), unit_ids)


# --------------------------------------------------------------------------------------------
# SIREN: Rethinking Entropy Regularization in Large Reasoning Models (arXiv 2509.25133)
# --------------------------------------------------------------------------------------------


def siren_top_p_entropy(
    logits: Tensor, *, top_p: float = 0.8, top_k: int | None = 10_000, include_crossing_token: bool = True
) -> Tensor:
    """Entropy of the renormalised nucleus of each next-token distribution (SIREN's top-p mask).

    Tokens are sorted by probability; the nucleus is the shortest prefix whose mass reaches
    ``top_p`` (the token that crosses ``top_p`` is included: the standard nucleus, our default).
    ``include_crossing_token=False`` reproduces the released code, which keeps only the tokens
    *before* the crossing one, so a distribution with p_max >= top_p gets an empty set and entropy
    0. The membership is not differentiable; gradient flows through the renormalised probabilities.
    Paper equations were not read (only code and abstract): the exact paper form is UNVERIFIED.

    Args:
        logits: (..., V) current-policy logits (already temperature-scaled if any).
        top_p: nucleus mass in (0, 1].
        top_k: restrict to the K most likely tokens first (memory); None for the full vocabulary.
        include_crossing_token: see above.

    Returns:
        (...) H^p in nats.
    """
    probs = torch.softmax(logits, dim=-1)
    k = probs.shape[-1] if top_k is None else min(int(top_k), probs.shape[-1])
    p_sorted, _ = torch.topk(probs, k, dim=-1, sorted=True)
    cum = p_sorted.cumsum(dim=-1)
    before = cum - p_sorted  # mass strictly before each token
    keep = (before < top_p) if include_crossing_token else (cum < top_p)
    kept = p_sorted * keep.to(p_sorted.dtype)
    q = kept / kept.sum(dim=-1, keepdim=True).clamp_min(1e-12)
    logq = torch.where(q > 0, torch.log(q.clamp_min(1e-30)), torch.zeros_like(q))
    return -(q * logq).sum(dim=-1)


def siren_peak_mask(entropy: Tensor, mask: Tensor, *, quantile: float = 0.8) -> Tensor:
    """SIREN's peak-entropy mask: the tokens of each row above the row's entropy quantile.

    tau_i = quantile_rho of {H_it : m_it = 1} (linear interpolation); k_it = [H_it > tau_i] m_it.
    Only response tokens enter the quantile, so padding changes nothing.

    Args:
        entropy: (N, T) per-token entropy (SIREN uses the top-p entropy).
        mask: (N, T) response mask.
        quantile: rho in [0, 1]; 0.8 keeps the top 20% of each row.

    Returns:
        (N, T) bool.
    """
    valid = mask.bool()
    e = entropy.detach().to(torch.float64)
    nan = torch.full_like(e, float("nan"))
    tau = torch.nanquantile(torch.where(valid, e, nan), quantile, dim=1, keepdim=True)
    return valid & (e > tau)


def siren_selected_entropy(entropy: Tensor, peak_mask: Tensor, mask: Tensor) -> Tensor:
    """Mean over rows of the mean selected entropy of each row (``seq-mean-token-mean``).

    H_sel = (1 / N_resp) sum_i sum_t k_it H_it / sum_t k_it, where N_resp counts rows with at least
    one response token (so all-padding rows change nothing) and a row with no selected token adds 0.

    Args:
        entropy: (N, T); peak_mask: (N, T) bool; mask: (N, T).

    Returns:
        Scalar tensor.
    """
    k = peak_mask.to(entropy.dtype)
    per_row = (entropy * k).sum(dim=1) / k.sum(dim=1).clamp_min(1.0)
    rows = (mask.to(entropy.dtype).sum(dim=1) > 0).to(entropy.dtype)
    return (per_row * rows).sum() / rows.sum().clamp_min(1.0)


def siren_entropy_loss(
    logits: Tensor,
    mask: Tensor,
    anchor: float | Tensor | None,
    *,
    coef: float = 0.005,
    top_p: float = 0.8,
    top_k: int | None = 10_000,
    quantile: float = 0.8,
    include_crossing_token: bool = True,
) -> tuple[Tensor, Tensor]:
    """SIREN's self-anchored regulariser coef * (H_sel - H_anchor)^2 (Jiang et al. 2025, arXiv 2509.25133).

    H_sel is :func:`siren_selected_entropy` of :func:`siren_top_p_entropy` under
    :func:`siren_peak_mask`. The anchor is H_sel measured once on the first training batch (old
    policy) and then fixed: pass ``anchor=None`` on that batch to get a zero loss and read the
    anchor from the returned H_sel. Two-sided: below the anchor the gradient raises the entropy of
    the selected tokens, above it lowers it. Paper equations UNVERIFIED (structure from the
    abstract, constants from the released code).

    Args:
        logits: (N, T, V) current-policy logits at response positions.
        mask: (N, T) response mask.
        anchor: fixed anchor, or None (returns loss 0).

    Returns:
        ``(loss, h_sel)``, scalars; ``h_sel`` carries gradient.
    """
    hp = siren_top_p_entropy(logits, top_p=top_p, top_k=top_k, include_crossing_token=include_crossing_token)
    hp = hp * _f(mask, hp)
    sel = siren_peak_mask(hp, mask, quantile=quantile)
    h_sel = siren_selected_entropy(hp, sel, mask)
    if anchor is None:
        return h_sel.new_zeros(()), h_sel
    return coef * (h_sel - torch.as_tensor(anchor, dtype=h_sel.dtype)) ** 2, h_sel


# --------------------------------------------------------------------------------------------
# STEER: Rethinking Entropy Interventions in RLVR: An Entropy Change Perspective (arXiv 2510.10150)
# --------------------------------------------------------------------------------------------


def steer_omega(adv: Tensor, old_entropy: Tensor, old_logp: Tensor, logp: Tensor) -> Tensor:
    """First-order estimate of the entropy change one update on each token causes.

    Omega_t = (A_t / pi_old(a_t)) pi(a_t) (1 - pi(a_t)) (log pi(a_t) + H_t), pi from the current
    policy (no gradient) clamped to [1e-8, 1 - 1e-8], pi_old clamped to [1e-8, 1], H the old
    policy's full entropy; non-finite values become 0. Form from the released code; the paper's
    derivation was read only in a secondary summary.

    Args:
        adv, old_entropy, old_logp, logp: (N, T).

    Returns:
        (N, T), no gradient.
    """
    with torch.no_grad():
        pi = logp.detach().exp().clamp(1e-8, 1.0 - 1e-8)
        pi_old = old_logp.detach().exp().clamp(1e-8, 1.0)
        omega = adv / pi_old * pi * (1.0 - pi) * (torch.log(pi) + old_entropy)
        return torch.where(torch.isfinite(omega), omega, torch.zeros_like(omega))


def steer_token_weights(
    adv: Tensor,
    old_entropy: Tensor,
    old_logp: Tensor,
    logp: Tensor,
    mask: Tensor,
    *,
    weight_min: float = 0.8,
    weight_max: float = 1.0,
    mapping: str = "exp",
    omega_floor: float = 0.02,
) -> Tensor:
    """STEER's per-token loss weights (Zhang et al. 2025, arXiv 2510.10150).

    ``mapping="exp"`` (the paper's): lambda_t = clip(exp(-k |Omega_t|), weight_min, 1) with
    k = -ln(weight_min) / max(max |Omega|, omega_floor) over the valid tokens passed in, so the
    token that would move entropy most gets ``weight_min``. ``mapping="linear"`` (a code variant):
    lambda_t = weight_max - (|Omega_t| - min) (weight_max - weight_min) / (max - min), clipped, and
    the midpoint when all |Omega| are equal. Weights multiply the per-token PPO loss; aggregate
    with the unweighted mask. Neutral: ``weight_min = weight_max = 1`` gives all-ones weights.

    Args:
        adv, old_entropy, old_logp, logp, mask: (N, T).

    Returns:
        (N, T) weights, no gradient; 1 outside the mask.
    """
    omega = steer_omega(adv, old_entropy, old_logp, logp).abs()
    valid = mask.bool()
    ones = torch.ones_like(omega)
    if not bool(valid.any()):
        return ones
    vals = omega[valid]
    if mapping == "exp":
        k = -math.log(weight_min) / vals.max().clamp_min(omega_floor)
        w = torch.exp(-k * omega).clamp(weight_min, 1.0)
    elif mapping == "linear":
        lo, hi = vals.min(), vals.max()
        if bool(hi > lo):
            w = weight_max - (omega - lo) * (weight_max - weight_min) / (hi - lo)
            w = w.clamp(weight_min, weight_max)
        else:
            w = torch.full_like(omega, (weight_min + weight_max) / 2)
    else:
        raise ValueError(f"steer mapping must be 'exp' or 'linear', got {mapping!r}")
    return torch.where(valid, w, ones)


# --------------------------------------------------------------------------------------------
# AEPO-T: Arbitrary Entropy Policy Optimization (arXiv 2510.08141)
# --------------------------------------------------------------------------------------------


def aepo_t_entropy_estimate(logp: Tensor, mask: Tensor) -> Tensor:
    """Monte-Carlo token entropy of the training batch: -masked mean of log pi(a_t).

    AEPO-T's released code steers on this (its ``actor/entropy_loss``), not the full-vocabulary
    entropy. Args: logp, mask (N, T). Returns a scalar.
    """
    return -masked_mean(logp.detach(), mask)


def aepo_t_temperature(entropy: float, target: float, *, t_high: float = 1.2, t_low: float = 0.8) -> float:
    """Temperature of AEPO-T's extra rollout: T_high if the entropy is <= target, else T_low."""
    return t_high if entropy <= target else t_low


@dataclass(frozen=True)
class AepoTState:
    """AEPO-T's state across steps: the entropy estimate of the previous update (starts at 0,
    so the first step samples hot)."""

    entropy: float = 0.0


def aepo_t_reinforce_rows(
    adv: Tensor,
    *,
    below_target: bool,
    threshold: float = 0.05,
    max_rows: int = 60,
    halve_above_target: bool = True,
) -> Tensor:
    """Which tempered rows become REINFORCE rows (advantage 1) in AEPO-T (Wang et al. 2025, arXiv 2510.08141).

    Rows whose group advantage exceeds ``threshold`` (above their group mean, i.e. rewarded) are
    candidates; the first min(max_rows, #candidates) are kept when the entropy is at or below the
    target, half of that (floor) above it. The learner then gives the kept rows A = 1 on every
    token and puts them in place of as many on-policy rows. The regulariser's weight alpha of the
    paper is implicit (the share of tokens from these rows). Paper body not read: selection rule
    and constants are from the released code.

    Args:
        adv: (M,) per-row (first-token) advantage of the tempered rows.
        below_target: last entropy estimate <= target.

    Returns:
        (M,) bool, the kept rows.
    """
    cand = adv > threshold
    n = min(int(max_rows), int(cand.sum()))
    if not below_target and halve_above_target:
        n //= 2
    order = torch.cumsum(cand.long(), dim=0)
    return cand & (order <= n)


# --------------------------------------------------------------------------------------------
# AEPO-A: Agentic Entropy-Balanced Policy Optimization (arXiv 2510.14545)
# --------------------------------------------------------------------------------------------


def aepo_a_normalized_entropy(entropy: Tensor, mask: Tensor) -> Tensor:
    """z-score of token entropy over the valid tokens passed in (unbiased std; std 0 -> 1); 0 off-mask.

    Args: entropy, mask (N, T). Returns (N, T), no gradient.
    """
    e = entropy.detach()
    m = _f(mask, e)
    n = m.sum()
    mean = (e * m).sum() / n.clamp_min(1.0)
    var = (((e - mean) * m) ** 2).sum() / (n - 1).clamp_min(1.0)
    std = var.sqrt()
    std = torch.where(std > 0, std, torch.ones_like(std))
    return (e - mean) / std * m


def aepo_a_advantages(adv: Tensor, h_norm: Tensor, *, alpha: float = 0.2) -> Tensor:
    """Entropy-aware advantage A_t (1 + alpha sg(H^_t)). Form from a third-party reproduction; UNVERIFIED."""
    return adv * (1.0 + alpha * h_norm.detach())


def aepo_a_policy_loss(
    logp: Tensor,
    old_logp: Tensor,
    adv: Tensor,
    entropy: Tensor,
    mask: Tensor,
    *,
    alpha: float = 0.2,
    clip_low: float = 0.2,
    clip_high: float = 0.28,
    dual_clip_c: float | None = 3.0,
    high_entropy_stop_gradient: bool = True,
) -> Tensor:
    """AEPO-A's entropy-balanced policy loss per token (Dong et al. 2025, arXiv 2510.14545).

    Advantages are scaled by :func:`aepo_a_advantages`. For tokens with positive normalised
    entropy the upper clip bound is (1 + eps_h) r / sg(r): its value is 1 + eps_h, but its
    gradient is (1 + eps_h) grad log pi, so a clipped high-entropy token keeps a rescaled gradient
    instead of none. Other tokens clip as usual; dual clip caps A < 0 tokens at -A c. The paper's
    equations were read only in secondary summaries and the constants come from a third-party
    reproduction (ARLArena): UNVERIFIED. Neutral: ``alpha=0, high_entropy_stop_gradient=False``
    is :func:`agentropy.algorithms.functional.ppo_clip_loss`.

    Args:
        logp (with gradient), old_logp, adv, entropy (current forward), mask: (N, T).

    Returns:
        (N, T) per-token loss.
    """
    h_norm = aepo_a_normalized_entropy(entropy, mask)
    a = aepo_a_advantages(adv, h_norm, alpha=alpha)
    ratio = policy_ratio(logp, old_logp)
    upper = torch.full_like(ratio, 1.0 + clip_high)
    if high_entropy_stop_gradient:
        upper = torch.where(h_norm > 0, (1.0 + clip_high) * ratio / ratio.detach(), upper)
    lower = 1.0 - clip_low
    clipped = torch.where(ratio > upper, upper, torch.where(ratio < lower, ratio.new_tensor(lower), ratio))
    loss = torch.maximum(-a * ratio, -a * clipped)
    if dual_clip_c is not None:
        loss = torch.where(a < 0, torch.minimum(loss, -a * dual_clip_c), loss)
    return loss


def aepo_a_step_entropy(
    topk_logprobs: Tensor, vocab_size: int, *, n_tokens: int = 20, reduce: str = "mean"
) -> Tensor:
    """Entropy of one generation step from the sampler's top-k log-probabilities, divided by ln|V|.

    Over the first ``n_tokens`` positions, -sum_k p log p per position, then the mean over positions
    (ARLArena) or the sum (``reduce="sum"``, ARPO's released rollout, which pools all candidates).

    Args:
        topk_logprobs: (L, K) log-probabilities of the top-K candidates at each generated position.

    Returns:
        Scalar.
    """
    lp = topk_logprobs[:n_tokens]
    per_position = -(lp.exp() * lp).sum(dim=-1)
    return aepo_a_token_step_entropy(per_position, vocab_size, n_tokens=n_tokens, reduce=reduce)


def aepo_a_token_step_entropy(
    entropies: Tensor, vocab_size: int, *, n_tokens: int = 20, reduce: str = "mean"
) -> Tensor:
    """Entropy of one generation step from per-position entropies, divided by ln|V|.

    The reduction of :func:`aepo_a_step_entropy` (mean over the first ``n_tokens`` positions, or
    the sum), applied to entropies already computed per position: the sampler's full-vocabulary
    token entropies (``Generation.entropies``) where the top-k log-probabilities the paper's
    rollout reads are not returned. Full entropies are larger than top-k ones (the tail counts),
    so the values are not interchangeable. No positions give 0.

    Args:
        entropies: (L,) nats, one per generated position.

    Returns:
        Scalar.
    """
    h = entropies[:n_tokens]
    if h.numel() == 0:
        return h.new_zeros(())
    return (h.mean() if reduce == "mean" else h.sum()) / math.log(vocab_size)


def aepo_a_global_samples(k: int, root_entropy: float, tool_entropy_mean: float, *, beta: float = 0.5) -> int:
    """Entropy pre-monitoring: how many of the k rollouts are global samples (the rest are branch slots).

    m = k sigma(beta (H_root - mean H_tool)) in the paper's summary; the reproduction rounds it as
    clip(floor(m) + 1, 1, k), used here. UNVERIFIED.
    """
    m = k / (1.0 + math.exp(-beta * (root_entropy - tool_entropy_mean)))
    return max(1, min(k, int(math.floor(m)) + 1))


def aepo_a_branch_probability(
    u: float | Tensor,
    delta_entropy: float | Tensor,
    consecutive: int | Tensor,
    *,
    weight: float = 0.5,
    penalty: float = 0.05,
) -> Tensor:
    """Branch score at a tool-call step: clip((u + w dH) max(0, 1 - P l), 0, 1).

    u ~ Uniform(0, 1), dH = step entropy minus the rollout's first-step entropy, l = consecutive
    branching steps already taken on this path. Penalty form from a reproduction; UNVERIFIED.
    """
    u = torch.as_tensor(u, dtype=torch.float64)
    d = torch.as_tensor(delta_entropy, dtype=torch.float64)
    pen = (1.0 - penalty * torch.as_tensor(consecutive, dtype=torch.float64)).clamp_min(0.0)
    return ((u + weight * d) * pen).clamp(0.0, 1.0)


def aepo_a_branch_count(
    u: float | Tensor,
    delta_entropy: float | Tensor,
    consecutive: int | Tensor,
    budget_left: int | Tensor,
    *,
    weight: float = 0.5,
    penalty: float = 0.05,
    threshold: float = 0.5,
    beam_size: int = 2,
) -> Tensor:
    """How many branches this rollout forks at this step: beam_size - 1 (bounded by the remaining
    branch budget) when :func:`aepo_a_branch_probability` >= threshold, else 0. Elementwise.

    Returns: long tensor of the broadcast shape.
    """
    p = aepo_a_branch_probability(u, delta_entropy, consecutive, weight=weight, penalty=penalty)
    budget = torch.as_tensor(budget_left, dtype=torch.long).clamp_min(0)
    n = torch.minimum(torch.full_like(budget, beam_size - 1), budget)
    return torch.where(p >= threshold, n, torch.zeros_like(n))


# --------------------------------------------------------------------------------------------
# Lp-Reg: Low-probability Tokens Sustain Exploration in RLVR (arXiv 2510.03222)
# --------------------------------------------------------------------------------------------


def lp_reg_proxy_logprobs(
    logits: Tensor, tokens: Tensor, *, kappa: float = 0.02, mode: str = "relative", soft: bool = False
) -> Tensor:
    """log pi_proxy(a_t): the policy with tokens under a min-p threshold removed, renormalised.

    tau = kappa max_v p_v (``mode="relative"``, min-p) or tau = kappa (``"fixed"``); tokens with
    p_v < tau get logit -1e4 (``soft=True``: the row's minimum logit instead) before the softmax.
    Computed once per batch from the old policy at T = 1.

    Args:
        logits: (..., V); tokens: (...) long.

    Returns:
        (...) log-probabilities; about -1e4 for a filtered token.
    """
    probs = torch.softmax(logits, dim=-1)
    if mode == "relative":
        tau = kappa * probs.amax(dim=-1, keepdim=True)
    elif mode == "fixed":
        tau = torch.full_like(probs[..., :1], kappa)
    else:
        raise ValueError(f"lp_reg mode must be 'relative' or 'fixed', got {mode!r}")
    fill = logits.amin(dim=-1, keepdim=True).expand_as(logits) if soft else torch.full_like(logits, -1e4)
    z = torch.where(probs >= tau, logits, fill)
    return torch.log_softmax(z, dim=-1).gather(-1, tokens.unsqueeze(-1)).squeeze(-1)


def _lowest_k(values: Tensor, eligible: Tensor, k: int) -> Tensor:
    out = torch.zeros_like(eligible)
    if k <= 0:
        return out
    idx = torch.nonzero(eligible.reshape(-1)).squeeze(-1)
    k = min(k, idx.numel())
    if k == 0:
        return out
    order = torch.argsort(values.reshape(-1)[idx], stable=True)[:k]
    out.view(-1)[idx[order]] = True
    return out


def lp_reg_select(
    logp: Tensor,
    proxy_logp: Tensor,
    adv: Tensor,
    mask: Tensor,
    *,
    neg_fraction: float = 0.01,
    pos_fraction: float = 0.0,
    released_gate: bool = False,
) -> Tensor:
    """Tokens Lp-Reg protects: the lowest-probability ones that the proxy would raise.

    Among valid tokens with A < 0, take the k = floor(rho N_neg) with the lowest current log pi,
    then keep those with log pi < log pi_proxy (filtered noise never qualifies); likewise with
    ``pos_fraction`` for A > 0. Default: k = max(1, floor(rho N)) whenever rho > 0 and N > 0, so a
    small micro-batch still gets its lowest token regularised (the paper's intent). The released
    code applies the term only when floor(rho N) > 1, i.e. not at all under 200 negative tokens at
    rho = 1%; ``released_gate=True`` reproduces that.

    Args:
        logp, proxy_logp, adv, mask: (N, T).

    Returns:
        (N, T) bool.
    """
    valid = mask.bool()
    lp = logp.detach()
    out = torch.zeros_like(valid)
    for frac, side in ((neg_fraction, adv < 0), (pos_fraction, adv > 0)):
        eligible = valid & side
        n = int(eligible.sum())
        if frac <= 0 or n == 0:
            continue
        k = int(math.floor(frac * n))
        if released_gate:
            if k <= 1:
                continue
        else:
            k = max(1, k)
        out |= _lowest_k(lp, eligible, k)
    return out & (lp < proxy_logp)


def lp_reg_policy_loss(
    logp: Tensor,
    old_logp: Tensor,
    proxy_logp: Tensor,
    adv: Tensor,
    mask: Tensor,
    *,
    neg_fraction: float = 0.01,
    pos_fraction: float = 0.0,
    beta: float = 1.0,
    clip_low: float = 1.0,
    clip_high: float = 9.0,
    released_gate: bool = False,
) -> Tensor:
    """Lp-Reg's per-token loss (Huang et al. 2025, arXiv 2510.03222).

    Selected tokens (:func:`lp_reg_select`): -A r + beta k3(pi || pi_proxy), unclipped; the k3
    term's gradient raises a protected token's probability towards the proxy. Other tokens: the
    PPO clip surrogate without dual clip. Aggregate with a token mean. Neutral: both fractions 0
    gives the plain clip surrogate.

    Returns:
        (N, T) per-token loss.
    """
    ratio = policy_ratio(logp, old_logp)
    plain = torch.maximum(-adv * ratio, -adv * ratio.clamp(1.0 - clip_low, 1.0 + clip_high))
    sel = lp_reg_select(logp, proxy_logp, adv, mask, neg_fraction=neg_fraction, pos_fraction=pos_fraction,
                        released_gate=released_gate)
    if not bool(sel.any()):
        return plain
    reg = -adv * ratio + beta * kl_k3(logp, proxy_logp.detach())
    return torch.where(sel, reg, plain)


# --------------------------------------------------------------------------------------------
# CANON: Conditional Advantage Estimation (arXiv 2509.23962)
# --------------------------------------------------------------------------------------------


def canon_advantages(
    scores: Tensor,
    metric: Tensor,
    group_ids: Tensor,
    *,
    mu: float = 1.0,
    alpha: float = 1.0,
    normalizer: float = 1.0,
) -> Tensor:
    """CANON's conditional advantage (Chen et al. 2025, arXiv 2509.23962).

    Each group is sorted by the target metric (mean token entropy, or length); the lower floor(n/2)
    form C-, the rest C+ (ties keep input order). With the halves' mean rewards R-, R+:
    C+: A = mu (R - alpha R-) + (1 - mu) (R - R+);  C-: A = mu (alpha R - R+) + (1 - mu) (R - R-);
    divided by ``normalizer`` (the Dr.GRPO constant, e.g. the maximum response length). The mu part
    compares across metric halves, the (1 - mu) part within a half. An empty half has mean 0.
    Neutral: mu = 0.5, alpha = 1 gives R - (R- + R+) / 2, which is R - group mean (Dr.GRPO)
    for even group sizes only (odd n: the high half is one larger and the halves' means are not
    weighted by size). Alpha's placement follows the
    code; the paper's Eq. 8 was not read (UNVERIFIED for alpha != 1).

    Args:
        scores: (N,) rewards; metric: (N,) sort key; group_ids: (N,) long.

    Returns:
        (N,) advantages.
    """
    n = scores.shape[0]
    if n == 0:
        return scores.clone()
    _, dense = torch.unique(group_ids, return_inverse=True)
    order = torch.argsort(metric, stable=True)
    order = order[torch.argsort(dense[order], stable=True)]  # by group, then metric
    g = int(dense.max()) + 1
    size = torch.zeros(g, dtype=torch.long, device=scores.device).index_add_(0, dense, torch.ones_like(dense))
    start = torch.cumsum(size, 0) - size
    rank = torch.empty_like(dense)
    rank[order] = torch.arange(n, device=scores.device) - start[dense[order]]
    low = rank < (size[dense] // 2)
    lowf = low.to(scores.dtype)
    zeros = torch.zeros(g, dtype=scores.dtype, device=scores.device)
    n_low = zeros.clone().index_add_(0, dense, lowf)
    n_high = zeros.clone().index_add_(0, dense, 1.0 - lowf)
    mean_low = zeros.clone().index_add_(0, dense, scores * lowf) / n_low.clamp_min(1.0)
    mean_high = zeros.clone().index_add_(0, dense, scores * (1.0 - lowf)) / n_high.clamp_min(1.0)
    r_low, r_high = mean_low[dense], mean_high[dense]
    a_high = mu * (scores - alpha * r_low) + (1.0 - mu) * (scores - r_high)
    a_low = mu * (alpha * scores - r_high) + (1.0 - mu) * (scores - r_low)
    return torch.where(low, a_low, a_high) / normalizer


# --------------------------------------------------------------------------------------------
# HAPO: From Uniform to Heterogeneous (arXiv 2509.16591)
# --------------------------------------------------------------------------------------------
# HapoEntropyStats, hapo_normalized_entropy and hapo_temperature live in
# agentropy.agents.temperature (the sampler applies them too; agents do not import algorithms)
# and are re-exported here.


def hapo_entropy_stats(entropy: Tensor, mask: Tensor, *, pivot: float = 0.8) -> HapoEntropyStats:
    """Statistics of log-entropy over the valid tokens: c = quantile_q (nearest), s = RMS of (l - c).

    Args: entropy, mask (N, T) (or any matching shapes).
    """
    logh = torch.log(entropy.detach().clamp_min(1e-8)).to(torch.float64)
    vals = logh[mask.bool()]
    if vals.numel() == 0:
        return HapoEntropyStats(0.0, 1.0, 1.0, -1.0)
    c = torch.quantile(vals, pivot, interpolation="nearest")
    s = torch.sqrt(((vals - c) ** 2).mean()).clamp_min(1e-8)
    h = (vals - c) / s
    pos = h[h > 0]
    neg = h[h < 0]
    return HapoEntropyStats(float(c), float(s), float(pos.max()) if pos.numel() else 1.0,
                            float(neg.min()) if neg.numel() else -1.0)


def hapo_token_group_advantages(
    scores: Tensor,
    lengths: Tensor,
    group_ids: Tensor,
    *,
    norm_by_std: bool = True,
    fallback_abs: float | None = 5.0,
    eps: float = 1e-6,
) -> Tensor:
    """HAPO's token-level group average: each response's reward counted once per token.

    mu_G = sum L_i R_i / sum L_i, sigma_G the population std over those tokens, A_i = (R_i - mu_G) /
    (sigma_G + eps) (or R_i - mu_G). If some |A_i| >= ``fallback_abs`` in a group, the whole group
    uses the GRPO advantage instead. Neutral: equal lengths and ``fallback_abs=None`` with
    ``norm_by_std=False`` equals Dr.GRPO's R - mean.

    Args:
        scores: (N,) rewards; lengths: (N,) response token counts; group_ids: (N,) long.

    Returns:
        (N,) advantages.
    """
    _, dense = torch.unique(group_ids, return_inverse=True)
    g = int(dense.max()) + 1 if dense.numel() else 0
    L = lengths.to(scores.dtype)
    zeros = torch.zeros(g, dtype=scores.dtype, device=scores.device)
    tot = zeros.clone().index_add_(0, dense, L).clamp_min(1.0)
    mu = zeros.clone().index_add_(0, dense, L * scores) / tot
    var = zeros.clone().index_add_(0, dense, L * (scores - mu[dense]) ** 2) / tot
    adv = scores - mu[dense]
    if norm_by_std:
        adv = adv / (var.sqrt()[dense] + eps)
    if fallback_abs is not None:
        big = zeros.clone().index_add_(0, dense, (adv.abs() >= fallback_abs).to(scores.dtype)) > 0
        plain = grpo_advantages(scores, group_ids, norm_by_std=norm_by_std, eps=eps)
        adv = torch.where(big[dense], plain, adv)
    return adv


def hapo_clip_ranges(
    h_hat: Tensor, *, clip_low: float = 0.2, clip_high: float = 0.2, alpha: float = 1.0
) -> tuple[Tensor, Tensor]:
    """Asymmetric adaptive clip ranges: low-entropy tokens (h^ <= 0) widen the lower range to
    eps_l (1 - alpha h^), high-entropy ones the upper range to eps_h (1 + alpha h^). Neutral: alpha 0.

    Returns: ``(eps_low, eps_high)``, each shaped like ``h_hat``.
    """
    low = torch.where(h_hat <= 0, clip_low * (1.0 - alpha * h_hat), torch.full_like(h_hat, clip_low))
    high = torch.where(h_hat > 0, clip_high * (1.0 + alpha * h_hat), torch.full_like(h_hat, clip_high))
    return low, high


def hapo_redistribute(
    adv: Tensor, h_hat: Tensor, ratio: Tensor, eps_low: Tensor, eps_high: Tensor, *, beta: float = 1.0
) -> Tensor:
    """Differential advantage redistribution around the neutral band (1 - eps_l/2, 1 + eps_h/2).

    High-entropy tokens (h^ > 0) get A (1 + beta h^) once their ratio has left the band; low-entropy
    tokens get A (1 + beta h^) while the ratio is still inside it. Neutral: beta = 0.

    Returns: (N, T), no gradient.
    """
    r = ratio.detach()
    inside = (r > 1.0 - eps_low / 2) & (r < 1.0 + eps_high / 2)
    scaled = adv * (1.0 + beta * h_hat)
    return torch.where(h_hat > 0, torch.where(inside, adv, scaled), torch.where(inside, scaled, adv))


def hapo_policy_loss(
    logp: Tensor,
    old_logp: Tensor,
    adv: Tensor,
    h_hat: Tensor,
    *,
    clip_low: float = 0.2,
    clip_high: float = 0.2,
    alpha: float = 1.0,
    beta: float = 1.0,
    dual_clip_c: float | None = 10.0,
) -> Tensor:
    """HAPO's per-token loss (Liu et al. 2025, arXiv 2509.16591): dual-clip PPO with the adaptive
    ranges of :func:`hapo_clip_ranges` and the advantage of :func:`hapo_redistribute`.

    Neutral: alpha = beta = 0 gives :func:`agentropy.algorithms.functional.ppo_clip_loss`.

    Args: logp (with gradient), old_logp, adv, h_hat: (N, T). Returns (N, T).
    """
    ratio = policy_ratio(logp, old_logp)
    eps_l, eps_h = hapo_clip_ranges(h_hat.detach(), clip_low=clip_low, clip_high=clip_high, alpha=alpha)
    a = hapo_redistribute(adv, h_hat.detach(), ratio, eps_l, eps_h, beta=beta)
    clipped = torch.minimum(torch.maximum(ratio, 1.0 - eps_l), 1.0 + eps_h)
    loss = torch.maximum(-a * ratio, -a * clipped)
    if dual_clip_c is not None:
        loss = torch.where(a < 0, torch.minimum(loss, -a * dual_clip_c), loss)
    return loss


# --------------------------------------------------------------------------------------------
# ARES's entropy shaping ("AEPO" in ARES, arXiv 2510.08457); paper equations UNVERIFIED, code form
# --------------------------------------------------------------------------------------------


def ares_topk_entropy(topk_logprobs: Tensor) -> Tensor:
    """Token entropy from the top-K candidates plus one tail bucket holding the remaining mass.

    Args: topk_logprobs (..., K). Returns (...).
    """
    p = topk_logprobs.exp()
    head = -(p * topk_logprobs).sum(dim=-1)
    tail = (1.0 - p.sum(dim=-1)).clamp_min(0.0)
    return head - torch.where(tail > 0, tail * torch.log(tail.clamp_min(1e-30)), torch.zeros_like(tail))


def ares_window_entropy(entropy: Tensor, mask: Tensor, *, window: int = 4) -> Tensor:
    """Mean entropy of the ``window`` response tokens after each position (t+1 .. t+w).

    Near the end of a row the mean is over the tokens that exist; with none it is 0.

    Args: entropy, mask (N, T), responses left-aligned in the mask order. Returns (N, T).
    """
    m = _f(mask, entropy)
    e = entropy * m
    T = e.shape[-1]
    total = torch.zeros_like(e)
    count = torch.zeros_like(e)
    for k in range(1, window + 1):
        if k >= T:
            break
        total[..., : T - k] += e[..., k:]
        count[..., : T - k] += m[..., k:]
    return total / count.clamp_min(1.0) * m


def ares_hwe_count(
    window_entropy: Tensor, trigger: Tensor, mask: Tensor, threshold: float | Tensor
) -> Tensor:
    """High-window-entropy trigger count per row: positions whose top-1 token is a trigger word and
    whose window entropy is >= threshold. Args (N, T). Returns (N,) in the entropy dtype."""
    hit = trigger.bool() & mask.bool() & (window_entropy >= threshold)
    return hit.to(window_entropy.dtype).sum(dim=-1)


def ares_difficulty_bucket(pass_rate: Tensor) -> Tensor:
    """0 = easy (pass rate >= 2/3), 1 = medium (>= 1/3), 2 = hard. Elementwise, long."""
    return torch.where(pass_rate >= 2 / 3, 0, torch.where(pass_rate >= 1 / 3, 1, 2)).long()


def _huber(x: Tensor, kappa: Tensor) -> Tensor:
    return torch.where(x <= kappa, x * x / (2 * kappa), x - kappa / 2)


def ares_entropy_reward(
    count: Tensor,
    target: Tensor,
    bucket: Tensor,
    correct: Tensor,
    alpha: Tensor,
    *,
    margin_frac: tuple[float, float, float] = (0.15, 0.25, 0.35),
    huber_kappa: tuple[float, float, float] = (2.0, 3.0, 4.0),
    sigmoid_temp: tuple[float, float, float] = (2.0, 2.5, 3.0),
    cap_scale: tuple[float, float, float] = (1.0, 1.0, 1.2),
    wrong_factor: tuple[float, float, float] = (0.6, 0.8, 1.0),
) -> Tensor:
    """ARES's hierarchical entropy reward, added to the accuracy reward (Chen et al. 2025, arXiv 2510.08457).

    With delta = N - N*, margin M = max(1, f_b N*), cap C = alpha_b c_b: correct easy responses are
    penalised for too many triggers, correct medium ones for straying from the target, correct hard
    ones rewarded for exploring (sigmoid) and mildly penalised for far too few; incorrect responses
    get sigma_s((delta - M)_+) C times a bucket factor. Form from the released code only; the paper's
    equations are UNVERIFIED. Neutral: alpha = 0 gives 0.

    Args:
        count, target: (N,) trigger counts and the bucket's target; bucket: (N,) long (0/1/2);
        correct: (N,) bool; alpha: (N,) the bucket's alpha_b.

    Returns:
        (N,) entropy score.
    """
    dt = count.dtype if count.is_floating_point() else torch.float64
    n, tgt, a = count.to(dt), target.to(dt), alpha.to(dt)

    def pick(vals: tuple[float, float, float]) -> Tensor:
        return torch.tensor(vals, dtype=dt, device=n.device)[bucket]

    f, kap, s = pick(margin_frac), pick(huber_kappa), pick(sigmoid_temp)
    cs, wf = pick(cap_scale), pick(wrong_factor)
    delta = n - tgt
    M = torch.clamp(f * tgt, min=1.0)
    C = a * cs
    denom = M + kap
    easy = -torch.minimum(C, _huber((delta - M).clamp_min(0), kap) / denom * C)
    medium = -torch.minimum(C, _huber((delta.abs() - M).clamp_min(0), kap) / denom * C)
    hard = torch.where(delta >= -M, torch.sigmoid((delta + M) / s) * C,
                       -torch.minimum(C, 0.5 * _huber((-delta - M).clamp_min(0), kap) / denom * C))
    right = torch.where(bucket == 0, easy, torch.where(bucket == 1, medium, hard))
    wrong = torch.sigmoid((delta - M).clamp_min(0) / s) * C * wf
    return torch.where(correct.bool(), right, wrong)


def ares_alpha_update(
    alpha: Tensor,
    target: Tensor,
    mean_count: Tensor,
    *,
    lr: float = 0.05,
    alpha_max: float = 2.0,
    as_released: bool = False,
) -> tuple[Tensor, Tensor]:
    """Per-bucket alpha and target update; returns ``(new_alpha, new_target)``, each (3,).

    The step is alpha_b + lr Delta_b clipped to [0, alpha_max], Delta = mean N - N* for easy and
    medium, N* - mean N for hard. Default: Delta uses the target carried from the previous step
    (the state), then the target becomes round(mean N) of this batch, so alpha reacts to drift.
    The released code first sets N* = round(mean N) on the same batch and then takes Delta, which
    leaves only a rounding residual (alpha stays near its initial value); ``as_released=True``
    reproduces that.

    Args:
        alpha, target, mean_count: (3,) per bucket (easy, medium, hard); a bucket absent from the
        batch should be passed with ``mean_count`` = its target (no change).
    """
    new_target = torch.round(mean_count)
    ref = new_target if as_released else target
    sign = torch.tensor([1.0, 1.0, -1.0], dtype=alpha.dtype, device=alpha.device)
    delta = sign * (mean_count - ref)
    return (alpha + lr * delta).clamp(0.0, alpha_max), new_target


def ares_threshold_update(theta: float, batch_value: float, *, momentum: float = 0.99) -> float:
    """EMA of the HWE threshold: theta <- momentum theta + (1 - momentum) batch value."""
    return momentum * theta + (1.0 - momentum) * batch_value


@dataclass(frozen=True)
class AresKLState:
    """Per-difficulty KL controller state: EMA of the measured KL, EMA of the relative error,
    log beta per bucket (tuples of 3), and the update counter."""

    kl_ema: tuple[float, ...] = (0.0, 0.0, 0.0)
    err_ema: tuple[float, ...] = (0.0, 0.0, 0.0)
    log_beta: tuple[float, ...] = (0.0, 0.0, 0.0)
    updates: int = 0


def ares_kl_update(
    state: AresKLState,
    bucket_kl: tuple[float | None, ...],
    *,
    target: float = 0.01,
    kl_momentum: float = 0.97,
    err_momentum: float = 0.97,
    lr: float = 0.05,
    err_clip: float = 0.2,
    deadzone: float = 0.02,
    every: int = 100,
    beta_min: float = 1e-4,
    beta_max: float = 100.0,
) -> AresKLState:
    """One update of ARES's per-bucket KL coefficient controller; returns the new state.

    KL~_b <- (1 - m) KL_b + m KL~_b; e = KL~_b / target - 1; unless |e| < deadzone or the counter
    is not a multiple of ``every``: e~_b <- EMA(e), log beta_b += lr clip(e~_b, +-err_clip), clipped
    to [log beta_min, log beta_max]. The token KL of a row is multiplied by its bucket's beta.
    ``bucket_kl[b] = None`` leaves bucket b untouched. Code form; UNVERIFIED against the paper.
    """
    n = state.updates + 1
    kl, err, lb = list(state.kl_ema), list(state.err_ema), list(state.log_beta)
    for b, x in enumerate(bucket_kl):
        if x is None:
            continue
        kl[b] = (1 - kl_momentum) * x + kl_momentum * kl[b]
        e = kl[b] / target - 1.0
        if abs(e) < deadzone or n % every != 0:
            continue
        err[b] = err_momentum * err[b] + (1 - err_momentum) * e
        step = lr * max(-err_clip, min(err_clip, err[b]))
        lb[b] = max(math.log(beta_min), min(math.log(beta_max), lb[b] + step))
    return AresKLState(tuple(kl), tuple(err), tuple(lb), n)


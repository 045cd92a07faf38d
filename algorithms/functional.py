"""The math of the learners as pure functions over tensors.

Every function here takes explicit tensors and returns tensors; there is no hidden state and no
device or dtype assumption (float32 and float64 both work). Shapes use N rows, T token positions,
V vocabulary entries, S steps (one step = one turn = one row). The registries
(:mod:`agentropy.algorithms.advantages`, :mod:`agentropy.algorithms.losses`), the learner and the
tests call these.

The names and signatures of the table in docs/algorithms.md section 12 are the contract;
the other functions are the pieces the learner needs besides them (aggregation weights, GAE,
covariance token selection, schedules, response checks).

Sources are cited per function; the formulas are written from the papers and docs/algorithms.md.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.utils.checkpoint
from agentropy.algorithms.registry import AGGREGATIONS, LR_SCHEDULES
from torch import Tensor

__all__ = [
    # log-probabilities and entropy
    "token_logprobs",
    "token_entropy",
    "token_logprobs_and_entropy",
    "completion_logprobs_and_entropy",
    # aggregation
    "aggregate",
    "aggregation_weights",
    "masked_mean",
    "masked_whiten",
    # group statistics and advantages
    "group_stats",
    "trajectory_scores",
    "grpo_baseline",
    "signal_group_fraction",
    "grpo_advantages",
    "normalise",
    "with_fixed_advantages",
    "discounted_returns",
    "trajectory_returns",
    "gigpo_step_advantages",
    "empg_advantages",
    "gae_advantages",
    # entropy regularisation (EPO)
    "epo_entropy_penalty",
    "epo_beta",
    # policy and value losses
    "policy_ratio",
    "ppo_surrogates",
    "dual_clip",
    "ppo_clip_loss",
    "kl_k3",
    "value_loss",
    "token_covariance",
    "clip_cov_select",
    "kl_cov_select",
    # schedules and curricula
    "cosine_rise",
    "cosine_fall",
    "lr_multiplier",
    "tool_call_reward",
    # response and group checks
    "has_repeated_ngram",
    "top_std_groups",
]


# --------------------------------------------------------------------------------------------
# Log-probabilities and entropy
# --------------------------------------------------------------------------------------------


def token_logprobs(logits: Tensor, input_ids: Tensor) -> Tensor:
    """Log-probability of each token given the tokens before it.

    Args:
        logits: (B, T, V) causal-LM logits; ``logits[:, t]`` predicts ``input_ids[:, t + 1]``.
        input_ids: (B, T) token ids.

    Returns:
        (B, T) where entry t is log p(input_ids[:, t] | input_ids[:, :t]); column 0 has no
        prediction and is 0. This lines up with ``TokenBatch.rollout_logprobs``.
    """
    logp = torch.log_softmax(logits[:, :-1].float(), dim=-1)
    picked = logp.gather(-1, input_ids[:, 1:, None]).squeeze(-1).to(logits.dtype)
    return torch.nn.functional.pad(picked, (1, 0), value=0.0)


def token_entropy(logits: Tensor) -> Tensor:
    """Entropy in nats of the softmax over the last dimension.

    Args:
        logits: (..., V) unnormalised log-probabilities.

    Returns:
        (...) entropy H = logsumexp(z) - sum softmax(z) * z.
    """
    logp = torch.log_softmax(logits, dim=-1)
    return -(logp.exp() * logp).sum(dim=-1)


def token_logprobs_and_entropy(
    logits: Tensor, input_ids: Tensor, mask: Tensor, *, entropy_grad: bool = True
) -> tuple[Tensor, Tensor]:
    """:func:`token_logprobs` and the entropy of the predicting distribution, on masked tokens only.

    The learner needs both at completion tokens only; taking the softmax there and not over every
    prompt position saves most of the (B, T, V) work when prompts are long.

    Args:
        logits: (B, T, V) causal-LM logits; ``logits[:, t]`` predicts ``input_ids[:, t + 1]``.
        input_ids: (B, T) token ids.
        mask: (B, T) bool; the positions wanted (``loss_mask``). Column 0 has no prediction and
            must be False.
        entropy_grad: False computes the entropy without a gradient (a metric only).

    Returns:
        ``(logp, entropy)``, both (B, T) in float32 or the logits' wider dtype: at a masked
        position t, log p(input_ids[t] | input_ids[:t]) and the entropy of that distribution;
        0 elsewhere.
    """
    if bool(mask[:, 0].any()):
        raise ValueError("mask[:, 0] is set, but the first token of a row has no prediction")
    dtype = torch.promote_types(logits.dtype, torch.float32)
    want = mask[:, 1:].bool()
    picked = logits[:, :-1][want].to(dtype)  # (M, V)
    logp_all = torch.log_softmax(picked, dim=-1)
    logp = logp_all.gather(-1, input_ids[:, 1:][want][:, None]).squeeze(-1)
    source = logp_all if entropy_grad else logp_all.detach()
    entropy = -(source.exp() * source).sum(dim=-1)
    zeros = logits.new_zeros(want.shape, dtype=dtype)
    logp_full = torch.nn.functional.pad(zeros.masked_scatter(want, logp), (1, 0))
    entropy_full = torch.nn.functional.pad(zeros.masked_scatter(want, entropy), (1, 0))
    return logp_full, entropy_full


def completion_logprobs_and_entropy(
    hidden: Tensor,
    head: Callable[[Tensor], Tensor],
    input_ids: Tensor,
    mask: Tensor,
    *,
    chunk_tokens: int = 1024,
    entropy_grad: bool = True,
) -> tuple[Tensor, Tensor]:
    """:func:`token_logprobs_and_entropy` from the last hidden states, without the (B, T, V) logits.

    The LM head is applied only at the M positions that predict a masked token, ``chunk_tokens``
    positions at a time; each chunk's logits, log-softmax and entropy are float32 and, when
    gradients are on, recomputed in the backward pass instead of being kept (activation
    checkpointing per chunk). The largest float32 tensor is ``chunk_tokens x V``, whatever B and T.

    Args:
        hidden: (B, T, H) last hidden states (after the final norm); ``hidden[:, t]`` predicts
            ``input_ids[:, t + 1]``.
        head: maps (m, H) hidden states to (m, V) logits (the model's output embedding).
        input_ids: (B, T) token ids.
        mask: (B, T) bool, the positions wanted; column 0 must be False.
        chunk_tokens: positions per chunk (> 0).
        entropy_grad: False computes the entropy without a gradient (a metric only).

    Returns:
        ``(logp, entropy)``, both (B, T) float32 (float64 for float64 hidden states), 0 outside
        ``mask``; equal to :func:`token_logprobs_and_entropy` of ``head(hidden)``.
    """
    if chunk_tokens <= 0:
        raise ValueError(f"chunk_tokens must be > 0, got {chunk_tokens}")
    if bool(mask[:, 0].any()):
        raise ValueError("mask[:, 0] is set, but the first token of a row has no prediction")
    dtype = torch.promote_types(hidden.dtype, torch.float32)
    want = mask[:, 1:].bool()
    states = hidden[:, :-1][want]  # (M, H)
    targets = input_ids[:, 1:][want]  # (M,)

    def chunk(h: Tensor, t: Tensor) -> tuple[Tensor, Tensor]:
        logp_all = torch.log_softmax(head(h).to(dtype), dim=-1)  # (m, V)
        source = logp_all if entropy_grad else logp_all.detach()
        return logp_all.gather(-1, t[:, None]).squeeze(-1), -(source.exp() * source).sum(dim=-1)

    recompute = torch.is_grad_enabled() and states.requires_grad
    logps, entropies = [], []
    for start in range(0, max(states.shape[0], 1), chunk_tokens):  # no rows: one empty chunk keeps the graph
        h, t = states[start:start + chunk_tokens], targets[start:start + chunk_tokens]
        if recompute:
            lp, ent = torch.utils.checkpoint.checkpoint(chunk, h, t, use_reentrant=False)
        else:
            lp, ent = chunk(h, t)
        logps.append(lp)
        entropies.append(ent)
    zeros = hidden.new_zeros(want.shape, dtype=dtype)
    logp_full = torch.nn.functional.pad(zeros.masked_scatter(want, torch.cat(logps)), (1, 0))
    entropy_full = torch.nn.functional.pad(zeros.masked_scatter(want, torch.cat(entropies)), (1, 0))
    return logp_full, entropy_full


# --------------------------------------------------------------------------------------------
# Aggregation: every mode is a fixed weighting of the token losses
# --------------------------------------------------------------------------------------------
# A mode is registered as ``fn(mask (N, T) float, traj_ids (N,) long, norm_length) -> weights``
# and the aggregated loss is sum(weights * loss). Because the weights depend only on the masks
# and ids of the whole mini-batch, the learner computes them once and sums micro-batch by
# micro-batch: micro-batch size and gradient accumulation cannot change the gradient.


def _row_tokens(mask: Tensor) -> Tensor:
    return mask.sum(dim=-1)


@AGGREGATIONS.register("token-mean")
def _token_mean(mask: Tensor, traj_ids: Tensor, norm_length: int | None) -> Tensor:
    return mask / mask.sum().clamp_min(1.0)


@AGGREGATIONS.register("seq-mean-token-mean")
def _seq_mean_token_mean(mask: Tensor, traj_ids: Tensor, norm_length: int | None) -> Tensor:
    tokens = _row_tokens(mask)
    rows = (tokens > 0).sum().clamp_min(1)
    return mask / tokens.clamp_min(1.0)[:, None] / rows


@AGGREGATIONS.register("seq-mean-token-sum")
def _seq_mean_token_sum(mask: Tensor, traj_ids: Tensor, norm_length: int | None) -> Tensor:
    rows = (_row_tokens(mask) > 0).sum().clamp_min(1)
    return mask / rows


@AGGREGATIONS.register("seq-mean-token-sum-norm")
def _seq_mean_token_sum_norm(mask: Tensor, traj_ids: Tensor, norm_length: int | None) -> Tensor:
    # Dr.GRPO / Dr.BoT: masked row sums, summed over rows (not averaged), divided by the
    # response-length budget, so the scale does not depend on how long responses are.
    return mask / (norm_length or mask.shape[-1])


@AGGREGATIONS.register("traj-mean-turn-mean-token-mean")
def _traj_mean_turn_mean_token_mean(mask: Tensor, traj_ids: Tensor, norm_length: int | None) -> Tensor:
    # EPO's nested average (arXiv 2509.22576, L_MT and L_H): tokens within a turn (a row), then
    # turns within a trajectory, then trajectories. Rows and trajectories without a token are
    # left out of the counts. A trajectory of 40 failed turns weighs as much as one of 2 turns.
    tokens = _row_tokens(mask)
    has = (tokens > 0).to(mask.dtype)
    _, dense = torch.unique(traj_ids, return_inverse=True)
    turns = torch.zeros(int(dense.max()) + 1 if dense.numel() else 0, dtype=mask.dtype,
                        device=mask.device).index_add_(0, dense, has)
    trajs = (turns > 0).sum().clamp_min(1)
    row_weight = has / tokens.clamp_min(1.0) / turns[dense].clamp_min(1.0) / trajs
    return mask * row_weight[:, None]


def aggregation_weights(
    mask: Tensor,
    mode: str,
    *,
    traj_ids: Tensor | None = None,
    norm_length: int | None = None,
    dtype: torch.dtype | None = None,
) -> Tensor:
    """Per-token weights w such that the aggregated loss is ``(w * loss).sum()``.

    Args:
        mask: (N, T) bool or 0/1; the tokens that count.
        mode: a registered aggregation mode (see :func:`aggregate`).
        traj_ids: (N,) long; the trajectory of each row, for the nested mode. Each row is its
            own trajectory when None.
        norm_length: the divisor of ``seq-mean-token-sum-norm``.
        dtype: the weights' dtype (float32 when None).

    Returns:
        (N, T) weights, 0 outside the mask.
    """
    fn = AGGREGATIONS.get(mode)
    mask = mask.to(dtype or torch.float32)
    if traj_ids is None:
        traj_ids = torch.arange(mask.shape[0], device=mask.device)
    return fn(mask, traj_ids, norm_length)


def aggregate(
    loss: Tensor,
    mask: Tensor,
    mode: str,
    *,
    norm_length: int | None = None,
    traj_ids: Tensor | None = None,
) -> Tensor:
    """Reduce a per-token loss matrix to a scalar.

    Args:
        loss: (N, T) per-token loss (finite everywhere; masked-out entries are multiplied by 0).
        mask: (N, T) bool or 0/1; the tokens that count.
        mode: ``token-mean`` (masked sum / mask sum), ``seq-mean-token-mean`` (mean over rows
            of each row's masked mean), ``seq-mean-token-sum`` (mean over rows of each row's
            masked sum), ``seq-mean-token-sum-norm`` (sum over rows of masked row sums / T) or
            ``traj-mean-turn-mean-token-mean`` (mean over trajectories of the mean over their
            rows of each row's masked mean; EPO's nested average). Rows without any masked
            token are left out of the row means.
        norm_length: the divisor of ``seq-mean-token-sum-norm``; defaults to T as in verl,
            where T is the response-length budget. Our rows hold prompt + completion, so the
            learner passes its generation budget here, which keeps the loss independent of
            padding.
        traj_ids: (N,) long; trajectory of each row for the nested mode (each row its own
            trajectory when None).

    Returns:
        A scalar tensor in ``loss``'s dtype.
    """
    weights = aggregation_weights(mask, mode, traj_ids=traj_ids, norm_length=norm_length,
                                  dtype=loss.dtype)
    return (loss * weights).sum()


def masked_mean(x: Tensor, mask: Tensor) -> Tensor:
    """Mean of ``x`` over the positions where ``mask`` is set (0 if none)."""
    mask = mask.to(x.dtype)
    return (x * mask).sum() / mask.sum().clamp_min(1.0)


def masked_whiten(x: Tensor, mask: Tensor, *, eps: float = 1e-8) -> Tensor:
    """(x - mean) / sqrt(var + eps) over the masked positions, 0 elsewhere.

    The variance is unbiased (divides by n - 1), as verl's ``masked_whiten`` does.
    """
    m = mask.to(x.dtype)
    n = m.sum()
    mean = (x * m).sum() / n.clamp_min(1.0)
    var = (((x - mean) * m) ** 2).sum() / (n - 1).clamp_min(1.0)
    return (x - mean) * torch.rsqrt(var + eps) * m


# --------------------------------------------------------------------------------------------
# Group statistics and advantages
# --------------------------------------------------------------------------------------------


def group_stats(values: Tensor, group_ids: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Mean, unbiased standard deviation and size of each entry's group.

    Args:
        values: (N,) float.
        group_ids: (N,) long, any values; equal ids form a group.

    Returns:
        ``(mean, std, count)``, each (N,) and broadcast back to the entries; the std of a group
        of one is 0 here (callers apply their own rule for singletons).
    """
    _, dense = torch.unique(group_ids, return_inverse=True)
    g = int(dense.max()) + 1 if dense.numel() else 0
    count = torch.zeros(g, dtype=values.dtype, device=values.device).index_add_(
        0, dense, torch.ones_like(values))
    total = torch.zeros_like(count).index_add_(0, dense, values)
    mean = total / count
    sq = torch.zeros_like(count).index_add_(0, dense, (values - mean[dense]) ** 2)
    std = torch.sqrt(sq / (count - 1).clamp_min(1.0))
    return mean[dense], std[dense], count[dense]


def trajectory_scores(scores: Tensor, traj_ids: Tensor, group_ids: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """One score per trajectory (the mean of its rows' scores) and the trajectory's group.

    Args:
        scores: (S,) row scores.
        traj_ids: (S,) long; the row's trajectory (any values).
        group_ids: (S,) long; the row's group (equal for the rows of one trajectory).

    Returns:
        ``(traj, traj_score, traj_group)``: (S,) each row's dense trajectory index, and (n,)
        each trajectory's mean score and group id, trajectories in sorted id order.
    """
    _, traj = torch.unique(traj_ids, return_inverse=True)
    n = int(traj.max()) + 1
    rows = torch.zeros(n, dtype=scores.dtype, device=scores.device).index_add_(
        0, traj, torch.ones_like(scores))
    traj_score = torch.zeros_like(rows).index_add_(0, traj, scores) / rows
    traj_group = torch.zeros(n, dtype=torch.long, device=scores.device)
    traj_group[traj] = group_ids
    return traj, traj_score, traj_group


def signal_group_fraction(scores: Tensor, traj_ids: Tensor, group_ids: Tensor) -> Tensor:
    """The fraction of groups whose trajectory scores are not all equal: the groups that give a
    group-relative learner any signal at all.

    Args:
        scores: (S,) row scores (each trajectory's score is the mean of its rows').
        traj_ids: (S,) long, the row's trajectory.
        group_ids: (S,) long, the row's group.

    Returns:
        () float in [0, 1]; 0 for no rows.
    """
    if scores.numel() == 0:
        return scores.new_zeros(())
    _, traj_score, traj_group = trajectory_scores(scores, traj_ids, group_ids)
    _, std, _ = group_stats(traj_score, traj_group)
    _, first = torch.unique(traj_group, return_inverse=True)
    groups = int(first.max()) + 1
    varied = torch.zeros(groups, dtype=torch.bool, device=scores.device)
    varied[first] = std > 0
    return varied.to(scores.dtype).mean()


def grpo_baseline(scores: Tensor, group_ids: Tensor) -> tuple[Tensor, Tensor]:
    """GRPO's group mean and unbiased std of each entry's group, with verl-agent's rule for a
    group of one entry: mean 0 and std 1.

    Returns:
        ``(mean, std)``, each (N,) broadcast back to the entries.
    """
    mean, std, count = group_stats(scores, group_ids)
    single = count < 2
    return (torch.where(single, torch.zeros_like(mean), mean),
            torch.where(single, torch.ones_like(std), std))


def grpo_advantages(
    scores: Tensor, group_ids: Tensor, *, norm_by_std: bool = True, eps: float = 1e-6
) -> Tensor:
    """GRPO's group-relative advantage (arXiv 2402.03300; verl-agent, docs/algorithms.md section 2).

    A = (s - group mean) / (group unbiased std + eps), or s - mean without std (Dr.GRPO). A
    group of one entry gets mean 0 and std 1 (:func:`grpo_baseline`), so its advantage is
    s / (1 + eps) (or s).

    Args:
        scores: (N,) float; one score per entry (per row when statistics are over rows).
        group_ids: (N,) long; entries of one group share an id.
        norm_by_std: divide by the group std.
        eps: added to the std.

    Returns:
        (N,) advantages in ``scores``' dtype.
    """
    mean, std = grpo_baseline(scores, group_ids)
    return normalise(scores, mean, std, norm_by_std=norm_by_std, eps=eps)


def normalise(x: Tensor, mean: Tensor, std: Tensor, *, norm_by_std: bool, eps: float) -> Tensor:
    """(x - mean) / (std + eps), or x - mean without ``norm_by_std``."""
    centred = x - mean
    return centred / (std + eps) if norm_by_std else centred


def with_fixed_advantages(adv: Tensor, fixed: Tensor, mask: Tensor) -> Tensor:
    """Token advantages with some rows' replaced by a fixed value on every completion token.

    Args:
        adv: (N, T) the estimator's advantages.
        fixed: (N,) a row's fixed advantage, NaN for a row that keeps ``adv``.
        mask: (N, T) completion tokens.

    Returns:
        (N, T) in ``adv``'s dtype: ``fixed`` on the masked tokens of a fixed row (0 elsewhere in
        it), ``adv`` in every other row.
    """
    keep = torch.isnan(fixed)[:, None]
    return torch.where(keep, adv, fixed.to(adv.dtype)[:, None] * mask.to(adv.dtype))


def discounted_returns(rewards: Tensor, gamma: float) -> Tensor:
    """R_t = sum over k >= t of gamma^(k - t) r_k, for one trajectory.

    Args:
        rewards: (T,) per-step rewards of one trajectory, in order.
        gamma: discount factor.

    Returns:
        (T,) returns.
    """
    t = rewards.shape[0]
    idx = torch.arange(t, device=rewards.device)
    power = (idx[None, :] - idx[:, None]).to(rewards.dtype)  # k - t
    discount = torch.where(power >= 0, torch.full_like(power, gamma) ** power.clamp_min(0),
                           torch.zeros_like(power))
    return discount @ rewards


def trajectory_returns(
    rewards: Tensor, traj_ids: Tensor, step_index: Tensor, gamma: float
) -> Tensor:
    """:func:`discounted_returns` for rows of many trajectories at once.

    Args:
        rewards: (S,) per-step rewards, one per row, rows in any order.
        traj_ids: (S,) long; the row's trajectory.
        step_index: (S,) long; the row's 0-based step within its trajectory (distinct per
            trajectory).
        gamma: discount factor.

    Returns:
        (S,) discounted return from each row's step to the end of its trajectory.
    """
    _, dense = torch.unique(traj_ids, return_inverse=True)
    n_traj = int(dense.max()) + 1 if dense.numel() else 0
    n_steps = int(step_index.max()) + 1 if step_index.numel() else 0
    grid = rewards.new_zeros(n_traj, n_steps)
    grid[dense, step_index] = rewards
    idx = torch.arange(n_steps, device=rewards.device)
    power = (idx[None, :] - idx[:, None]).to(rewards.dtype)
    discount = torch.where(power >= 0, torch.full_like(power, gamma) ** power.clamp_min(0),
                           torch.zeros_like(power))
    returns = grid @ discount.T  # returns[j, t] = sum_k discount[t, k] grid[j, k]
    return returns[dense, step_index]


def gigpo_step_advantages(
    step_returns: Tensor, anchor_ids: Tensor, *, norm_by_std: bool = True, eps: float = 1e-6
) -> Tensor:
    """GiGPO's step-level advantage within anchor-state groups (arXiv 2505.10978;
    docs/algorithms.md section 3).

    Within each anchor group (same episode group, same raw observation): (R - mean) / (unbiased
    std + eps), or R - mean without std. A group of one entry has mean = itself, so 0.

    Args:
        step_returns: (S,) discounted step returns (after the invalid-action penalty).
        anchor_ids: (S,) long; rows of one anchor-state group share an id.
        norm_by_std: divide by the group std.
        eps: added to the std.

    Returns:
        (S,) step advantages.
    """
    mean, std, _ = group_stats(step_returns, anchor_ids)
    return normalise(step_returns, mean, std, norm_by_std=norm_by_std, eps=eps)


def _next_step_index(traj_ids: Tensor, step_index: Tensor) -> Tensor:
    """For each row, the row holding step + 1 of the same trajectory, or -1 if there is none."""
    n = traj_ids.shape[0]
    _, dense = torch.unique(traj_ids, return_inverse=True)
    span = int(step_index.max()) + 2 if n else 1
    key = dense * span + step_index
    order = torch.argsort(key)
    sorted_key = key[order]
    nxt = torch.full((n,), -1, dtype=torch.long, device=traj_ids.device)
    if n > 1:
        follows = sorted_key[1:] == sorted_key[:-1] + 1  # same trajectory, next step
        nxt[order[:-1]] = torch.where(follows, order[1:], torch.full_like(order[1:], -1))
    return nxt


def empg_advantages(
    traj_adv: Tensor,
    step_entropy: Tensor,
    traj_ids: Tensor,
    step_index: Tensor,
    *,
    k: float = 1.0,
    k_next: float = 1.0,
    zeta: float = 0.1,
    eps: float = 1e-8,
) -> Tensor:
    """EMPG's entropy-modulated advantage (arXiv 2509.09265; docs/algorithms.md section 6).

    H~ = batch min-max normalised step entropy; g = exp(-k H~) / mean(exp(-k H~)) (its batch
    mean is 1); f = exp(-k_next H~) of the same trajectory's next step, 0 for a last step;
    A = g * A(tau) + zeta * f; then the batch mean of A is subtracted.

    Deviation from the public project-page snippet, which multiplies the whole advantage tensor
    by g once per step and normalises token-level entropies while indexing them by step: here g
    and f are computed per step-row and step t + 1 is found by (trajectory, step index), as the
    paper's formula says.

    Args:
        traj_adv: (S,) the trajectory advantage of each step-row (GRPO's or GiGPO's).
        step_entropy: (S,) mean token entropy of each step's completion under the old policy.
        traj_ids: (S,) long; the row's trajectory.
        step_index: (S,) long; the row's step within its trajectory.
        k: scaling sharpness.
        k_next: future-clarity sharpness.
        zeta: future-clarity bonus weight.
        eps: added to the entropy range.

    Returns:
        (S,) modulated, zero-mean advantages.
    """
    h = step_entropy
    h_norm = (h - h.min()) / (h.max() - h.min() + eps)
    scaled = torch.exp(-k * h_norm)
    g = scaled / scaled.mean()
    nxt = _next_step_index(traj_ids, step_index)
    clarity = torch.exp(-k_next * h_norm)
    f = torch.where(nxt >= 0, clarity[nxt.clamp_min(0)], torch.zeros_like(clarity))
    modulated = g * traj_adv + zeta * f
    return modulated - modulated.mean()


def gae_advantages(
    rewards: Tensor, values: Tensor, mask: Tensor, *, gamma: float = 1.0, lam: float = 1.0
) -> tuple[Tensor, Tensor]:
    """Generalised advantage estimation within each row (Schulman et al. 2016; docs/algorithms.md section 1).

    Runs over the masked positions of each row only (the completion): delta_t = r_t +
    gamma V_{t'} - V_t with t' the row's next masked position (V = 0 after the last), and A_t =
    sum_l (gamma lam)^l delta. Unmasked positions neither receive nor pass on anything, so the
    values at prompt or padding positions cannot change an action token's advantage.

    Args:
        rewards: (N, T) per-token rewards (the row's score at its last completion token).
        values: (N, T) value predictions aligned with the tokens.
        mask: (N, T) bool; the completion tokens.
        gamma: discount.
        lam: GAE lambda.

    Returns:
        ``(advantages, returns)``, each (N, T), 0 outside the mask; returns = advantages +
        values.
    """
    m = mask.bool()
    adv = torch.zeros_like(values)
    last = values.new_zeros(values.shape[0])
    next_value = values.new_zeros(values.shape[0])
    columns = torch.nonzero(m.any(dim=0)).flatten().tolist()
    for t in reversed(columns):
        here = m[:, t]
        delta = rewards[:, t] + gamma * next_value - values[:, t]
        step = delta + gamma * lam * last
        last = torch.where(here, step, last)
        next_value = torch.where(here, values[:, t], next_value)
        adv[:, t] = torch.where(here, step, torch.zeros_like(step))
    returns = (adv + values) * m
    return adv, returns


# --------------------------------------------------------------------------------------------
# EPO: entropy smoothing
# --------------------------------------------------------------------------------------------


def epo_entropy_penalty(
    token_entropy: Tensor, hist_mean: Tensor | float, *, kappa_l: float = 0.0, kappa_r: float = 2.0
) -> Tensor:
    """EPO's smoothing hinge (arXiv 2509.22576, section "entropy smoothing").

    P = relu(kappa_l * H_hist - H) + relu(H - kappa_r * H_hist): zero inside the corridor
    [kappa_l H_hist, kappa_r H_hist], linear outside, differentiable in H. The released code
    returns a constant alpha instead (no gradient); this is the paper's version.

    Args:
        token_entropy: (...) token entropies H (with gradient).
        hist_mean: the cumulative mean of past batch entropies (a scalar, no gradient).
        kappa_l: lower corridor factor.
        kappa_r: upper corridor factor.

    Returns:
        (...) the per-token penalty.
    """
    low = kappa_l * hist_mean
    high = kappa_r * hist_mean
    return torch.relu(low - token_entropy) + torch.relu(token_entropy - high)


def epo_beta(step: int, total_steps: int, *, gamma: float = 3.0) -> float:
    """EPO's smoothing weight schedule beta_k = 1 + exp(-gamma k / floor(K / 2)) (Algorithm 1).

    Goes from 2 at k = 0 towards 1; ``total_steps`` below 2 counts as 2.
    """
    k_mid = max(1, total_steps // 2)
    return 1.0 + math.exp(-gamma * step / k_mid)


# --------------------------------------------------------------------------------------------
# Policy and value losses
# --------------------------------------------------------------------------------------------


def policy_ratio(logp: Tensor, old_logp: Tensor) -> Tensor:
    """r = exp(logp - old_logp) per token, the log-ratio clamped to [-20, 20] first (as verl
    does, so one stale token cannot overflow). Shapes: any, equal."""
    return torch.exp((logp - old_logp).clamp(-20.0, 20.0))


def ppo_surrogates(
    logp: Tensor, old_logp: Tensor, adv: Tensor, *, clip_low: float = 0.2, clip_high: float = 0.2
) -> tuple[Tensor, Tensor, Tensor]:
    """PPO's ratio and its two surrogate losses per token.

    r = :func:`policy_ratio`; unclipped = -A r; clipped = -A clip(r, 1 - clip_low, 1 + clip_high).

    Returns:
        ``(ratio, unclipped, clipped)``, each (...).
    """
    ratio = policy_ratio(logp, old_logp)
    return ratio, -adv * ratio, -adv * ratio.clamp(1.0 - clip_low, 1.0 + clip_high)


def dual_clip(loss: Tensor, adv: Tensor, dual_clip_c: float | None) -> Tensor:
    """Cap the loss at -A c where A < 0 (dual-clip PPO, Ye et al. 2020); unchanged for None."""
    if dual_clip_c is None:
        return loss
    return torch.where(adv < 0, torch.minimum(loss, -adv * dual_clip_c), loss)


def ppo_clip_loss(
    logp: Tensor,
    old_logp: Tensor,
    adv: Tensor,
    *,
    clip_low: float = 0.2,
    clip_high: float = 0.2,
    dual_clip_c: float | None = 3.0,
) -> Tensor:
    """PPO's clipped surrogate per token, with separate low/high bounds and dual clip.

    loss = max(-A r, -A clip(r, 1 - clip_low, 1 + clip_high)), r = exp(logp - old_logp); where
    A < 0 it is further capped at -A c (:func:`dual_clip`). Clip-higher (DAPO) is
    clip_high > clip_low.

    Args:
        logp: (...) current log-probabilities (with gradient).
        old_logp: (...) behaviour log-probabilities.
        adv: (...) advantages.
        clip_low: lower clip epsilon.
        clip_high: upper clip epsilon.
        dual_clip_c: the dual-clip constant c > 1, or None for no dual clip.

    Returns:
        (...) per-token loss.
    """
    _, unclipped, clipped = ppo_surrogates(logp, old_logp, adv, clip_low=clip_low, clip_high=clip_high)
    return dual_clip(torch.maximum(unclipped, clipped), adv, dual_clip_c)


def kl_k3(logp: Tensor, ref_logp: Tensor) -> Tensor:
    """Schulman's k3 estimator of KL(pi || pi_ref) per token, verl's ``low_var_kl``.

    exp(ref - logp) - (ref - logp) - 1, clamped to [-10, 10]; non-negative and unbiased.
    """
    diff = ref_logp - logp
    return (torch.exp(diff) - diff - 1.0).clamp(-10.0, 10.0)


def value_loss(values: Tensor, old_values: Tensor, returns: Tensor, *, clip: float | None = 0.5) -> Tensor:
    """PPO's clipped value loss per token: 0.5 max((V - R)^2, (V_clip - R)^2).

    V_clip = old_V + clip(V - old_V, -clip, clip); without ``clip``, 0.5 (V - R)^2.
    """
    unclipped = (values - returns) ** 2
    if clip is None:
        return 0.5 * unclipped
    clipped = (old_values + (values - old_values).clamp(-clip, clip) - returns) ** 2
    return 0.5 * torch.maximum(unclipped, clipped)


def token_covariance(logp: Tensor, adv: Tensor, mask: Tensor) -> Tensor:
    """c_i = (A_i - mean A)(log pi_i - mean log pi) over the masked tokens (arXiv 2505.22617).

    Entropy change is approximately -Cov(log pi, A); tokens with a large positive c consume
    entropy. Computed without gradient; 0 outside the mask.

    Args:
        logp: (N, T) current log-probabilities.
        adv: (N, T) advantages.
        mask: (N, T) bool.

    Returns:
        (N, T) covariance terms.
    """
    logp, adv = logp.detach(), adv.detach()
    return (adv - masked_mean(adv, mask)) * (logp - masked_mean(logp, mask)) * mask


def _pick_count(ratio: float, mask: Tensor) -> Tensor:
    # max(1, floor(ratio * number of valid tokens)), as a tensor (no device sync).
    return torch.floor(ratio * mask.sum()).clamp_min(1)


def clip_cov_select(
    cov: Tensor,
    mask: Tensor,
    clipped: Tensor,
    *,
    ratio: float = 2e-4,
    lb: float = 1.0,
    ub: float = 5.0,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Clip-Cov's token selection (arXiv 2505.22617; docs/algorithms.md section 4).

    Among the masked tokens that PPO has not already clipped and whose covariance lies strictly
    between ``lb`` and ``ub``, pick max(1, floor(ratio * N_valid)) uniformly at random (all of
    them if there are fewer). The selected tokens get no gradient.

    Args:
        cov: (N, T) :func:`token_covariance`.
        mask: (N, T) bool; valid tokens.
        clipped: (N, T) bool; tokens where the PPO clip is active.
        ratio: fraction of valid tokens to pick.
        lb: lower covariance bound (exclusive).
        ub: upper covariance bound (exclusive).
        generator: random source for the pick.

    Returns:
        (N, T) bool, the selected tokens.
    """
    candidates = mask.bool() & ~clipped & (cov > lb) & (cov < ub)
    keys = torch.rand(cov.shape, generator=generator, device=cov.device)
    keys = torch.where(candidates, keys, torch.full_like(keys, 2.0))
    rank = keys.flatten().argsort(stable=True).argsort().view(cov.shape)
    return candidates & (rank < _pick_count(ratio, mask.bool()))


def kl_cov_select(cov: Tensor, mask: Tensor, *, ratio: float = 2e-4) -> Tensor:
    """KL-Cov's token selection (arXiv 2505.22617): the top max(1, floor(ratio * N_valid))
    masked tokens by covariance (ties broken by position).

    ``ratio`` is a raw fraction (verl's ``kl_cov_ratio``), not PRIME-RL's percent.

    Returns:
        (N, T) bool, the selected tokens.
    """
    m = mask.bool()
    keys = torch.where(m, cov, torch.full_like(cov, -math.inf))
    rank = (-keys).flatten().argsort(stable=True).argsort().view(cov.shape)
    return m & (rank < _pick_count(ratio, m))


# --------------------------------------------------------------------------------------------
# Schedules and curricula
# --------------------------------------------------------------------------------------------


def cosine_rise(step: int, horizon: int) -> float:
    """(1 - cos(pi t / T)) / 2 for t <= T, then 1: SPEAR's replay-loss curriculum
    (docs/algorithms.md section 7.3)."""
    if horizon <= 0 or step >= horizon:
        return 1.0
    return (1.0 - math.cos(math.pi * step / horizon)) / 2.0


def cosine_fall(step: int, horizon: int) -> float:
    """(1 + cos(pi t / T)) / 2 for t <= T, then 0: SPEAR's tool-call reward curriculum
    (docs/algorithms.md section 7.2)."""
    if horizon <= 0 or step >= horizon:
        return 0.0
    return (1.0 + math.cos(math.pi * step / horizon)) / 2.0


@LR_SCHEDULES.register("constant")
def _constant_lr(progress: float, min_lr_ratio: float) -> float:
    return 1.0


@LR_SCHEDULES.register("cosine")
def _cosine_lr(progress: float, min_lr_ratio: float) -> float:
    # half a cosine from 1 to min_lr_ratio (EPO's runs: warmup 0.1, min ratio 0.2, 0.5 cycles)
    return min_lr_ratio + (1.0 - min_lr_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


def lr_multiplier(
    step: int,
    total_steps: int,
    *,
    schedule: str = "constant",
    warmup_ratio: float = 0.0,
    min_lr_ratio: float = 0.0,
) -> float:
    """Learning-rate factor at ``step``: linear warmup, then a registered schedule
    (``constant``, or ``cosine`` from 1 after the warmup to ``min_lr_ratio`` at ``total_steps``).
    """
    fn = LR_SCHEDULES.get(schedule)
    warmup = int(warmup_ratio * total_steps)
    if step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total_steps - warmup))
    return fn(progress, min_lr_ratio)


def tool_call_reward(num_actions: Tensor, *, coef: float = 0.1, cap: float = 1.0) -> Tensor:
    """SPEAR's intrinsic tool-call reward min(cap, coef * L), L = actions in the episode
    (docs/algorithms.md section 7.2)."""
    return (coef * num_actions.to(torch.get_default_dtype())).clamp(max=cap)


# --------------------------------------------------------------------------------------------
# Response and group checks (Dr.BoT's filters)
# --------------------------------------------------------------------------------------------


def has_repeated_ngram(token_ids: Tensor, *, n: int = 20, count: int = 10) -> bool:
    """True if some n-gram of ``token_ids`` (1-D) occurs ``count`` or more times."""
    if token_ids.numel() < n or count < 1:
        return False
    grams = token_ids.unfold(0, n, 1)  # (L - n + 1, n)
    _, counts = torch.unique(grams, dim=0, return_counts=True)
    return bool((counts >= count).any())


def top_std_groups(values: Tensor, group_ids: Tensor, keep_ratio: float) -> Tensor:
    """Entries whose group is among the ``keep_ratio`` fraction of groups with the highest std.

    Dr.BoT's group filter (``rollout_filter_ratio``, type ``std``) over per-trajectory scores;
    round(keep_ratio * groups) groups are kept, at least one, ties broken by group id.

    Args:
        values: (N,) one value per entry (a trajectory's mean score).
        group_ids: (N,) long.
        keep_ratio: fraction of groups to keep, in (0, 1].

    Returns:
        (N,) bool.
    """
    uniq, dense = torch.unique(group_ids, return_inverse=True)
    _, std, _ = group_stats(values, group_ids)
    group_std = torch.zeros(uniq.shape[0], dtype=values.dtype, device=values.device)
    group_std[dense] = std
    keep = max(1, int(round(keep_ratio * uniq.shape[0])))
    order = torch.argsort(-group_std, stable=True)[:keep]
    kept = torch.zeros(uniq.shape[0], dtype=torch.bool, device=values.device)
    kept[order] = True
    return kept[dense]

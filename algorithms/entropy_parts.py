"""The entropy interventions of :mod:`agentropy.algorithms.entropy_methods` as learner parts.

Each part is switched on by its config's ``enabled`` flag (``configs/algorithm/<method>.yaml``
sets it) and calls the pure functions; the learner calls it like any other part
(:mod:`agentropy.algorithms.parts`). What each changes (docs/algorithms.md section 14):

- ``siren``: an extra loss term, lambda (H_sel - H_anchor)^2 on the top-p entropy of each row's
  peak-entropy tokens (:func:`~agentropy.algorithms.entropy_methods.siren_entropy_loss`);
- ``steer``: a per-token weight on the policy loss
  (:func:`~agentropy.algorithms.entropy_methods.steer_token_weights`);
- ``lp_reg``: the policy loss of the protected low-probability tokens becomes -A r + beta k3(pi ||
  pi_proxy) (:func:`~agentropy.algorithms.entropy_methods.lp_reg_policy_loss`);
- ``hapo``: the policy loss becomes HAPO's adaptive-clip, redistributed-advantage surrogate
  (:func:`~agentropy.algorithms.entropy_methods.hapo_policy_loss`), with the entropy
  normalisation taken over the whole batch's old-policy entropies, and the next training
  rollout samples at HAPO's token-aware temperature (``rollout_sampling``);
- ``aepo_a``: the policy loss becomes AEPO-A's entropy-balanced one
  (:func:`~agentropy.algorithms.entropy_methods.aepo_a_policy_loss`); with ``branching`` it also
  gives the rollout collector its branch rule (:class:`AepoABranchRule`).
- ``aepo_t``: an extra rollout at a temperature switched by the entropy, whose rewarded episodes
  are trained with advantage 1 in place of as many main episodes (the trainer's rollout hooks of
  :class:`~agentropy.algorithms.parts.LearnerPart` and ``Trajectory.fixed_advantage``).

CANON and HAPO's token-level group average are advantage estimators (``canon``, ``hapo``),
registered here with the parts.

The full-vocabulary distributions SIREN and Lp-Reg need come from the forward pass's last hidden
state through the LM head, at completion positions only (one (tokens x vocabulary) matrix per
micro-batch).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from agentropy.agents.temperature import TokenTemperature
from agentropy.algorithms import entropy_methods as em
from agentropy.algorithms import functional as fn
from agentropy.algorithms.advantages import AdvantageInputs, AdvantageOutput, reward_signals
from agentropy.algorithms.data import Trajectory, collate
from agentropy.algorithms.memory import split_lm
from agentropy.algorithms.parts import LearnerPart, LossContext, LossTerm, PartContext, RolloutRequest, Tally
from agentropy.algorithms.registry import ADVANTAGES, LEARNER_PARTS
from agentropy.algorithms.regularizers import KL_WEIGHT
from torch import Tensor, nn

if TYPE_CHECKING:
    from agentropy.agents.backends.base import Generation, SamplingParams
    from agentropy.algorithms.advantages import RewardSignals
    from agentropy.algorithms.data import TokenBatch
    from agentropy.configs.methods import (
        AepoAConfig,
        AepoTConfig,
        AresConfig,
        HapoConfig,
        LpRegConfig,
        SirenConfig,
        SteerConfig,
    )
    from agentropy.configs.schema import AlgorithmConfig, PolicyLossConfig, RewardConfig

__all__ = ["AepoABranchRule", "AepoAPart", "AepoTPart", "AresPart", "HapoPart", "LpRegPart", "SirenPart",
           "SteerPart", "canon", "completion_logits", "hapo", "reinforce_episodes", "trigger_token_ids"]

OLD_ENTROPY = "old_entropy"
LP_PROXY = "lp_reg_proxy_logprobs"


def _head(model: nn.Module) -> nn.Module:
    lm = split_lm(model)
    head = lm[1] if lm is not None else model.get_output_embeddings()
    if head is None:
        raise ValueError("this part needs the model's output head (get_output_embeddings)")
    return head


def completion_logits(head: nn.Module, hidden: Tensor, mask: Tensor) -> Tensor:
    """(M, V) float logits of the distributions that predict the M masked tokens of ``mask``
    (n, w): ``hidden[:, t - 1]`` predicts token t, as in
    :func:`agentropy.algorithms.functional.token_logprobs_and_entropy`."""
    want = mask[:, 1:].bool()
    h = hidden[:, :-1][want]
    weight = next(head.parameters())
    logits = head(h.to(weight.dtype))
    return logits.to(torch.promote_types(logits.dtype, torch.float32))


def _scatter(values: Tensor, mask: Tensor) -> Tensor:
    """(M,) values of the masked positions of ``mask`` (n, w) into an (n, w) matrix, 0 elsewhere."""
    out = values.new_zeros(mask.shape)
    return out.masked_scatter(mask.bool(), values)


def _require(loss_cfg: PolicyLossConfig | None) -> PolicyLossConfig:
    if loss_cfg is None:
        raise ValueError("this part replaces the policy loss and needs the pass's loss settings")
    return loss_cfg


class _OldEntropy(LearnerPart):
    """Keeps the old policy's token entropies as the ``old_entropy`` column."""

    def old_columns(self) -> tuple[str, ...]:
        return (OLD_ENTROPY,)

    def old_hidden(self) -> bool:
        return True  # the old-policy pass must run the policy (also with rollout log-probs)

    def old_pass(self, micro: TokenBatch, fw: Any) -> dict[str, Tensor]:
        return {OLD_ENTROPY: fw.entropy}


# --------------------------------------------------------------------------------------------- ARES


class AresPart(_OldEntropy):
    """ARES's RL part: difficulty-aware entropy shaping of the scores and a per-difficulty KL
    weight (Chen et al. 2025, arXiv 2510.08457; the released code's form, paper UNVERIFIED).

    Multi-turn mapping (docs/algorithms.md section 14.7): a trajectory is a response. Before the
    advantages, each trajectory gets

    - N, its high-window-entropy trigger count over all its rows: completion positions whose
      window entropy (the old policy's full entropy of the next ``window`` tokens) is >= theta
      and whose sampled token is a trigger word (every token when ``trigger_words`` is None);
    - its bucket from its group's success rate (easy >= 2/3, medium >= 1/3, hard);
    - the entropy reward of :func:`~agentropy.algorithms.entropy_methods.ares_entropy_reward`
      against the bucket's target N* with the bucket's alpha, times ``reward.scale`` (ARES's
      accuracy reward is 1, ours ``scale`` x won), added to the score of each of its rows.

    theta starts as the first batch's mean over rows of each row's ``threshold_percentile``
    percentile of window entropy (the code uses validation responses) and follows the median of
    that per-row value by EMA; N* starts as the first batch's rounded bucket means. Then alpha
    and N* take :func:`~agentropy.algorithms.entropy_methods.ares_alpha_update`. The KL term of
    each row is weighted by its bucket's beta (the ``kl_weight`` column), and beta follows
    :func:`~agentropy.algorithms.entropy_methods.ares_kl_update` from the mean per-row KL of each
    bucket in the on-policy passes (only with ``kl.coef`` > 0). Step rewards (GiGPO's step
    term) are not shaped. Logs ``ares/theta``, ``ares/count``, ``ares/bonus``,
    ``ares/alpha_<bucket>``, ``ares/target_<bucket>``, ``ares/beta_<bucket>``.
    """

    BUCKETS = ("easy", "medium", "hard")
    BUCKET = "ares_bucket"

    def __init__(self, cfg: AresConfig, reward_scale: float, trigger_ids: Tensor | None) -> None:
        self.cfg = cfg
        self.reward_scale = reward_scale
        self.trigger_ids = trigger_ids
        self.alpha = torch.full((3,), cfg.alpha_init, dtype=torch.float64)
        self.target: Tensor | None = None
        self.theta: float | None = None
        self.kl_state = em.AresKLState()

    def shape_scores(self, batch: TokenBatch, signals: RewardSignals, step: int,
                     tally: Tally) -> tuple[TokenBatch, RewardSignals]:
        cfg = self.cfg
        mask = batch.loss_mask
        window = em.ares_window_entropy(batch.columns[OLD_ENTROPY].double(), mask, window=cfg.window)
        # Each row's percentile of its completion tokens' window entropies (rows without any: NaN).
        per_row = window.masked_fill(~mask.bool(), math.nan).nanquantile(
            cfg.threshold_percentile / 100, dim=-1)
        per_row = per_row[mask.any(dim=-1)]
        if per_row.numel() and self.theta is None:
            self.theta = float(per_row.mean())
        elif per_row.numel():
            self.theta = em.ares_threshold_update(self.theta, float(per_row.median()),
                                                  momentum=cfg.threshold_momentum)
        theta = self.theta if self.theta is not None else float("inf")
        trigger = (torch.ones_like(mask, dtype=torch.bool) if self.trigger_ids is None
                   else torch.isin(batch.input_ids, self.trigger_ids.to(batch.input_ids.device)))
        row_count = em.ares_hwe_count(window, trigger, mask, theta)

        # Per trajectory: its count, success, and its group's success rate.
        traj, won, group = fn.trajectory_scores(batch.success.double(), batch.traj_index, batch.group_index)
        count = torch.zeros_like(won).index_add_(0, traj, row_count)
        bucket = em.ares_difficulty_bucket(fn.group_stats(won, group)[0])
        device = won.device
        seen = torch.stack([(bucket == b).any() for b in range(3)]).cpu()
        mean_count = torch.stack([count[bucket == b].mean() if seen[b] else count.new_zeros(())
                                  for b in range(3)]).cpu()
        if self.target is None:
            self.target = torch.round(mean_count)
        observed = torch.where(seen, mean_count, self.target)  # an absent bucket keeps its target
        bonus = em.ares_entropy_reward(count, self.target.to(device)[bucket], bucket, won > 0.5,
                                       self.alpha.to(device)[bucket]) * self.reward_scale
        self.alpha, self.target = em.ares_alpha_update(
            self.alpha, self.target, observed, lr=cfg.alpha_lr, alpha_max=cfg.alpha_max,
            as_released=cfg.as_released_alpha)

        beta = torch.tensor(self.kl_state.log_beta, dtype=torch.float64).exp()
        row_bucket = bucket[traj]
        columns = {KL_WEIGHT: beta.to(device)[row_bucket][:, None].expand(mask.shape).to(mask.device),
                   self.BUCKET: row_bucket[:, None].expand(mask.shape).double()}
        tally.add("ares/theta", theta if math.isfinite(theta) else 0.0)
        tally.add("ares/count", count.mean())
        tally.add("ares/bonus", bonus.mean())
        for b, name in enumerate(self.BUCKETS):
            tally.add(f"ares/alpha_{name}", float(self.alpha[b]))
            tally.add(f"ares/target_{name}", float(self.target[b]))
            tally.add(f"ares/beta_{name}", float(beta[b]))
        scores = signals.scores + bonus[traj].to(signals.scores.dtype)
        return batch.replace(**columns), dataclasses.replace(signals, scores=scores)

    def loss_terms(self, ctx: LossContext, rows: slice, micro: TokenBatch, fw: Any) -> list[LossTerm]:
        bucket = micro.columns.get(self.BUCKET)
        if ctx.prefix != "actor" or bucket is None or micro.ref_logprobs is None:
            return []
        mask = micro.loss_mask
        kl = fn.kl_k3(fw.logp.detach(), micro.ref_logprobs) * mask
        row_kl = kl.sum(-1) / mask.sum(-1).clamp_min(1)
        row_bucket = bucket[:, 0].long()
        has = mask.any(dim=-1)
        for b, name in enumerate(self.BUCKETS):
            rows_b = has & (row_bucket == b)
            if rows_b.any():
                ctx.tally.add(f"ares/kl_{name}", row_kl[rows_b].sum(), rows_b.sum())
        return []

    def end_step(self, step: int, tally: Tally, rows: int) -> None:
        cfg = self.cfg
        measured = tuple(tally.get(f"ares/kl_{name}") for name in self.BUCKETS)
        if any(x is not None for x in measured):
            self.kl_state = em.ares_kl_update(
                self.kl_state, measured, target=cfg.kl_target, kl_momentum=cfg.kl_momentum,
                err_momentum=cfg.kl_momentum, lr=cfg.kl_lr, err_clip=cfg.kl_err_clip,
                deadzone=cfg.kl_deadzone, every=cfg.kl_every)

    def state_dict(self) -> dict[str, Any]:
        return {"ares": {"alpha": self.alpha.tolist(),
                         "target": None if self.target is None else self.target.tolist(),
                         "theta": self.theta, "kl": dataclasses.asdict(self.kl_state)}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        saved = state["ares"]
        self.alpha = torch.tensor(saved["alpha"], dtype=torch.float64)
        self.target = None if saved["target"] is None else torch.tensor(saved["target"], dtype=torch.float64)
        self.theta = saved["theta"]
        self.kl_state = em.AresKLState(**{k: tuple(v) if isinstance(v, list) else v
                                          for k, v in saved["kl"].items()})


def trigger_token_ids(tokenizer: Any, words: Sequence[str]) -> Tensor:
    """The ids of the vocabulary's tokens that decode to one of ``words`` (stripped, lower-cased)."""
    wanted = {w.strip().lower() for w in words}
    ids = [i for i in range(len(tokenizer)) if tokenizer.decode([i]).strip().lower() in wanted]
    return torch.tensor(ids, dtype=torch.long)


@LEARNER_PARTS.register("ares")
def _ares(cfg: AlgorithmConfig, ctx: PartContext) -> AresPart | None:
    if not cfg.ares.enabled:
        return None
    trigger_ids = None
    if cfg.ares.trigger_words is not None:
        if ctx.tokenizer is None:
            raise ValueError("algorithm.ares.trigger_words needs the learner's tokenizer")
        trigger_ids = trigger_token_ids(ctx.tokenizer, cfg.ares.trigger_words)
    return AresPart(cfg.ares, cfg.reward.scale, trigger_ids)


# -------------------------------------------------------------------------------------------- SIREN


class SirenPart(LearnerPart):
    """SIREN's self-anchored selective entropy term (arXiv 2509.25133; UNVERIFIED against the paper).

    Per micro-batch: H^p, the entropy of each completion token's renormalised top-p nucleus
    (current policy, with gradient); the peak mask, the tokens of each row above the row's
    ``quantile``; H_sel, the mean over rows of each row's mean selected H^p; the loss term
    coef (H_sel - H_anchor)^2, weighted by the micro-batch's share of the mini-batch's rows
    with completion tokens. H_anchor is H_sel of the first training batch under the old policy
    (fixed from then on, saved in the checkpoint); the released code returns a zero loss on that
    batch, here its micro-batches already compare their H_sel with the batch's anchor (small
    terms). H_sel is a mean over the micro-batch, as in the
    released code, so the update depends on the micro-batch size (docs/algorithms.md section 9.5);
    with one micro-batch per mini-batch it is the formula. Logs ``siren/h_sel``, ``siren/anchor``.
    """

    def __init__(self, cfg: SirenConfig, model: nn.Module) -> None:
        self.cfg = cfg
        self.head = _head(model)
        self.anchor: float | None = None
        self._sum = 0.0
        self._rows = 0.0

    def _row_entropy(self, micro: TokenBatch, hidden: Tensor) -> tuple[Tensor, Tensor]:
        """(n,) mean selected top-p entropy of each row, and (n,) 1.0 for rows with completion tokens."""
        mask = micro.loss_mask
        logits = completion_logits(self.head, hidden, mask)
        hp = em.siren_top_p_entropy(logits, top_p=self.cfg.top_p, top_k=self.cfg.top_k,
                                    include_crossing_token=self.cfg.include_crossing_token)
        hp = _scatter(hp, mask)
        sel = em.siren_peak_mask(hp, mask, quantile=self.cfg.quantile).to(hp.dtype)
        per_row = (hp * sel).sum(dim=1) / sel.sum(dim=1).clamp_min(1.0)
        return per_row, mask.any(dim=1).to(hp.dtype)

    def old_hidden(self) -> bool:
        return self.anchor is None

    def old_pass(self, micro: TokenBatch, fw: Any) -> dict[str, Tensor]:
        if self.anchor is None:
            per_row, rows = self._row_entropy(micro, fw.hidden)
            self._sum += float((per_row * rows).sum())
            self._rows += float(rows.sum())
        return {}

    def before_update(self, batch: TokenBatch, signals: RewardSignals, step: int, tally: Tally,
                      labels: Any) -> None:
        if self.anchor is None and self._rows > 0:
            self.anchor = self._sum / self._rows

    def wants_hidden(self, micro: TokenBatch) -> bool:
        return self.anchor is not None

    def loss_terms(self, ctx: LossContext, rows: slice, micro: TokenBatch, fw: Any) -> list[LossTerm]:
        if self.anchor is None or fw.hidden is None:
            return []
        per_row, has = self._row_entropy(micro, fw.hidden)
        n = has.sum()
        if n == 0:
            return []
        h_sel = (per_row * has).sum() / n
        share = n / ctx.mb.loss_mask.any(dim=1).sum().clamp_min(1)
        value = self.cfg.coef * (h_sel - self.anchor) ** 2 * share
        ctx.tally.add("siren/h_sel", h_sel.detach() * n, n)
        return [LossTerm("loss_siren", value)]

    def end_step(self, step: int, tally: Tally, rows: int) -> None:
        if self.anchor is not None:
            tally.add("siren/anchor", self.anchor)

    def state_dict(self) -> dict[str, Any]:
        return {"siren": {"anchor": self.anchor}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if "siren" in state:
            self.anchor = state["siren"]["anchor"]


@LEARNER_PARTS.register("siren")
def _siren(cfg: AlgorithmConfig, ctx: PartContext) -> SirenPart | None:
    return SirenPart(cfg.siren, ctx.model) if cfg.siren.enabled else None


# -------------------------------------------------------------------------------------------- STEER


class SteerPart(_OldEntropy):
    """STEER's entropy-change-aware token weights (arXiv 2510.10150).

    Each token's policy loss is multiplied by lambda_t of
    :func:`~agentropy.algorithms.entropy_methods.steer_token_weights`, from the advantage, the old
    policy's entropy and log-probability and the current log-probability; the largest |Omega| is
    taken over the micro-batch (the released code's scope, so the update depends on the
    micro-batch size: docs/algorithms.md section 9.5). Rows without old entropies (replayed rows)
    keep weight 1. Logs ``steer/weight`` (mean over completion tokens).
    """

    def __init__(self, cfg: SteerConfig) -> None:
        self.cfg = cfg

    def token_loss(self, ctx: LossContext, rows: slice, micro: TokenBatch, fw: Any, loss: Tensor) -> Tensor:
        old_entropy = micro.columns.get(OLD_ENTROPY)
        if old_entropy is None:
            return loss
        mask = micro.loss_mask
        w = em.steer_token_weights(micro.advantages, old_entropy, micro.old_logprobs, fw.logp, mask,
                                   weight_min=self.cfg.weight_min, weight_max=self.cfg.weight_max,
                                   mapping=self.cfg.mapping, omega_floor=self.cfg.omega_floor)
        ctx.tally.add("steer/weight", (w * mask).sum(), mask.sum())
        return loss * w.to(loss.dtype)


@LEARNER_PARTS.register("steer")
def _steer(cfg: AlgorithmConfig, ctx: PartContext) -> SteerPart | None:
    return SteerPart(cfg.steer) if cfg.steer.enabled else None


# ------------------------------------------------------------------------------------------- Lp-Reg


class LpRegPart(LearnerPart):
    """Lp-Reg's low-probability regularisation (arXiv 2510.03222).

    The old-policy pass computes log pi_proxy of every completion token (the old policy with its
    tokens under kappa max p removed, renormalised). In each micro-batch the protected tokens of
    :func:`~agentropy.algorithms.entropy_methods.lp_reg_select` (the lowest-probability rho share
    of the negative-advantage tokens that the proxy would raise) get the loss -A r + beta
    k3(pi || pi_proxy); every other token keeps the base learner's policy loss, whose clip range
    is ``algorithm.policy_loss``'s (``lp_reg.yaml`` sets it to ``lp_reg.clip_low`` /
    ``clip_high``, the scripts' [0, 10], without dual clip). The selection is per micro-batch, as
    released (docs/algorithms.md section 9.5). Rows without proxy log-probs (replayed rows) keep
    the base loss. Logs ``lp_reg/selected`` (share of completion tokens).
    """

    def __init__(self, cfg: LpRegConfig, model: nn.Module) -> None:
        self.cfg = cfg
        self.head = _head(model)

    def old_columns(self) -> tuple[str, ...]:
        return (LP_PROXY,)

    def old_hidden(self) -> bool:
        return True

    def old_pass(self, micro: TokenBatch, fw: Any) -> dict[str, Tensor]:
        mask = micro.loss_mask
        logits = completion_logits(self.head, fw.hidden, mask)
        tokens = micro.input_ids[:, 1:][mask[:, 1:].bool()]
        proxy = em.lp_reg_proxy_logprobs(logits, tokens, kappa=self.cfg.kappa, mode=self.cfg.mode,
                                         soft=self.cfg.soft)
        return {LP_PROXY: _scatter(proxy, mask)}

    def token_loss(self, ctx: LossContext, rows: slice, micro: TokenBatch, fw: Any, loss: Tensor) -> Tensor:
        proxy = micro.columns.get(LP_PROXY)
        if proxy is None:
            return loss
        c, mask = self.cfg, micro.loss_mask
        kw = dict(neg_fraction=c.neg_fraction, pos_fraction=c.pos_fraction, released_gate=c.released_gate)
        sel = em.lp_reg_select(fw.logp, proxy, micro.advantages, mask, **kw)
        ctx.tally.add("lp_reg/selected", sel.sum(), mask.sum())
        if not bool(sel.any()):
            return loss
        reg = em.lp_reg_policy_loss(fw.logp, micro.old_logprobs, proxy, micro.advantages, mask, beta=c.beta,
                                    clip_low=c.clip_low, clip_high=c.clip_high, **kw)
        return torch.where(sel, reg.to(loss.dtype), loss)


@LEARNER_PARTS.register("lp_reg")
def _lp_reg(cfg: AlgorithmConfig, ctx: PartContext) -> LpRegPart | None:
    return LpRegPart(cfg.lp_reg, ctx.model) if cfg.lp_reg.enabled else None


# --------------------------------------------------------------------------------------------- HAPO


class HapoPart(_OldEntropy):
    """HAPO's loss side (arXiv 2509.16591): asymmetric adaptive clipping and differential
    advantage redistribution.

    h^ is the normalised log-entropy of each completion token under the old policy, with the
    pivot and scale of :func:`~agentropy.algorithms.entropy_methods.hapo_entropy_stats` over the
    whole batch (so micro-batching does not change the update); the policy loss is
    :func:`~agentropy.algorithms.entropy_methods.hapo_policy_loss` with the pass's clip range and
    dual clip. ``legacy_sign`` reproduces the released normalisation's sign error.

    The sampler's side (:meth:`rollout_sampling`): with ``tau`` > 0 the next training rollout
    samples each token at T_t = T0 (1 + tau h^_t), h^_t its own entropy normalised with this
    update's statistics (:class:`~agentropy.agents.temperature.TokenTemperature`; the released
    code passes the previous step's statistics to its sampler the same way). Before the first
    update there are none and every token is sampled at T0. The statistics are checkpointed, so a
    resumed run's next rollout uses the same rule. The ratio's denominator is the learner's
    ``old_logprobs`` (``recompute``: temperature 1, as released, uncorrected). Logs
    ``hapo/pivot``, ``hapo/h_hat``.
    """

    def __init__(self, cfg: HapoConfig) -> None:
        self.cfg = cfg
        self.stats: em.HapoEntropyStats | None = None

    def before_update(self, batch: TokenBatch, signals: RewardSignals, step: int, tally: Tally,
                      labels: Any) -> None:
        self.stats = em.hapo_entropy_stats(batch.columns[OLD_ENTROPY], batch.loss_mask, pivot=self.cfg.pivot)
        tally.add("hapo/pivot", self.stats.pivot)

    def token_loss(self, ctx: LossContext, rows: slice, micro: TokenBatch, fw: Any, loss: Tensor) -> Tensor:
        old_entropy = micro.columns.get(OLD_ENTROPY)
        if old_entropy is None or self.stats is None:
            return loss
        lc = _require(ctx.loss_cfg)
        mask = micro.loss_mask
        h_hat = em.hapo_normalized_entropy(old_entropy, self.stats, legacy_sign=self.cfg.legacy_sign) * mask
        ctx.tally.add("hapo/h_hat", h_hat.sum(), mask.sum())
        out = em.hapo_policy_loss(fw.logp, micro.old_logprobs, micro.advantages, h_hat, clip_low=lc.clip_low,
                                  clip_high=lc.clip_high, alpha=self.cfg.alpha, beta=self.cfg.beta,
                                  dual_clip_c=lc.dual_clip_c)
        return out.to(loss.dtype)

    def rollout_sampling(self, sampling: SamplingParams) -> SamplingParams:
        if self.stats is None or self.cfg.tau == 0:
            return sampling
        rule = TokenTemperature(self.stats, tau=self.cfg.tau, legacy_sign=self.cfg.legacy_sign)
        return dataclasses.replace(sampling, token_temperature=rule)

    def state_dict(self) -> dict[str, Any]:
        return {"hapo": {"stats": None if self.stats is None else dataclasses.asdict(self.stats)}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if "hapo" in state:
            saved = state["hapo"]["stats"]
            self.stats = None if saved is None else em.HapoEntropyStats(**saved)


@LEARNER_PARTS.register("hapo")
def _hapo(cfg: AlgorithmConfig, ctx: PartContext) -> HapoPart | None:
    return HapoPart(cfg.hapo) if cfg.hapo.enabled else None


# ------------------------------------------------------------------------------------------- AEPO-A


class AepoAPart(LearnerPart):
    """AEPO-A's entropy-balanced optimisation (Agentic Entropy-Balanced Policy Optimization,
    arXiv 2510.14545; constants from a third-party reproduction, UNVERIFIED).

    The policy loss becomes :func:`~agentropy.algorithms.entropy_methods.aepo_a_policy_loss`:
    advantages scaled by (1 + alpha H^), H^ the z-scored entropy of the current forward over the
    micro-batch (as released: docs/algorithms.md section 9.5), and a clipped high-entropy token
    keeps a gradient rescaled to (1 + eps_h). The clip range is the pass's; the dual clip is
    ``aepo_a.dual_clip_c``. With ``aepo_a.branching`` the part's :meth:`branch_rule` is AEPO-A's
    entropy-balanced rollout (:class:`AepoABranchRule`), which the trainer gives the collector.
    """

    def __init__(self, cfg: AepoAConfig, rule: AepoABranchRule | None = None) -> None:
        self.cfg = cfg
        self.rule = rule

    def branch_rule(self) -> AepoABranchRule | None:
        return self.rule

    def token_loss(self, ctx: LossContext, rows: slice, micro: TokenBatch, fw: Any, loss: Tensor) -> Tensor:
        lc = _require(ctx.loss_cfg)
        out = em.aepo_a_policy_loss(fw.logp, micro.old_logprobs, micro.advantages, fw.entropy,
                                    micro.loss_mask, alpha=self.cfg.alpha, clip_low=lc.clip_low,
                                    clip_high=lc.clip_high, dual_clip_c=self.cfg.dual_clip_c,
                                    high_entropy_stop_gradient=self.cfg.high_entropy_stop_gradient)
        return out.to(loss.dtype)


@dataclass(frozen=True)
class AepoABranchRule:
    """AEPO-A's dynamic entropy-balanced rollout as the collector's branch rule (Dong et al. 2025,
    arXiv 2510.14545; docs/algorithms.md section 14.6): the branching decision of ARPO's rollout with
    AEPO's consecutive-branch penalty, in the form of the third-party reproduction ARLArena
    (UNVERIFIED; no official code).

    - Global samples: ``m = min(global_samples, k)`` of a group's k = ``group_size`` episodes start
      from the reset (entropy pre-monitoring, ``dynamic_global_samples``, is not wired: it needs a
      probe rollout per task; the config refuses it).
    - Step entropy of a turn (a "tool call" of the paper is an env step, and the step's entropy
      is that of the generation that reads the step's observation, as ARPO measures the first
      tokens generated after a tool result): the mean over the first ``entropy_tokens`` generated
      tokens of the sampler's **full-vocabulary** token entropy, divided by ln|V|
      (:func:`~agentropy.algorithms.entropy_methods.aepo_a_token_step_entropy`). The paper's
      rollout reads vLLM's top-10 log-probabilities instead, which underestimate the entropy, so
      ``branch_weight`` does not carry over exactly. A backend that returns no token entropies
      (vLLM) gives the mean surprisal -log p of the same sampled tokens instead, a one-sample
      estimate of the same entropy.
    - Fork: u ~ Uniform(0, 1) from a generator seeded by ``(seed, key)``; the episode forks
      :func:`~agentropy.algorithms.entropy_methods.aepo_a_branch_count` branches (``beam_size -
      1`` when clip((u + w dH) max(0, 1 - P l), 0, 1) >= ``branch_threshold``, within the
      group's budget), dH = step entropy minus the episode's first turn's, l the group's
      consecutive forking rounds.

    Attributes:
        cfg: the method's settings (``branch_weight``, ``branch_threshold``,
            ``consecutive_penalty``, ``beam_size``, ``global_samples``, ``entropy_tokens``,
            ``train_prefix_once``).
        vocab_size: |V| of the policy's output layer (the entropy normaliser ln|V|).
        seed: seeds the draws with each decision's key (``algorithm.seed``).
    """

    cfg: AepoAConfig
    vocab_size: int
    seed: int = 0

    @property
    def prefix_once(self) -> bool:
        return self.cfg.train_prefix_once

    def global_samples(self, group_size: int) -> int:
        return min(self.cfg.global_samples, group_size)

    def step_entropy(self, generation: Generation) -> float | None:
        if generation.entropies is not None:
            per_token = torch.tensor(generation.entropies, dtype=torch.float64)
        elif generation.logprobs:
            per_token = -torch.tensor(generation.logprobs, dtype=torch.float64)
        else:  # a text-only generation
            return None
        h = em.aepo_a_token_step_entropy(per_token, self.vocab_size, n_tokens=self.cfg.entropy_tokens)
        return float(h)

    def forks(self, *, key: Sequence[int], delta_entropy: float, consecutive: int, budget_left: int) -> int:
        u = float(np.random.default_rng([self.seed, *key]).random())
        c = self.cfg
        return int(em.aepo_a_branch_count(u, delta_entropy, consecutive, budget_left, weight=c.branch_weight,
                                          penalty=c.consecutive_penalty, threshold=c.branch_threshold,
                                          beam_size=c.beam_size))


def _vocab_size(model: nn.Module) -> int:
    size = getattr(getattr(model, "config", None), "vocab_size", None)
    if not size:
        raise ValueError("algorithm.aepo_a.branching: the policy's config gives no vocab_size (the "
                         "step entropy is divided by ln|V|)")
    return int(size)


@LEARNER_PARTS.register("aepo_a")
def _aepo_a(cfg: AlgorithmConfig, ctx: PartContext) -> AepoAPart | None:
    if not cfg.aepo_a.enabled:
        return None
    rule = AepoABranchRule(cfg.aepo_a, _vocab_size(ctx.model), cfg.seed) if cfg.aepo_a.branching else None
    return AepoAPart(cfg.aepo_a, rule)


# ------------------------------------------------------------------------------------------- AEPO-T


def reinforce_episodes(extra: Sequence[Trajectory], reward: RewardConfig, step: int, cfg: AepoTConfig, *,
                       below_target: bool, eps: float = 1e-6) -> list[int]:
    """Which tempered episodes become AEPO-T's REINFORCE episodes (arXiv 2510.08141), by position
    in ``extra``.

    An episode's score is the mean of its rows' scores (the learner's, ``reward`` at ``step``);
    its advantage is GRPO's within its group of ``extra``, over episodes and std-normalised (the
    released code's GRPO, whatever the base recipe); the first min(``max_rows``, #above
    ``threshold``) in order are kept, half of them while the entropy is above the target
    (:func:`~agentropy.algorithms.entropy_methods.aepo_t_reinforce_rows`). Episodes without turns
    are never kept.

    Args:
        extra: the extra rollout's finished episodes, task-major.
        reward: the learner's reward settings.
        step: the learner's global step (the tool-call curriculum).
        cfg: AEPO-T's settings.
        below_target: the entropy estimate was at or below the target.
        eps: added to the group std.
    """
    played = [i for i, traj in enumerate(extra) if traj.turns]
    if not played:
        return []
    batch = collate([extra[i] for i in played], pad_token_id=0)
    scores = reward_signals(batch, reward, step).scores
    _, traj_score, traj_group = fn.trajectory_scores(scores, batch.traj_index, batch.group_index)
    adv = fn.grpo_advantages(traj_score, traj_group, norm_by_std=True, eps=eps)
    keep = em.aepo_t_reinforce_rows(adv, below_target=below_target, threshold=cfg.threshold,
                                    max_rows=cfg.max_rows, halve_above_target=cfg.halve_above_target)
    return [played[i] for i in torch.nonzero(keep).flatten().tolist()]


class AepoTPart(LearnerPart):
    """AEPO-T, *Arbitrary* Entropy Policy Optimization (Wang et al. 2025, arXiv 2510.08141; the
    released code's form, the paper body not read): REINFORCE towards rewarded samples of a
    hotter (colder) policy raises (lowers) the entropy towards a target.

    Each iteration, after the main rollout, the trainer plays the first ceil(``extra_share`` x
    tasks) tasks again, ``group_size`` episodes each, at ``t_high`` if H_bar <= ``target_entropy``
    else ``t_low`` (:meth:`rollout_request`). The REINFORCE unit is an episode (docs/algorithms.md
    section 14.8): the tempered episodes of :func:`reinforce_episodes` get ``fixed_advantage`` 1,
    so every completion token of every turn-row of theirs is trained with advantage 1, and they
    take the place of as many main episodes, the first ones in task-major order (the released
    code replaces the first rows of the batch), so the batch keeps its size
    (:meth:`merge_rollouts`). Their behaviour log-probs are the policy's at T = 1
    (``old_logp_at_unit_temperature``, the released code's: no correction towards the tempered
    sampler; with ``algorithm.old_logprobs: rollout`` the old-policy pass runs the policy for
    them) or the sampler's at T.

    H_bar is the previous update's -mean log pi of the sampled tokens over the on-policy training
    passes (token-weighted; every row, the REINFORCE ones too), 0 at the start so the first
    extra rollout is hot; it is checkpointed. Logs ``aepo_t/entropy`` (the H_bar that chose the
    temperature), ``aepo_t/temperature``, ``aepo_t/reinforce_episodes`` (kept),
    ``aepo_t/reinforce_rows`` (their rows in the update, after the group filter) and
    ``aepo_t/entropy_estimate`` (this update's, the next H_bar).
    """

    UNIT_LOGPROBS = "aepo_t_unit_logprobs"
    ESTIMATE = "aepo_t/entropy_estimate"

    def __init__(self, cfg: AepoTConfig, reward: RewardConfig, *, eps: float = 1e-6,
                 unit_pass: bool = False) -> None:
        self.cfg = cfg
        self.reward = reward
        self.eps = eps
        self.unit_pass = unit_pass  # the old-policy pass must give the T = 1 log-probs
        self.state = em.AepoTState()
        self.step = 0
        self._round: dict[str, float] | None = None

    def rollout_request(self, num_tasks: int, group_size: int) -> RolloutRequest | None:
        tasks = math.ceil(self.cfg.extra_share * num_tasks)
        if self.cfg.max_rows == 0 or tasks == 0:
            return None
        h = self.state.entropy
        t = em.aepo_t_temperature(h, self.cfg.target_entropy, t_high=self.cfg.t_high, t_low=self.cfg.t_low)
        self._round = {"entropy": h, "temperature": t, "below": float(h <= self.cfg.target_entropy)}
        return RolloutRequest(tasks=tuple(range(tasks)), group_size=group_size, temperature=t)

    def merge_rollouts(self, main: list[Trajectory], extra: list[Trajectory]) -> list[Trajectory]:
        below = self._round is None or bool(self._round["below"])
        picked = reinforce_episodes(extra, self.reward, self.step, self.cfg, below_target=below, eps=self.eps)
        if self._round is not None:
            self._round["episodes"] = len(picked)
        reinforce = [dataclasses.replace(extra[i], fixed_advantage=1.0) for i in picked]
        return reinforce + main[len(picked):]

    def old_columns(self) -> tuple[str, ...]:
        return (self.UNIT_LOGPROBS,) if self.unit_pass else ()

    def old_hidden(self) -> bool:
        return self.unit_pass  # the old-policy pass must run the policy (rollout log-probs)

    def old_pass(self, micro: TokenBatch, fw: Any) -> dict[str, Tensor]:
        return {self.UNIT_LOGPROBS: fw.logp} if self.unit_pass else {}

    def shape_scores(self, batch: TokenBatch, signals: RewardSignals, step: int,
                     tally: Tally) -> tuple[TokenBatch, RewardSignals]:
        if batch.fixed_advantage is None:
            return batch, signals
        rows = ~torch.isnan(batch.fixed_advantage)
        tally.add("aepo_t/reinforce_rows", rows.sum())
        behaviour = (batch.columns.get(self.UNIT_LOGPROBS) if self.cfg.old_logp_at_unit_temperature
                     else batch.rollout_logprobs)  # None: the recomputed old log-probs are at T = 1
        if behaviour is None or batch.old_logprobs is None:
            return batch, signals
        old = torch.where(rows[:, None], behaviour.to(batch.old_logprobs.dtype), batch.old_logprobs)
        return batch.replace(old_logprobs=old), signals

    def loss_terms(self, ctx: LossContext, rows: slice, micro: TokenBatch, fw: Any) -> list[LossTerm]:
        mask = micro.loss_mask
        n = mask.sum()
        if ctx.prefix == "actor" and n > 0:
            ctx.tally.add(self.ESTIMATE, em.aepo_t_entropy_estimate(fw.logp, mask) * n, n)
        return []

    def end_step(self, step: int, tally: Tally, rows: int) -> None:
        self.step = step + 1
        if self._round is not None:
            for key in ("entropy", "temperature"):
                tally.add(f"aepo_t/{key}", self._round[key])
            tally.add("aepo_t/reinforce_episodes", self._round.get("episodes", 0.0))
            self._round = None
        measured = tally.get(self.ESTIMATE)
        if measured is not None:
            self.state = dataclasses.replace(self.state, entropy=measured)

    def state_dict(self) -> dict[str, Any]:
        return {"aepo_t": {"entropy": self.state.entropy, "step": self.step}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if "aepo_t" in state:
            self.state = em.AepoTState(entropy=float(state["aepo_t"]["entropy"]))
            self.step = int(state["aepo_t"]["step"])


@LEARNER_PARTS.register("aepo_t")
def _aepo_t(cfg: AlgorithmConfig, ctx: PartContext) -> AepoTPart | None:
    if not cfg.aepo_t.enabled:
        return None
    unit_pass = (cfg.aepo_t.old_logp_at_unit_temperature and cfg.old_logprobs == "rollout"
                 and cfg.aepo_t.max_rows > 0)
    return AepoTPart(cfg.aepo_t, cfg.reward, eps=cfg.group.eps, unit_pass=unit_pass)


# -------------------------------------------------------------------------------------------- CANON


def _rows(row_adv: Tensor, batch: TokenBatch) -> AdvantageOutput:
    return AdvantageOutput(advantages=row_adv[:, None] * batch.loss_mask.to(row_adv.dtype),
                           row_advantages=row_adv)


@ADVANTAGES.register("canon")
def canon(batch: TokenBatch, cfg: AlgorithmConfig, inputs: AdvantageInputs) -> AdvantageOutput:
    """CANON's conditional advantage (arXiv 2509.23962;
    :func:`~agentropy.algorithms.entropy_methods.canon_advantages`).

    The members of each group are split at the median of the target metric (the old policy's
    mean token entropy, or the completion length) and compared across and within the halves.
    ``unit: trajectory`` (default): the members are the group's trajectories, with the mean score
    of their rows and the metric over all their completion tokens; each row gets its
    trajectory's advantage plus its own score's deviation from the trajectory's mean score (as
    GRPO over trajectories compares each row's own score), divided by ``normalizer``. ``unit:
    row``: every row is a member, its metric its own completion's.
    """
    c = cfg.canon
    scores = inputs.signals.scores
    mask = batch.loss_mask
    unit = batch.traj_index if c.unit == "trajectory" else None
    if c.metric == "entropy":
        if inputs.old_entropy is None:
            raise ValueError("canon with metric entropy needs the old policy's token entropies")
        metric = em.response_mean(inputs.old_entropy.to(scores.dtype), mask, unit)
    else:
        metric = em.response_length(mask, unit).to(scores.dtype)
    kw = dict(mu=c.mu, alpha=c.alpha, normalizer=c.normalizer)
    if unit is None:
        return _rows(em.canon_advantages(scores, metric, batch.group_index, **kw), batch)
    traj, traj_score, traj_group = fn.trajectory_scores(scores, batch.traj_index, batch.group_index)
    traj_metric = torch.zeros_like(traj_score).index_copy_(0, traj, metric)
    traj_adv = em.canon_advantages(traj_score, traj_metric, traj_group, **kw)
    return _rows(traj_adv[traj] + (scores - traj_score[traj]) / c.normalizer, batch)


canon.needs = frozenset({"entropy"})  # type: ignore[attr-defined]


@ADVANTAGES.register("hapo")
def hapo(batch: TokenBatch, cfg: AlgorithmConfig, inputs: AdvantageInputs) -> AdvantageOutput:
    """HAPO's token-level group average advantage (arXiv 2509.16591;
    :func:`~agentropy.algorithms.entropy_methods.hapo_token_group_advantages`): the group's mean
    and std count each member's score once per completion token, with the fall-back to GRPO for a
    group with some |A| >= ``fallback_abs``. The members are rows with ``group.over_rows`` (the
    base's default, GRPO's multi-turn statistics), else trajectories (all their rows' tokens;
    each row gets its trajectory's advantage). Without ``hapo.token_level_advantage`` it is the
    ``grpo`` estimator.
    """
    if not cfg.hapo.token_level_advantage:
        return ADVANTAGES.get("grpo")(batch, cfg, inputs)
    scores = inputs.signals.scores
    kw = dict(norm_by_std=cfg.group.norm_by_std, fallback_abs=cfg.hapo.fallback_abs, eps=cfg.group.eps)
    if cfg.group.over_rows:
        lengths = em.response_length(batch.loss_mask).to(scores.dtype)
        return _rows(em.hapo_token_group_advantages(scores, lengths, batch.group_index, **kw), batch)
    traj, traj_score, traj_group = fn.trajectory_scores(scores, batch.traj_index, batch.group_index)
    lengths = em.response_length(batch.loss_mask, batch.traj_index).to(scores.dtype)
    traj_len = torch.zeros_like(traj_score).index_copy_(0, traj, lengths)
    return _rows(em.hapo_token_group_advantages(traj_score, traj_len, traj_group, **kw)[traj], batch)

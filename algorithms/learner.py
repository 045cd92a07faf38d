"""The learner: one update step over a :class:`~agentropy.algorithms.data.TokenBatch`, top to bottom.

``Learner.update(batch)`` does, in order:

1. scores (outcome, tool-call bonus, invalid-action penalty) and the group filter;
2. the old-policy pass without gradients: behaviour log-probs (recomputed, as verl does, or the
   sampler's), token entropies and values when the estimator needs them, and reference
   log-probs for the KL term;
3. advantages from the registered estimator named by ``cfg.advantage``;
4. the response filters (their rows keep their scores but lose their loss);
5. SPEAR: this step's group means join the baseline; a replay batch is drawn if the trigger
   fires;
6. PPO epochs of shuffled mini-batches, each one optimizer step: per micro-batch a forward
   pass, the registered policy loss, the KL and entropy terms, the value loss, weighted by the
   aggregation mode's per-token weights of the whole mini-batch (so micro-batch size and
   gradient accumulation do not change the gradient), backward; then gradient clipping and the
   step. After each epoch's on-policy mini-batches, the replay chunks, each its own optimizer
   step with its own clip-cov parameters, scaled by the rising curriculum;
7. the LR schedule, the KL controller, EPO's entropy history, and admission of this step's
   positive-advantage rows into the replay buffer.

The learner never branches on an algorithm's name: estimators and losses come from the
registries, and the stateful parts (entropy term, KL controller, replay) are objects it owns.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
from agentropy.algorithms import functional as F
from agentropy.algorithms.advantages import AdvantageInputs, reward_signals
from agentropy.algorithms.data import TokenBatch
from agentropy.algorithms.filters import completion_texts, group_keep, needs_text, response_keep, row_outcomes
from agentropy.algorithms.losses import PolicyInputs
from agentropy.algorithms.memory import (
    StochasticRoundingAdamW,
    as_dtype,
    autocast,
    enable_activation_checkpointing,
    frozen_reference,
    split_lm,
    token_budget_slices,
)
from agentropy.algorithms.registry import ADVANTAGES, POLICY_LOSSES
from agentropy.algorithms.regularizers import EntropyBonus, EntropyTerm, EPORegularizer, KLController
from agentropy.algorithms.replay import SelfImitation
from agentropy.algorithms.value import ValueHead
from agentropy.configs.schema import AlgorithmConfig, PolicyLossConfig
from torch import Tensor, nn

__all__ = ["Learner"]

log = logging.getLogger(__name__)


@dataclass
class _Forward:
    logp: Tensor  # (B, T), 0 outside loss_mask
    entropy: Tensor  # (B, T), 0 outside loss_mask
    values: Tensor | None  # (B, T) from the shared value head


class _Tally:
    """Metric accumulators: weighted means and plain counts; one ``.item()`` each at the end."""

    def __init__(self) -> None:
        self.sums: dict[str, Tensor | float] = {}
        self.weights: dict[str, Tensor | float] = {}
        self.counts: dict[str, float] = {}

    def add(self, name: str, value: Tensor | float, weight: Tensor | float = 1.0) -> None:
        """Add to the weighted mean ``name``: sum(value) / sum(weight)."""
        if isinstance(value, Tensor):
            value = value.detach()
        self.sums[name] = self.sums.get(name, 0.0) + value
        self.weights[name] = self.weights.get(name, 0.0) + weight

    def count(self, name: str, n: float = 1.0) -> None:
        self.counts[name] = self.counts.get(name, 0.0) + n

    def mean(self, name: str) -> float:
        return float(self.sums[name]) / max(float(self.weights[name]), 1e-12)

    def result(self) -> dict[str, float]:
        return {**{name: self.mean(name) for name in self.sums}, **self.counts}


class Learner:
    """Updates a causal LM policy from batches of turn rows.

    Args:
        model: the policy, a Hugging Face causal LM; updated in place.
        cfg: the algorithm.
        total_steps: planned number of :meth:`update` calls (LR schedule, EPO's beta_k).
        max_new_tokens: the generation budget; the divisor of ``seq-mean-token-sum-norm``.
        max_seq_len: the longest row (prompt + completion budget); the replay buffer's width.
        ref_model: the frozen reference for the KL term. When the KL term is on and none is
            given, the learner keeps a frozen copy of ``model`` as it is now, and saves it in its
            ``state_dict``.
        value_model: a separate critic (:class:`agentropy.algorithms.value.Critic`) for estimators that
            need values (``gae``); without one, a value head on the policy's own last hidden
            state is used.
        tokenizer: decodes completions for the ``incomplete`` / ``unreadable`` filters.
        compute_dtype: dtype of the forward and backward passes (``agent.dtype``); narrower
            than the model's (float32 master) weights, they run under autocast where the device
            supports it. None: the model's dtype. Log-probs, entropies and losses stay float32.
    """

    def __init__(
        self,
        model: nn.Module,
        cfg: AlgorithmConfig,
        *,
        total_steps: int,
        max_new_tokens: int,
        max_seq_len: int | None = None,
        ref_model: nn.Module | None = None,
        value_model: nn.Module | None = None,
        tokenizer: Any = None,
        compute_dtype: torch.dtype | str | None = None,
    ) -> None:
        self.model = model
        self.cfg = cfg
        self.total_steps = total_steps
        self.max_new_tokens = max_new_tokens
        self.tokenizer = tokenizer
        self.device = next(model.parameters()).device
        #: (B,) mean token advantage of each row of the last batch given to :meth:`update`, in
        #: its row order (NaN for rows the group filter dropped): for the episode records.
        self.row_advantages: Tensor | None = None
        #: dtype of log-probs, entropies and values: float32, or float64 for a float64 model
        self.float_dtype = torch.promote_types(next(model.parameters()).dtype, torch.float32)
        param_dtype = next(model.parameters()).dtype
        self.compute_dtype = as_dtype(compute_dtype) if compute_dtype is not None else param_dtype
        if cfg.master_weights == "float32" and param_dtype in (torch.bfloat16, torch.float16):
            log.warning("algorithm.master_weights=float32, but the model's weights are %s: load the "
                        "model in float32 (the trainer does) or set master_weights=compute", param_dtype)
        self._checkpointing = cfg.activation_checkpointing and enable_activation_checkpointing(model)
        self.step = 0
        self.generator = torch.Generator(device=self.device)
        self.generator.manual_seed(cfg.seed)

        self.advantage_fn = ADVANTAGES.get(cfg.advantage)
        self.policy_loss_fn = POLICY_LOSSES.get(cfg.policy_loss.name)
        self.replay_loss_fn = POLICY_LOSSES.get(cfg.replay.policy_loss.name)
        self.needs: frozenset[str] = getattr(self.advantage_fn, "needs", frozenset())
        if needs_text(cfg.filters) and tokenizer is None:
            raise ValueError("algorithm.filters.incomplete / unreadable need the learner's tokenizer")

        # The value function (estimators that need values): a separate critic or a shared head.
        self.critic = value_model if "values" in self.needs else None
        self.value_head: ValueHead | None = None
        if "values" in self.needs and value_model is None:
            dtype = next(model.parameters()).dtype
            self.value_head = ValueHead(model.config.hidden_size).to(self.device, dtype)

        # The KL term against a frozen reference.
        self.kl = KLController(cfg.kl)
        self._owns_ref = False
        self.ref_model = ref_model
        if cfg.kl.coef > 0 and ref_model is None:
            ref_device = self.device if cfg.ref_device == "same" else torch.device("cpu")
            self.ref_model = frozen_reference(model, dtype=self.compute_dtype, device=ref_device)
            self._owns_ref = True
        if self.ref_model is not None:
            self.ref_model.requires_grad_(False)

        # The entropy term: EPO's regulariser or the plain bonus.
        self.entropy_term: EntropyTerm = (
            EPORegularizer(cfg.epo, cfg.entropy_coef, total_steps) if cfg.epo.enabled
            else EntropyBonus(cfg.entropy_coef)
        )

        # SPEAR's self-imitation replay, on this device.
        self.replay: SelfImitation | None = None
        if cfg.replay.enabled:
            if max_seq_len is None:
                raise ValueError("algorithm.replay needs max_seq_len (the replay buffer's row width)")
            self.replay = SelfImitation(cfg.replay, max_seq_len, self.device,
                                        norm_by_std=cfg.group.norm_by_std)

        # Optimizers and the LR schedule (stepped once per update, i.e. per global step).
        groups = [{"params": [p for p in model.parameters() if p.requires_grad]}]
        if self.value_head is not None:
            groups.append({"params": list(self.value_head.parameters()), "lr": cfg.ppo.critic_lr,
                           "weight_decay": 0.0})
        pure = cfg.master_weights == "compute" and param_dtype == torch.bfloat16
        optimizer = StochasticRoundingAdamW if pure else torch.optim.AdamW
        self.optimizer = optimizer(groups, lr=cfg.lr, weight_decay=cfg.weight_decay)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, self._lr_factor)
        self.critic_optimizer = self.critic_scheduler = None
        if self.critic is not None:
            self.critic_optimizer = torch.optim.AdamW(self.critic.parameters(), lr=cfg.ppo.critic_lr,
                                                      weight_decay=cfg.weight_decay)
            self.critic_scheduler = torch.optim.lr_scheduler.LambdaLR(self.critic_optimizer,
                                                                      self._lr_factor)
        self._params = [p for g in groups for p in g["params"]]

    def _lr_factor(self, step: int) -> float:
        return F.lr_multiplier(step, self.total_steps, schedule=self.cfg.lr_schedule,
                               warmup_ratio=self.cfg.warmup_ratio, min_lr_ratio=self.cfg.min_lr_ratio)

    # ------------------------------------------------------------------------------------------
    # The update
    # ------------------------------------------------------------------------------------------

    def update(self, batch: TokenBatch) -> dict[str, float]:
        """One global step on ``batch``; returns the metrics (loss parts, entropy, KL, clip
        fraction, grad norm, advantage and replay statistics)."""
        cfg, step = self.cfg, self.step
        tally = _Tally()
        tally.add("actor/lr", self.scheduler.get_last_lr()[0])
        batch = batch.to(self.device)

        # 1. Scores, and the group filter (drops whole groups before any forward pass).
        keep = group_keep(batch, reward_signals(batch, cfg.reward, step).scores, cfg.filters,
                          outcomes=row_outcomes(batch, cfg.reward.outcome))
        tally.add("batch/dropped_rows", float((~keep).sum()))
        kept_rows = torch.nonzero(keep).flatten()
        self.row_advantages = torch.full((batch.batch_size,), float("nan"), device=self.device)
        batch = batch.select(kept_rows)
        signals = reward_signals(batch, cfg.reward, step)
        tally.add("reward/tool_weight", signals.tool_weight)
        if batch.batch_size == 0:
            log.warning("step %d: the group filter left no rows; nothing to learn", step)
            return self._finish(tally, mean_entropy=None, kl=None, rows=0)

        # 2. The old-policy pass: behaviour log-probs, entropies, values, reference log-probs.
        batch, old_entropy = self._old_policy_pass(batch)

        # 3. Advantages.
        adv = self.advantage_fn(batch, cfg, AdvantageInputs(signals, old_entropy, batch.values))
        batch = batch.replace(advantages=adv.advantages, returns=adv.returns)
        mask = batch.loss_mask.to(adv.advantages.dtype)
        self.row_advantages[kept_rows] = ((adv.advantages * mask).sum(-1)
                                          / mask.sum(-1).clamp_min(1.0)).to(self.row_advantages.dtype)

        # 4. Response filters: the row keeps its score, its loss mask is cleared.
        texts = completion_texts(batch, self.tokenizer) if needs_text(cfg.filters) else None
        kept = response_keep(batch, cfg.filters, texts)
        loss_mask = batch.loss_mask & kept[:, None]
        batch = batch.replace(loss_mask=loss_mask, advantages=batch.advantages * loss_mask)
        self._batch_metrics(tally, batch, signals.scores, filtered=int((~kept).sum()))

        # 5. SPEAR: this step's group means join the baseline; replay rows if the trigger fires.
        replay_batch = None
        replay_coef = cfg.replay.loss_coef * F.cosine_rise(step, cfg.replay.loss_steps)
        if self.replay is not None:
            self.replay.record_baseline(step, signals.scores, batch)
            tally.add("replay/size", len(self.replay.buffer))
            tally.add("replay/effective", self.replay.effective_size())
            tally.add("replay/coef", replay_coef)
            replay_batch = self.replay.draw(self.generator)
            tally.add("replay/rows", 0 if replay_batch is None else replay_batch.batch_size)

        # 6. PPO epochs: on-policy mini-batches, then replay chunks; each one optimizer step.
        for _ in range(cfg.ppo_epochs):
            for rows in self._mini_batches(batch.batch_size):
                self._optimizer_step(batch.select(rows), self.policy_loss_fn, cfg.policy_loss,
                                     scale=1.0, use_kl=True, prefix="actor", tally=tally)
            if replay_batch is not None and replay_coef > 0:
                for rows in self._mini_batches(replay_batch.batch_size):
                    self._optimizer_step(replay_batch.select(rows), self.replay_loss_fn,
                                         cfg.replay.policy_loss, scale=replay_coef, use_kl=False,
                                         prefix="replay", tally=tally)

        # 7. Bookkeeping: schedule, KL controller, EPO history, replay admission.
        if self.replay is not None:
            tally.count("replay/admitted", self.replay.admit(batch, signals.scores, step))
        entropy = tally.mean("actor/entropy")
        kl = tally.mean("actor/kl_ref") if "actor/kl_ref" in tally.sums else None
        return self._finish(tally, mean_entropy=entropy, kl=kl, rows=batch.batch_size)

    def _finish(self, tally: _Tally, *, mean_entropy: float | None, kl: float | None,
                rows: int) -> dict[str, float]:
        for name, value in self.entropy_term.metrics(self.step).items():
            tally.add(name, value)
        if mean_entropy is not None:
            self.entropy_term.observe(mean_entropy)
        if kl is not None:
            self.kl.update(kl, rows)
        tally.add("kl/coef", self.kl.coef)
        tally.add("step", self.step)
        self.scheduler.step()
        if self.critic_scheduler is not None:
            self.critic_scheduler.step()
        self.step += 1
        return tally.result()

    # ------------------------------------------------------------------------------------------
    # Pieces of the update
    # ------------------------------------------------------------------------------------------

    @torch.no_grad()
    def _old_policy_pass(self, batch: TokenBatch) -> tuple[TokenBatch, Tensor | None]:
        """Set ``old_logprobs``, ``values`` and ``ref_logprobs``; return old token entropies.

        Nothing is computed that nothing needs: with ``old_logprobs: rollout``, no KL term and
        an estimator that needs neither entropies nor values, there is no extra forward pass.
        """
        recompute = batch.old_logprobs is None and self.cfg.old_logprobs == "recompute"
        want_entropy = "entropy" in self.needs
        want_values = "values" in self.needs
        reference = self.ref_model is not None and self.kl.coef > 0
        policy_pass = recompute or want_entropy or (want_values and self.critic is None)
        if not (policy_pass or want_values or reference):
            return batch.replace(old_logprobs=batch.old_logprobs if batch.old_logprobs is not None
                                 else batch.rollout_logprobs), None

        def zeros() -> Tensor:
            return torch.zeros(batch.input_ids.shape, dtype=self.float_dtype, device=self.device)

        old_lp = zeros() if recompute else None
        entropy = zeros() if want_entropy else None
        values = zeros() if want_values else None
        ref_lp = zeros() if reference else None
        for rows in self._micro_batches(batch.batch_size, batch.attention_mask):
            micro = batch.select(rows).trim()
            w = micro.seq_len
            if policy_pass:
                fw = self._forward(self.model, micro, values=want_values and self.critic is None,
                                   entropy_grad=False)
                if old_lp is not None:
                    old_lp[rows, :w] = fw.logp
                if entropy is not None:
                    entropy[rows, :w] = fw.entropy
                if fw.values is not None:
                    values[rows, :w] = fw.values
            if want_values and self.critic is not None:
                values[rows, :w] = self.critic(micro.input_ids, micro.attention_mask)
            if ref_lp is not None:
                ref_lp[rows, :w] = self._forward(self.ref_model, micro, values=False,
                                                 entropy_grad=False).logp
        if old_lp is None and batch.old_logprobs is None:
            old_lp = batch.rollout_logprobs
        if values is not None:
            values = values * batch.loss_mask
        batch = batch.replace(old_logprobs=old_lp if old_lp is not None else batch.old_logprobs,
                              values=values if values is not None else batch.values,
                              ref_logprobs=ref_lp if ref_lp is not None else batch.ref_logprobs)
        return batch, entropy

    def _forward(self, model: nn.Module, mb: TokenBatch, *, values: bool, entropy_grad: bool) -> _Forward:
        param = next(model.parameters())
        if param.device != self.device:  # the reference model on CPU
            mb = mb.to(param.device)
        lm = split_lm(model) if self.cfg.logit_chunk_tokens > 0 else None
        training = model.training
        if self._checkpointing and torch.is_grad_enabled():
            model.train()  # Hugging Face checkpoints layers in training mode only
        try:
            with autocast(param.device, self.compute_dtype, param.dtype):
                if lm is None:
                    out = model(input_ids=mb.input_ids, attention_mask=mb.attention_mask, use_cache=False,
                                output_hidden_states=values)
                    hidden = out.hidden_states[-1] if values else None
                    logp, entropy = F.token_logprobs_and_entropy(out.logits, mb.input_ids, mb.loss_mask,
                                                                 entropy_grad=entropy_grad)
                else:
                    backbone, head = lm
                    hidden = backbone(input_ids=mb.input_ids, attention_mask=mb.attention_mask,
                                      use_cache=False).last_hidden_state
                    logp, entropy = F.completion_logprobs_and_entropy(
                        hidden, head, mb.input_ids, mb.loss_mask,
                        chunk_tokens=self.cfg.logit_chunk_tokens, entropy_grad=entropy_grad)
        finally:
            model.train(training)
        v = None
        if values:
            v = self.value_head(hidden.to(next(self.value_head.parameters()).dtype)).to(self.float_dtype)
        return _Forward(logp=logp.to(self.device, self.float_dtype),
                        entropy=entropy.to(self.device, self.float_dtype), values=v)

    def _optimizer_step(self, mb: TokenBatch, loss_fn: Callable, loss_cfg: PolicyLossConfig, *,
                        scale: float, use_kl: bool, prefix: str, tally: _Tally) -> None:
        self.optimizer.zero_grad(set_to_none=True)
        if self.critic_optimizer is not None:
            self.critic_optimizer.zero_grad(set_to_none=True)
        self.backward(mb, loss_fn, loss_cfg, scale=scale, use_kl=use_kl, prefix=prefix, tally=tally)
        norm = torch.nn.utils.clip_grad_norm_(self._params, self.cfg.grad_clip)
        if self.critic is not None:
            torch.nn.utils.clip_grad_norm_(self.critic.parameters(), self.cfg.grad_clip)
        if not torch.isfinite(norm):
            log.warning("step %d: non-finite gradient norm; optimizer step skipped", self.step)
            tally.count(f"{prefix}/skipped_steps")
            return
        self.optimizer.step()
        if self.critic_optimizer is not None:
            self.critic_optimizer.step()
        tally.add(f"{prefix}/grad_norm", norm)
        tally.count(f"{prefix}/optimizer_steps")

    def backward(
        self,
        mb: TokenBatch,
        loss_fn: Callable | None = None,
        loss_cfg: PolicyLossConfig | None = None,
        *,
        scale: float = 1.0,
        use_kl: bool = True,
        prefix: str = "actor",
        tally: _Tally | None = None,
    ) -> None:
        """Accumulate the gradient of one mini-batch's loss, micro-batch by micro-batch.

        The mini-batch loss is sum over tokens of w * (policy loss + KL + entropy term) (+ the
        value loss), with w the aggregation weights of the whole mini-batch; each micro-batch
        backpropagates its share, so the accumulated gradient does not depend on the
        micro-batch size.

        Args:
            mb: rows with ``old_logprobs`` and ``advantages`` set (and ``ref_logprobs`` for the
                KL term, ``values`` / ``returns`` for the value loss).
            loss_fn: a registered policy loss (the configured one when None).
            loss_cfg: its settings (``cfg.policy_loss`` when None).
            scale: multiplies the policy, KL and entropy terms (the replay curriculum).
            use_kl: add the KL-to-reference term.
            prefix: metric name prefix.
            tally: where metrics go.
        """
        cfg = self.cfg
        loss_fn = loss_fn or self.policy_loss_fn
        loss_cfg = loss_cfg or cfg.policy_loss
        tally = tally or _Tally()
        mask = mb.loss_mask
        w_policy = F.aggregation_weights(mask, cfg.aggregation, traj_ids=mb.traj_index,
                                         norm_length=self.max_new_tokens)
        w_entropy = w_policy
        if self.entropy_term.aggregation not in (None, cfg.aggregation):
            w_entropy = F.aggregation_weights(mask, self.entropy_term.aggregation,
                                              traj_ids=mb.traj_index, norm_length=self.max_new_tokens)
        w_value = F.aggregation_weights(mask, "token-mean")
        kl_coef = self.kl.coef if use_kl and mb.ref_logprobs is not None else 0.0
        train_values = mb.returns is not None and (self.value_head is not None or self.critic is not None)
        value_coef = cfg.ppo.value_coef if self.critic is None else 1.0
        parts: dict[str, Tensor] = {}  # this mini-batch's loss parts, summed over micro-batches

        for rows in self._micro_batches(mb.batch_size, mb.attention_mask):
            micro = mb.select(rows).trim()
            w = micro.seq_len
            fw = self._forward(self.model, micro, values=train_values and self.critic is None,
                               entropy_grad=self.entropy_term.coef > 0)
            out = loss_fn(PolicyInputs(fw.logp, micro.old_logprobs, micro.advantages,
                                       micro.loss_mask, self.generator), loss_cfg)
            wp = w_policy[rows, :w]
            policy = (out.loss * wp).sum()
            entropy_term = (self.entropy_term.per_token(fw.entropy, self.step) * w_entropy[rows, :w]).sum()
            total = policy + entropy_term
            if kl_coef > 0:
                kl_ref = F.kl_k3(fw.logp, micro.ref_logprobs) * micro.loss_mask
                kl = (kl_ref * wp).sum()
                total = total + kl_coef * kl
                parts["loss_kl"] = parts.get("loss_kl", 0.0) + kl.detach()
                tally.add(f"{prefix}/kl_ref", kl_ref.sum(), micro.loss_mask.sum())
            total = scale * total
            if train_values:
                v = fw.values if self.critic is None else self.critic(micro.input_ids,
                                                                      micro.attention_mask)
                v_loss = F.value_loss(v, micro.values, micro.returns, clip=cfg.ppo.value_clip)
                value = (v_loss * w_value[rows, :w]).sum()
                total = total + value_coef * value
                parts["loss_value"] = parts.get("loss_value", 0.0) + value.detach()
            total.backward()

            parts["loss_policy"] = parts.get("loss_policy", 0.0) + policy.detach()
            parts["loss_entropy"] = parts.get("loss_entropy", 0.0) + entropy_term.detach()
            m = micro.loss_mask
            tally.add(f"{prefix}/entropy", (fw.entropy.detach() * m).sum(), m.sum())
            tally.add(f"{prefix}/ppo_kl", (F.kl_k3(fw.logp.detach(), micro.old_logprobs) * m).sum(),
                      m.sum())
            tally.add(f"{prefix}/clip_frac", out.clipped.sum(), m.sum())
            tally.add(f"{prefix}/cov_frac", out.selected.sum(), m.sum())
        for part, value in parts.items():  # averaged over mini-batches
            tally.add(f"{prefix}/{part}", value)

    def _micro_batches(self, n: int, attention_mask: Tensor | None = None) -> Iterator[slice]:
        lengths = attention_mask.sum(dim=1) if attention_mask is not None else torch.ones(n)
        yield from token_budget_slices(lengths, max_rows=self.cfg.micro_batch_size,
                                       max_tokens=self.cfg.max_tokens_per_micro_batch)

    def _mini_batches(self, n: int) -> Iterator[Tensor]:
        if n == 0:
            return
        if self.cfg.shuffle:
            order = torch.randperm(n, generator=self.generator, device=self.device)
        else:
            order = torch.arange(n, device=self.device)
        yield from order.split(self.cfg.mini_batch_size)

    def _batch_metrics(self, tally: _Tally, batch: TokenBatch, scores: Tensor, *, filtered: int) -> None:
        mask = batch.loss_mask
        tokens = mask.sum()
        adv = batch.advantages[mask]
        tally.add("batch/rows", batch.batch_size)
        tally.add("batch/tokens", tokens)
        tally.add("batch/filtered_rows", filtered)
        tally.add("score/mean", scores.mean())
        if adv.numel():
            tally.add("adv/mean", adv.mean())
            tally.add("adv/std", adv.std() if adv.numel() > 1 else torch.zeros(()))
            tally.add("adv/max", adv.max())
            tally.add("adv/min", adv.min())

    # ------------------------------------------------------------------------------------------
    # Checkpoints and the replay snapshot
    # ------------------------------------------------------------------------------------------

    def replay_snapshot(self) -> list[dict[str, float | int]]:
        """The replay buffer's rows (global step, traj/turn/group ids, advantage, score), for
        ``RUN/replay.jsonl``; empty without replay."""
        return self.replay.buffer.snapshot() if self.replay is not None else []

    def state_dict(self) -> dict[str, Any]:
        """Everything but the policy's own weights (the trainer saves those): optimizer, LR
        schedule, step, random state, entropy history, KL coefficient, replay and baseline
        buffers, the value head or critic, and the reference model if the learner made it."""
        state: dict[str, Any] = {
            "step": self.step,
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "generator": self.generator.get_state(),
            "entropy_term": self.entropy_term.state_dict(),
            "kl": self.kl.state_dict(),
        }
        if self.replay is not None:
            state["replay"] = self.replay.state_dict()
        if self.value_head is not None:
            state["value_head"] = self.value_head.state_dict()
        if self.critic is not None:
            state["critic"] = self.critic.state_dict()
            state["critic_optimizer"] = self.critic_optimizer.state_dict()
            state["critic_scheduler"] = self.critic_scheduler.state_dict()
        if self._owns_ref:
            state["ref_model"] = self.ref_model.state_dict()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.step = int(state["step"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.generator.set_state(state["generator"])
        self.entropy_term.load_state_dict(state["entropy_term"])
        self.kl.load_state_dict(state["kl"])
        if self.replay is not None:
            self.replay.load_state_dict(state["replay"])
        if self.value_head is not None:
            self.value_head.load_state_dict(state["value_head"])
        if self.critic is not None:
            self.critic.load_state_dict(state["critic"])
            self.critic_optimizer.load_state_dict(state["critic_optimizer"])
            self.critic_scheduler.load_state_dict(state["critic_scheduler"])
        if self._owns_ref and "ref_model" in state:
            self.ref_model.load_state_dict(state["ref_model"])

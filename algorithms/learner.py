"""The learner: one update step over a :class:`~agentropy.algorithms.data.TokenBatch`, top to bottom.

``Learner.update(batch)`` does, in order:

1. scores (outcome, tool-call bonus, invalid-action penalty) and the group filter;
2. the old-policy pass without gradients: behaviour log-probs (recomputed, as verl does, or the
   sampler's), token entropies when the estimator needs them, and the columns the parts fill
   (the critic's values, the KL term's reference log-probs);
3. the parts' ``shape_scores`` (ARES adds its entropy reward), then advantages from the
   registered estimator named by ``cfg.advantage``, except on the rows of a trajectory with a
   fixed advantage (the batch's ``fixed_advantage``, e.g. AEPO-T's REINFORCE episodes: the
   value on every completion token; such rows also pass the group filter);
4. the response filters (their rows keep their scores but lose their loss);
5. the parts' ``before_update`` (SPEAR: the baseline, and a replay batch if the trigger fires);
6. PPO epochs of shuffled mini-batches, each one optimizer step: per micro-batch a forward
   pass, the registered policy loss (as the parts' ``token_loss`` rewrite it) and the parts' loss
   terms (entropy, KL, value), weighted by
   the aggregation mode's per-token weights of the whole mini-batch (so micro-batch size and
   gradient accumulation do not change the gradient), backward; then gradient clipping and the
   step. After each epoch's on-policy mini-batches, the parts' extra passes (the replay
   chunks, each its own optimizer step with its own policy loss, scaled by the curriculum);
7. the parts' ``after_update`` (replay admission) and ``end_step`` (EPO's entropy history, the
   KL controller, the critic's schedule), and the LR schedule.

The learner never branches on an algorithm's name or on which parts it has: estimators, losses
and parts come from the registries (:mod:`agentropy.algorithms.registry`), and every part is
called the same way at the same points (:mod:`agentropy.algorithms.parts`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch
from agentropy.algorithms import distributed as dp
from agentropy.algorithms import functional as fn
from agentropy.algorithms.advantages import AdvantageInputs, reward_signals
from agentropy.algorithms.data import TokenBatch
from agentropy.algorithms.filters import group_keep, needs_text, response_filter, row_outcomes
from agentropy.algorithms.losses import PolicyInputs
from agentropy.algorithms.memory import (
    StochasticRoundingAdamW,
    as_dtype,
    autocast,
    enable_activation_checkpointing,
    split_lm,
    token_budget_slices,
)
from agentropy.algorithms.parts import LearnerPart, LossContext, PartContext, RolloutRequest, Tally
from agentropy.algorithms.registry import ADVANTAGES, LEARNER_PARTS, POLICY_LOSSES
from agentropy.configs.parts import names
from agentropy.configs.schema import AlgorithmConfig, PolicyLossConfig
from torch import Tensor, nn

if TYPE_CHECKING:
    from agentropy.agents.backends.base import SamplingParams
    from agentropy.algorithms.data import Trajectory
    from agentropy.algorithms.rollout import BranchRule

__all__ = ["Learner", "LearnerSpec", "UpdateResult"]

log = logging.getLogger(__name__)


@dataclass
class _Forward:
    logp: Tensor  # (B, T), 0 outside loss_mask
    entropy: Tensor  # (B, T), 0 outside loss_mask
    hidden: Tensor | None  # (B, T, H) the last hidden state, when asked for


@dataclass(frozen=True)
class UpdateResult:
    """What one :meth:`Learner.update` gives the trainer to log.

    Attributes:
        metrics: loss parts, entropy, KL, clip fraction, grad norm, advantage and part statistics.
        row_advantages: (B,) mean token advantage of each row of the batch given to ``update``,
            in its row order (NaN for rows the group filter dropped): for the episode records.
        records: row logs of the parts, log name -> rows (``replay``: the replay buffer's rows
            for ``RUN/replay.jsonl``, with the step's newly admitted rows at ``step``).
    """

    metrics: dict[str, float]
    row_advantages: Tensor
    records: Mapping[str, list[dict[str, Any]]] = field(default_factory=dict)


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
        device: where batches and the parts' tensors go; None: the model's parameters' device
            (a sharded model whose parameters are offloaded to the CPU computes elsewhere).

    Attributes:
        parts: the parts the config uses (:mod:`agentropy.algorithms.parts`), by name, in the
            order they are called.
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
        device: torch.device | str | None = None,
    ) -> None:
        self.model = model
        self.cfg = cfg
        self.total_steps = total_steps
        self.max_new_tokens = max_new_tokens
        self.tokenizer = tokenizer
        self.device = torch.device(device) if device is not None else next(model.parameters()).device
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
        #: this process's rank and the number of data-parallel ranks (a model sharded with FSDP2
        #: trains over its process group: :mod:`agentropy.algorithms.distributed`)
        self.rank, self.world = dp.data_parallel_world(model)

        self.advantage_fn = ADVANTAGES.get(cfg.advantage)
        self.policy_loss_fn = POLICY_LOSSES.get(cfg.policy_loss.name)
        self.needs: frozenset[str] = getattr(self.advantage_fn, "needs", frozenset())
        if needs_text(cfg.filters) and tokenizer is None:
            raise ValueError("algorithm.filters.incomplete / unreadable need the learner's tokenizer")

        # The parts the config asks for, in catalogue order (agentropy.configs.parts).
        ctx = PartContext(model=model, device=self.device, total_steps=total_steps, max_seq_len=max_seq_len,
                          needs=self.needs, generator=self.generator, lr_factor=self._lr_factor,
                          ref_model=ref_model, value_model=value_model, forward=self._forward,
                          compute_dtype=self.compute_dtype, tokenizer=tokenizer)
        built = {name: LEARNER_PARTS.get(name)(cfg, ctx) for name in names("learner part")}
        #: name -> part, for the parts this config uses
        self.parts: dict[str, LearnerPart] = {k: v for k, v in built.items() if v is not None}
        self._requesters: list[LearnerPart] = []  # the parts whose extra rollouts are out

        # The optimizer and the LR schedule (stepped once per update, i.e. per global step).
        # Pure bf16 weights (master_weights=compute) get stochastic rounding in the update.
        groups = [{"params": [p for p in model.parameters() if p.requires_grad]}]
        groups += [g for part in self.parts.values() for g in part.param_groups()]
        pure = cfg.master_weights == "compute" and param_dtype == torch.bfloat16
        optimizer = StochasticRoundingAdamW if pure else torch.optim.AdamW
        self.optimizer = optimizer(groups, lr=cfg.lr, weight_decay=cfg.weight_decay)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, self._lr_factor)
        self._params = [p for g in groups for p in g["params"]]

    def _lr_factor(self, step: int) -> float:
        return fn.lr_multiplier(step, self.total_steps, schedule=self.cfg.lr_schedule,
                               warmup_ratio=self.cfg.warmup_ratio, min_lr_ratio=self.cfg.min_lr_ratio)

    # ------------------------------------------------------------------------------------------
    # The update
    # ------------------------------------------------------------------------------------------

    def update(self, batch: TokenBatch, labels: Sequence[str] | None = None) -> UpdateResult:
        """One global step on ``batch``.

        Args:
            batch: the step's rows.
            labels: a name for each trajectory (``labels[traj_index]``; the trainer passes the
                episode ids), carried into the parts' records.

        Returns:
            The metrics, the per-row advantages and the parts' records (:class:`UpdateResult`).
        """
        cfg, step = self.cfg, self.step
        parts = list(self.parts.values())
        tally = Tally()
        tally.add("actor/lr", self.scheduler.get_last_lr()[0])
        batch = batch.to(self.device)

        # 1. Scores, and the group filter (drops whole groups before any forward pass).
        scores = reward_signals(batch, cfg.reward, step).scores
        signal = fn.signal_group_fraction(scores, batch.traj_index, batch.group_index)
        tally.add("batch/signal_groups", signal)  # the groups with any reward variance
        keep = group_keep(batch, scores, cfg.filters, outcomes=row_outcomes(batch, cfg.reward.outcome))
        if batch.fixed_advantage is not None:  # a fixed advantage needs no group signal
            keep |= ~torch.isnan(batch.fixed_advantage)
        tally.add("batch/dropped_rows", float((~keep).sum()))
        kept_rows = torch.nonzero(keep).flatten()
        row_advantages = torch.full((batch.batch_size,), float("nan"), device=self.device)
        batch = batch.select(kept_rows)
        signals = reward_signals(batch, cfg.reward, step)
        tally.add("reward/tool_weight", signals.tool_weight)
        if batch.batch_size == 0:
            log.warning("step %d: the group filter left no rows; nothing to learn", step)
            return self._finish(tally, row_advantages, rows=0)

        # 2. The old-policy pass: behaviour log-probs, entropies, the parts' columns.
        batch, old_entropy = self._old_policy_pass(batch)

        # 3. Advantages, from the scores as the parts shape them (ARES's entropy reward).
        for part in parts:
            batch, signals = part.shape_scores(batch, signals, step, tally)
        adv = self.advantage_fn(batch, cfg, AdvantageInputs(signals, old_entropy, batch.values))
        advantages = adv.advantages
        if batch.fixed_advantage is not None:  # rows of trajectories with a fixed advantage (AEPO-T)
            advantages = fn.with_fixed_advantages(advantages, batch.fixed_advantage, batch.loss_mask)
        batch = batch.replace(advantages=advantages, returns=adv.returns)
        mask = batch.loss_mask.to(advantages.dtype)
        row_advantages[kept_rows] = ((advantages * mask).sum(-1)
                                     / mask.sum(-1).clamp_min(1.0)).to(row_advantages.dtype)

        # 4. Response filters: the row keeps its score, its loss mask is cleared.
        kept = response_filter(batch, cfg.filters, self.tokenizer)
        loss_mask = batch.loss_mask & kept[:, None]
        batch = batch.replace(loss_mask=loss_mask, advantages=batch.advantages * loss_mask)
        self._batch_metrics(tally, batch, signals.scores, filtered=int((~kept).sum()))

        # 5. The parts see the step's rows (SPEAR: baseline, replay draw).
        for part in parts:
            part.before_update(batch, signals, step, tally, labels)
        extra = [p for part in parts for p in part.extra_passes()]

        # 6. PPO epochs: on-policy mini-batches, then the parts' extra passes; each one optimizer step.
        for _ in range(cfg.ppo_epochs):
            for rows in self._mini_batches(batch.batch_size):
                self._optimizer_step(batch.select(rows), self.policy_loss_fn, cfg.policy_loss,
                                     scale=1.0, prefix="actor", tally=tally)
            for more in extra:
                for rows in self._mini_batches(more.batch.batch_size):
                    self._optimizer_step(more.batch.select(rows), more.loss_fn, more.loss_cfg,
                                         scale=more.scale, prefix=more.prefix, tally=tally)

        # 7. The parts' bookkeeping (SPEAR: admission), then the end of the step.
        for part in parts:
            part.after_update(batch, signals, step, tally)
        return self._finish(tally, row_advantages, rows=batch.batch_size)

    def _finish(self, tally: Tally, row_advantages: Tensor, *, rows: int) -> UpdateResult:
        for part in self.parts.values():
            part.end_step(self.step, tally, rows)
        tally.add("step", self.step)
        self.scheduler.step()
        self.step += 1
        return UpdateResult(metrics=tally.result(), row_advantages=row_advantages, records=self.records())

    def records(self) -> dict[str, list[dict[str, Any]]]:
        """The parts' row logs as they are now (log name -> rows; empty without such parts)."""
        return {name: rows for part in self.parts.values() for name, rows in part.records().items()}

    def rollout_sampling(self, sampling: SamplingParams) -> SamplingParams:
        """The next training rollout's sampling parameters, ``sampling`` as the parts change it
        (:meth:`~agentropy.algorithms.parts.LearnerPart.rollout_sampling`, in order)."""
        for part in self.parts.values():
            sampling = part.rollout_sampling(sampling)
        return sampling

    def rollout_requests(self, num_tasks: int, group_size: int) -> list[RolloutRequest]:
        """The extra rollouts the parts ask for after the main rollout of ``num_tasks`` tasks x
        ``group_size`` episodes (:meth:`LearnerPart.rollout_request`, e.g. AEPO-T's tempered
        episodes), in part order. Changes the parts' state (they note the round). Every part is
        asked before any extra rollout is played (no two parts of today's catalogue ask)."""
        requests = [(part, part.rollout_request(num_tasks, group_size)) for part in self.parts.values()]
        self._requesters = [part for part, request in requests if request is not None]
        return [request for _, request in requests if request is not None]

    def merge_rollouts(self, main: list[Trajectory], extras: Sequence[list[Trajectory]]) -> list[Trajectory]:
        """The episodes to train on: ``main`` merged with the finished episodes of each extra
        rollout of :meth:`rollout_requests` (``extras[k]`` answers the k-th request), by the part
        that asked, in order (:meth:`LearnerPart.merge_rollouts`). Changes the parts' state."""
        if len(extras) != len(self._requesters):
            raise ValueError(f"{len(extras)} extra rollouts for {len(self._requesters)} requests")
        for part, extra in zip(self._requesters, extras, strict=True):
            main = part.merge_rollouts(main, extra)
        self._requesters = []
        return main

    def branch_rule(self) -> BranchRule | None:
        """The branching rollout a part asks of the collector (:meth:`LearnerPart.branch_rule`), or
        None; two parts cannot both branch the rollout."""
        rules = [rule for part in self.parts.values() if (rule := part.branch_rule()) is not None]
        if len(rules) > 1:
            raise ValueError(f"{len(rules)} learner parts each give a branching rollout; at most one may")
        return rules[0] if rules else None

    # ------------------------------------------------------------------------------------------
    # Pieces of the update
    # ------------------------------------------------------------------------------------------

    @torch.no_grad()
    def _old_policy_pass(self, batch: TokenBatch) -> tuple[TokenBatch, Tensor | None]:
        """Set ``old_logprobs`` and the parts' columns (``values``, ``ref_logprobs``); return old
        token entropies.

        Nothing is computed that nothing needs: with ``old_logprobs: rollout``, no part column
        and an estimator that needs no entropies, there is no extra forward pass.
        """
        parts = list(self.parts.values())
        recompute = batch.old_logprobs is None and self.cfg.old_logprobs == "recompute"
        want_entropy = "entropy" in self.needs
        hidden = any(part.old_hidden() for part in parts)
        columns = [name for part in parts for name in part.old_columns()]
        policy_pass = recompute or want_entropy or hidden
        if not (policy_pass or columns):
            return batch.replace(old_logprobs=batch.old_logprobs if batch.old_logprobs is not None
                                 else batch.rollout_logprobs), None

        def zeros() -> Tensor:
            return torch.zeros(batch.input_ids.shape, dtype=self.float_dtype, device=self.device)

        old_lp = zeros() if recompute else None
        entropy = zeros() if want_entropy else None
        filled = {name: zeros() for name in columns}
        for rows in self._micro_batches(batch.batch_size, batch.attention_mask):
            micro = batch.select(rows).trim()
            w = micro.seq_len
            fw = None
            if policy_pass:
                fw = self._forward(self.model, micro, hidden=hidden, entropy_grad=False)
                if old_lp is not None:
                    old_lp[rows, :w] = fw.logp
                if entropy is not None:
                    entropy[rows, :w] = fw.entropy
            for part in parts:
                for name, value in part.old_pass(micro, fw).items():
                    filled[name][rows, :w] = value
        if old_lp is None and batch.old_logprobs is None:
            old_lp = batch.rollout_logprobs
        batch = batch.replace(old_logprobs=old_lp if old_lp is not None else batch.old_logprobs, **filled)
        return batch, entropy

    def _forward(self, model: nn.Module, mb: TokenBatch, *, hidden: bool, entropy_grad: bool) -> _Forward:
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
                                output_hidden_states=hidden)
                    h = out.hidden_states[-1] if hidden else None
                    logp, entropy = fn.token_logprobs_and_entropy(out.logits, mb.input_ids, mb.loss_mask,
                                                                  entropy_grad=entropy_grad)
                else:
                    backbone, head = lm
                    h = backbone(input_ids=mb.input_ids, attention_mask=mb.attention_mask,
                                 use_cache=False).last_hidden_state
                    logp, entropy = fn.completion_logprobs_and_entropy(
                        h, head, mb.input_ids, mb.loss_mask,
                        chunk_tokens=self.cfg.logit_chunk_tokens, entropy_grad=entropy_grad)
                    h = h if hidden else None
        finally:
            model.train(training)
        return _Forward(logp=logp.to(self.device, self.float_dtype),
                        entropy=entropy.to(self.device, self.float_dtype),
                        hidden=h.to(self.device) if h is not None else None)

    def _optimizer_step(self, mb: TokenBatch, loss_fn: Callable, loss_cfg: PolicyLossConfig, *,
                        scale: float, prefix: str, tally: Tally) -> None:
        parts = list(self.parts.values())
        self.optimizer.zero_grad(set_to_none=True)
        for part in parts:
            part.zero_grad()
        self.backward(mb, loss_fn, loss_cfg, scale=scale, prefix=prefix, tally=tally)
        if self.world > 1:
            dp.average_replicated_grads(self._params)
        norm = dp.clip_grad_norm(self._params, self.cfg.grad_clip, ranks=self.world > 1)
        for part in parts:
            part.clip_grad(self.cfg.grad_clip)
        if not torch.isfinite(norm):
            log.warning("step %d: non-finite gradient norm; optimizer step skipped", self.step)
            tally.count(f"{prefix}/skipped_steps")
            return
        self.optimizer.step()
        for part in parts:
            part.optimizer_step()
        tally.add(f"{prefix}/grad_norm", norm)
        tally.count(f"{prefix}/optimizer_steps")

    def _weights(self, mb: TokenBatch, mode: str) -> Tensor:
        return fn.aggregation_weights(mb.loss_mask, mode, traj_ids=mb.traj_index,
                                      norm_length=self.max_new_tokens)

    def backward(
        self,
        mb: TokenBatch,
        loss_fn: Callable | None = None,
        loss_cfg: PolicyLossConfig | None = None,
        *,
        scale: float = 1.0,
        prefix: str = "actor",
        tally: Tally | None = None,
    ) -> None:
        """Accumulate the gradient of one mini-batch's loss, micro-batch by micro-batch.

        The mini-batch loss is sum over tokens of w * (policy loss + the parts' scaled terms:
        entropy, KL) (+ their unscaled terms: the value loss), with w the aggregation weights of
        the whole mini-batch; each micro-batch backpropagates its share, so the accumulated
        gradient does not depend on the micro-batch size.

        Args:
            mb: rows with ``old_logprobs`` and ``advantages`` set (and ``ref_logprobs`` for the
                KL term, ``values`` / ``returns`` for the value loss).
            loss_fn: a registered policy loss (the configured one when None).
            loss_cfg: its settings (``cfg.policy_loss`` when None).
            scale: multiplies the policy loss and the scaled terms (the replay curriculum).
            prefix: metric name prefix.
            tally: where metrics go.
        """
        cfg = self.cfg
        parts = list(self.parts.values())
        loss_fn = loss_fn or self.policy_loss_fn
        loss_cfg = loss_cfg or cfg.policy_loss
        tally = tally or Tally()
        # With several ranks the micro-batches' metrics are summed over the ranks at the end.
        local = Tally() if self.world > 1 else tally
        ctx = LossContext(mb, step=self.step, prefix=prefix, tally=local, policy_mode=cfg.aggregation,
                          make_weights=self._weights, loss_cfg=loss_cfg)
        entropy_grad = any(part.entropy_grad for part in parts)
        sums: dict[str, Tensor] = {}  # this mini-batch's loss parts, summed over micro-batches
        slices = list(self._micro_batches(mb.batch_size, mb.attention_mask))
        # One random source per micro-batch (Clip-Cov's picks), drawn the same on every rank.
        seeds = torch.randint(0, 2**62, (len(slices),), generator=self.generator,
                              device=self.generator.device).tolist()

        for k in dp.share_of(len(slices), self.rank, self.world):
            if k is None:  # this rank's share is shorter: join the collectives with zero loss
                fw = self._forward(self.model, mb.select(slice(0, 1)).trim(), hidden=False,
                                   entropy_grad=False)
                (fw.logp.sum() * 0.0).backward()
                continue
            rows = slices[k]
            micro = mb.select(rows).trim()
            w = micro.seq_len
            fw = self._forward(self.model, micro, hidden=any(part.wants_hidden(micro) for part in parts),
                               entropy_grad=entropy_grad)
            generator = torch.Generator(device=self.generator.device).manual_seed(seeds[k])
            out = loss_fn(PolicyInputs(fw.logp, micro.old_logprobs, micro.advantages,
                                       micro.loss_mask, generator), loss_cfg)
            token_loss = out.loss
            for part in parts:
                token_loss = part.token_loss(ctx, rows, micro, fw, token_loss)
            policy = (token_loss * ctx.weights()[rows, :w]).sum()
            terms = [t for part in parts for t in part.loss_terms(ctx, rows, micro, fw)]
            total = policy
            for term in (t for t in terms if t.scaled):
                total = total + term.coef * term.value
            total = scale * total
            for term in (t for t in terms if not t.scaled):
                total = total + term.coef * term.value
            # FSDP2 averages the ranks' gradients: the world size makes it their sum.
            (total * self.world if self.world > 1 else total).backward()

            sums["loss_policy"] = sums.get("loss_policy", 0.0) + policy.detach()
            for term in terms:
                sums[term.name] = sums.get(term.name, 0.0) + term.value.detach()
            m = micro.loss_mask
            local.add(f"{prefix}/entropy", (fw.entropy.detach() * m).sum(), m.sum())
            local.add(f"{prefix}/ppo_kl", (fn.kl_k3(fw.logp.detach(), micro.old_logprobs) * m).sum(),
                      m.sum())
            local.add(f"{prefix}/clip_frac", out.clipped.sum(), m.sum())
            local.add(f"{prefix}/cov_frac", out.selected.sum(), m.sum())
        if self.world > 1:
            dp.reduce_tally(local, tally)
            sums = dp.reduce_sums(sums)
        for name, value in sums.items():  # averaged over mini-batches
            tally.add(f"{prefix}/{name}", value)

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

    def _batch_metrics(self, tally: Tally, batch: TokenBatch, scores: Tensor, *, filtered: int) -> None:
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
    # Checkpoints
    # ------------------------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """Everything but the policy's own weights (the trainer saves those): optimizer, LR
        schedule, step, random state, and each part's entries (entropy history, KL coefficient
        and a reference model the learner made, replay and baseline buffers, the value head or
        critic). A sharded learner gives the same single-process format (full tensors; a
        collective: every rank calls it), so a checkpoint resumes with any number of ranks."""
        state: dict[str, Any] = {
            "step": self.step,
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "generator": self.generator.get_state(),
        }
        for part in self.parts.values():
            state.update(part.state_dict())
        return dp.full_state(state) if self.world > 1 else state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Take :meth:`state_dict`'s format (a sharded learner: on every rank)."""
        self.step = int(state["step"])
        optimizer = state["optimizer"]
        if self.world > 1:
            optimizer = dp.shard_optimizer_state(self.optimizer, optimizer)
        self.optimizer.load_state_dict(optimizer)
        self.scheduler.load_state_dict(state["scheduler"])
        self.generator.set_state(state["generator"])
        for part in self.parts.values():
            part.load_state_dict(state)


@dataclass(frozen=True)
class LearnerSpec:
    """What it takes to build the run's learner, in the driver or in a rank.

    Attributes:
        algorithm: the algorithm config.
        model_path: the policy's folder (or hub name), as the driver loaded it.
        master_dtype: the trained weights' dtype (``float32``, or ``agent.dtype`` with
            ``master_weights=compute``).
        compute_dtype: ``agent.dtype``.
        total_steps, max_new_tokens, max_seq_len: as :class:`Learner` takes them.
        seed: the run's seed (a rank seeds its global RNGs with it).
    """

    algorithm: AlgorithmConfig
    model_path: str
    master_dtype: str
    compute_dtype: str
    total_steps: int
    max_new_tokens: int
    max_seq_len: int
    seed: int

    def build(self, model: nn.Module, tokenizer: Any, device: torch.device | None = None) -> Learner:
        """The learner of ``model`` (sharded or not; ``device``: where it computes, when its
        parameters live elsewhere)."""
        return Learner(model, self.algorithm, total_steps=self.total_steps,
                       max_new_tokens=self.max_new_tokens, max_seq_len=self.max_seq_len,
                       tokenizer=tokenizer, compute_dtype=self.compute_dtype, device=device)

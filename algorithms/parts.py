"""The learner's optional parts and the one protocol they share.

A part is an object the learner builds from the config and calls at fixed points of every
update; it never branches on which parts it has. The parts of this repository, each in the
module that owns it: the entropy terms (the plain bonus and the KL-to-reference term in
:mod:`agentropy.algorithms.regularizers`, EPO's in :mod:`agentropy.algorithms.epo`), PPO's
critic (:mod:`agentropy.algorithms.value`) and SPEAR's self-imitation replay
(:mod:`agentropy.algorithms.replay`). A new part is a class with the hooks it needs, a factory
registered in :data:`agentropy.algorithms.registry.LEARNER_PARTS` and one line in
:data:`agentropy.configs.parts.CATALOGUE`.

The entropy interventions of :mod:`agentropy.algorithms.entropy_parts` (SIREN, STEER, Lp-Reg,
HAPO's loss side, AEPO-A's optimisation, AEPO-T's tempered REINFORCE episodes) are parts too;
CANON and HAPO's token-level advantage are advantage estimators
(:mod:`agentropy.algorithms.advantages`).

Before the update, the trainer (:mod:`agentropy.algorithms.train`) asks each part whether it wants
an extra rollout in the same iteration: :meth:`LearnerPart.rollout_request` returns a
:class:`RolloutRequest` (some of the iteration's tasks, episodes per task, a sampling
temperature) or None; the trainer plays it on the same pool after the main rollout, and
:meth:`LearnerPart.merge_rollouts` turns the main and the extra episodes into the episodes the
update trains on (AEPO-T puts its tempered REINFORCE episodes in place of main ones). A
trajectory may carry a fixed advantage (``Trajectory.fixed_advantage``, the batch's
``fixed_advantage`` column): the learner keeps its rows through the group filter and trains
every completion token of them with that advantage instead of the estimator's.

The fixed points of ``Learner.update``, in order:

1. the old-policy pass (no gradient): :meth:`LearnerPart.old_columns` names the batch columns a
   part fills, :meth:`LearnerPart.old_hidden` asks the policy's forward for its last hidden
   state, and :meth:`LearnerPart.old_pass` returns the columns of one micro-batch;
2. after the old-policy pass, before the advantages: :meth:`LearnerPart.shape_scores` (ARES adds
   its entropy reward to the scores and sets a per-token KL weight column);
   after the advantages and filters: :meth:`LearnerPart.before_update`;
3. per optimizer step: :meth:`LearnerPart.zero_grad`; per micro-batch
   :meth:`LearnerPart.wants_hidden` / ``entropy_grad`` shape the forward pass,
   :meth:`LearnerPart.token_loss` rewrites the registered policy loss's per-token matrix before
   it is aggregated (a per-token weight, a different surrogate or clip range on some or all
   tokens; the parts in order, each given the previous one's matrix) and
   :meth:`LearnerPart.loss_terms` adds terms to the loss; then :meth:`LearnerPart.clip_grad` and,
   if the step is taken, :meth:`LearnerPart.optimizer_step`;
4. after each epoch's on-policy mini-batches: the :meth:`LearnerPart.extra_passes` (replay);
5. :meth:`LearnerPart.after_update` (the step's rows with their advantages), then
   :meth:`LearnerPart.end_step` (also when the group filter left no rows).

Between updates, :meth:`LearnerPart.rollout_sampling` may change the next training rollout's
sampling parameters (HAPO's per-token temperature rule from the last update's statistics).

Checkpoints: :meth:`LearnerPart.state_dict` returns top-level entries of the learner's state.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from agentropy.algorithms.data import TokenBatch, Trajectory
from torch import Tensor, nn

if TYPE_CHECKING:
    from agentropy.agents.backends.base import SamplingParams
    from agentropy.algorithms.advantages import RewardSignals
    from agentropy.algorithms.rollout import BranchRule
    from agentropy.configs.schema import PolicyLossConfig

__all__ = ["ExtraPass", "LearnerPart", "LossContext", "LossTerm", "PartContext", "RolloutRequest", "Tally"]


class Tally:
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

    def get(self, name: str) -> float | None:
        """The weighted mean ``name``, or None if nothing was added to it."""
        return self.mean(name) if name in self.sums else None

    def result(self) -> dict[str, float]:
        return {**{name: self.mean(name) for name in self.sums}, **self.counts}


@dataclass(frozen=True)
class PartContext:
    """What a part factory may use besides the config.

    Attributes:
        model: the policy being trained.
        device: the training device.
        total_steps: planned number of updates.
        max_seq_len: the longest row (prompt + completion budget), or None.
        needs: what the advantage estimator needs from the old-policy pass (``values``,
            ``entropy``).
        generator: the learner's random source.
        lr_factor: the learner's LR schedule, step -> factor.
        ref_model: a frozen reference model given to the learner, or None.
        value_model: a separate critic given to the learner, or None.
        forward: the learner's forward pass ``(model, micro_batch, *, hidden, entropy_grad)``.
        compute_dtype: the dtype the forward passes run in (a reference copy is stored in it).
        tokenizer: the policy's tokenizer, or None when the learner was given none.
    """

    model: nn.Module
    device: torch.device
    total_steps: int
    max_seq_len: int | None
    needs: frozenset[str]
    generator: torch.Generator
    lr_factor: Callable[[int], float]
    ref_model: nn.Module | None = None
    value_model: nn.Module | None = None
    forward: Callable[..., Any] | None = None
    compute_dtype: torch.dtype | None = None
    tokenizer: Any = None


@dataclass(frozen=True)
class LossTerm:
    """One term a part adds to a micro-batch's loss.

    The micro-batch loss is ``scale x (policy + sum of scaled terms' coef x value) + sum of the
    other terms' coef x value``, summed in the parts' order; ``value`` is also logged, summed
    over micro-batches, as ``<prefix>/<name>``.

    Attributes:
        name: metric name under the pass's prefix, e.g. ``loss_kl``.
        value: the aggregated term (a scalar with gradient).
        coef: its weight in the loss.
        scaled: multiplied by the pass's scale (the replay curriculum) like the policy loss.
    """

    name: str
    value: Tensor
    coef: float = 1.0
    scaled: bool = True


class LossContext:
    """One mini-batch of one pass, as the loss terms see it.

    Attributes:
        mb: the mini-batch.
        step: the global step.
        prefix: metric prefix of the pass (``actor``, ``replay``).
        tally: where metrics go.
        loss_cfg: the pass's policy-loss settings (clip ranges, dual clip), or None.
    """

    def __init__(self, mb: TokenBatch, *, step: int, prefix: str, tally: Tally, policy_mode: str,
                 make_weights: Callable[[TokenBatch, str], Tensor],
                 loss_cfg: PolicyLossConfig | None = None) -> None:
        self.mb, self.step, self.prefix, self.tally = mb, step, prefix, tally
        self.loss_cfg = loss_cfg
        self._policy_mode = policy_mode
        self._make_weights = make_weights
        self._weights: dict[str, Tensor] = {}

    def weights(self, mode: str | None = None) -> Tensor:
        """(N, T) aggregation weights of the whole mini-batch for ``mode`` (None: the policy
        loss's mode), computed once per mode."""
        mode = mode or self._policy_mode
        if mode not in self._weights:
            self._weights[mode] = self._make_weights(self.mb, mode)
        return self._weights[mode]


@dataclass(frozen=True)
class ExtraPass:
    """Extra optimizer steps on rows a part supplies (each mini-batch one step).

    Attributes:
        batch: rows with ``old_logprobs`` and ``advantages`` set.
        loss_fn: a registered policy loss.
        loss_cfg: its settings.
        scale: multiplies the policy loss and the scaled terms.
        prefix: metric prefix.
    """

    batch: TokenBatch
    loss_fn: Callable
    loss_cfg: PolicyLossConfig
    scale: float
    prefix: str


@dataclass(frozen=True)
class RolloutRequest:
    """An extra rollout a part asks the trainer for, played after the iteration's main one.

    Attributes:
        tasks: indices into the iteration's tasks, in the order to play them; each becomes a
            group of its own (group ids apart from the main rollout's).
        group_size: episodes per task.
        temperature: the sampling temperature of these episodes (top-p and the token budget stay
            the agent's; no part's :meth:`LearnerPart.rollout_sampling` rule applies to them).
    """

    tasks: tuple[int, ...]
    group_size: int
    temperature: float


class LearnerPart:
    """The protocol: every hook has a default that does nothing; a part overrides what it uses.

    Attributes:
        entropy_grad: the training forward pass must give token entropies a gradient.
    """

    entropy_grad: bool = False

    # -- optimizer ---------------------------------------------------------------------------
    def param_groups(self) -> list[dict[str, Any]]:
        """Parameter groups to add to the policy's optimizer (their params are clipped with it)."""
        return []

    def zero_grad(self) -> None:
        """Before each optimizer step's backward passes."""

    def clip_grad(self, max_norm: float) -> None:
        """After the policy's gradient is clipped."""

    def optimizer_step(self) -> None:
        """After the policy's optimizer step (skipped with it on a non-finite gradient)."""

    # -- the rollout (called by the trainer, before the update) ------------------------------
    def rollout_request(self, num_tasks: int, group_size: int) -> RolloutRequest | None:
        """After the iteration's main rollout of ``num_tasks`` tasks x ``group_size`` episodes:
        an extra rollout on the same pool, or None (the default)."""
        return None

    def merge_rollouts(self, main: list[Trajectory], extra: list[Trajectory]) -> list[Trajectory]:
        """The episodes the update trains on, from the main rollout's and this part's extra
        rollout's finished (not failed) episodes, each list in task-major order; called only
        after a request. The trainer collates the result as returned."""
        return main

    # -- the old-policy pass -----------------------------------------------------------------
    def old_columns(self) -> Sequence[str]:
        """``TokenBatch`` columns this part fills in the old-policy pass (e.g. ``values``)."""
        return ()

    def old_hidden(self) -> bool:
        """The old-policy pass must run the policy and keep its last hidden state."""
        return False

    def old_pass(self, micro: TokenBatch, fw: Any) -> dict[str, Tensor]:
        """The columns of :meth:`old_columns` for one micro-batch, (n, w) each, 0 outside its
        ``loss_mask``. ``fw`` is the policy's no-grad forward (or None when none ran)."""
        return {}

    # -- the update --------------------------------------------------------------------------
    def shape_scores(self, batch: TokenBatch, signals: RewardSignals, step: int,
                     tally: Tally) -> tuple[TokenBatch, RewardSignals]:
        """After the old-policy pass (``batch`` has ``old_logprobs`` and the parts' columns),
        before the advantages: the signals the advantage estimator sees, and the batch with any
        columns this part sets for the passes (e.g. ``kl_weight``; AEPO-T sets the behaviour
        log-probs of its REINFORCE rows). The parts in order, each given
        the previous one's result; the default returns both unchanged."""
        return batch, signals

    def before_update(self, batch: TokenBatch, signals: RewardSignals, step: int, tally: Tally,
                      labels: Sequence[str] | None) -> None:
        """After advantages and filters: ``batch`` has ``advantages`` and ``old_logprobs``.
        ``labels`` names each trajectory (``labels[traj_index]``), e.g. the episode ids."""

    def extra_passes(self) -> list[ExtraPass]:
        """Rows to train on after each epoch's on-policy mini-batches."""
        return []

    def wants_hidden(self, micro: TokenBatch) -> bool:
        """The training forward of ``micro`` must keep the policy's last hidden state."""
        return False

    def token_loss(self, ctx: LossContext, rows: slice, micro: TokenBatch, fw: Any, loss: Tensor) -> Tensor:
        """The per-token policy loss (n, w) of ``micro`` as this part changes it; ``loss`` is the
        registered policy loss's matrix (or the previous part's result). The learner aggregates
        the result with the policy loss's weights; the default returns ``loss`` unchanged."""
        return loss

    def loss_terms(self, ctx: LossContext, rows: slice, micro: TokenBatch, fw: Any) -> list[LossTerm]:
        """Terms to add to the loss of ``micro`` (rows ``rows`` of ``ctx.mb``)."""
        return []

    def after_update(self, batch: TokenBatch, signals: RewardSignals, step: int, tally: Tally) -> None:
        """After the optimizer steps, with the same ``batch`` as :meth:`before_update`."""

    def end_step(self, step: int, tally: Tally, rows: int) -> None:
        """Last hook of every update (``rows`` trained on; 0 when the group filter left none);
        the tally holds the step's metrics so far (``actor/entropy``, ``actor/kl_ref``)."""

    # -- the next rollout ----------------------------------------------------------------------
    def rollout_sampling(self, sampling: SamplingParams) -> SamplingParams:
        """The sampling parameters of the next training rollout as this part changes them (the
        parts in order, each given the previous one's result; evaluation keeps its own). The
        default returns ``sampling`` unchanged."""
        return sampling

    def branch_rule(self) -> BranchRule | None:
        """A branching rollout the trainer gives the collector (AEPO-A's entropy-balanced one;
        :class:`agentropy.algorithms.rollout.BranchRule`); None: episodes start from the reset."""
        return None

    # -- what the trainer logs and checkpoints -------------------------------------------------
    def records(self) -> dict[str, list[dict[str, Any]]]:
        """Row logs for the run folder: log name -> rows (e.g. ``replay`` -> ``replay.jsonl``)."""
        return {}

    def state_dict(self) -> dict[str, Any]:
        """Top-level entries of the learner's checkpoint state."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Read this part's entries from the learner's state."""

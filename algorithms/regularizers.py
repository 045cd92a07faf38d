"""The learner's regularising parts: the entropy term and the KL-to-reference term.

The entropy terms share one interface (:class:`EntropyTerm`: the plain bonus here, EPO's
smoothing in :mod:`agentropy.algorithms.epo`); :class:`EntropyPart` adds whichever one it holds
to the loss, as a :class:`~agentropy.algorithms.parts.LearnerPart`. :class:`KLPart` holds the
frozen reference and the :class:`KLController`. Each object has explicit state and
``state_dict()`` / ``load_state_dict()`` for checkpoints.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

import torch
from agentropy.algorithms.distributed import data_parallel_world
from agentropy.algorithms.functional import kl_k3
from agentropy.algorithms.memory import frozen_reference
from agentropy.algorithms.parts import LearnerPart, LossContext, LossTerm, PartContext, Tally
from agentropy.algorithms.registry import LEARNER_PARTS
from torch import Tensor

if TYPE_CHECKING:
    from agentropy.algorithms.data import TokenBatch
    from agentropy.configs.schema import AlgorithmConfig, KLConfig

__all__ = ["KL_WEIGHT", "EntropyBonus", "EntropyPart", "EntropyTerm", "KLController", "KLPart"]


class EntropyTerm(Protocol):
    """A per-token loss term on token entropies.

    Attributes:
        coef: its weight (lambda); 0 means the entropies need no gradient.
        aggregation: the aggregation mode of the term, or None for the policy loss's mode.
    """

    coef: float
    aggregation: str | None

    def per_token(self, entropy: Tensor, step: int) -> Tensor:
        """(N, T) loss contribution of each token given its entropy (N, T)."""
        ...

    def observe(self, mean_entropy: float) -> None:
        """Record the mean token entropy of the step that just finished."""
        ...

    def metrics(self, step: int) -> dict[str, float]: ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


class EntropyBonus:
    """The plain entropy bonus: -coef x H per token, aggregated like the policy loss.

    verl-agent's ``entropy_coeff = 0.001`` is on in every baseline (docs/algorithms.md section 9.2).
    """

    aggregation: str | None = None

    def __init__(self, coef: float) -> None:
        self.coef = coef

    def per_token(self, entropy: Tensor, step: int) -> Tensor:
        return -self.coef * entropy

    def observe(self, mean_entropy: float) -> None:
        pass

    def metrics(self, step: int) -> dict[str, float]:
        return {}

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass


class KLController:
    """The coefficient of the KL-to-reference loss term: fixed, or adaptive towards a target.

    Adaptive (Ziegler et al. 2019): after a step with per-token KL ``kl`` over ``n`` rows,
    coef *= 1 + clip(kl / target - 1, -0.2, 0.2) n / horizon. verl-agent uses the fixed 0.01.
    """

    def __init__(self, cfg: KLConfig) -> None:
        self.coef = cfg.coef
        self.target = cfg.target
        self.horizon = cfg.horizon

    def update(self, kl: float, n: int) -> None:
        if self.target <= 0 or self.coef == 0:
            return
        error = min(max(kl / self.target - 1.0, -0.2), 0.2)
        self.coef *= 1.0 + error * n / self.horizon

    def state_dict(self) -> dict[str, Any]:
        return {"coef": self.coef}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.coef = float(state["coef"])


class EntropyPart(LearnerPart):
    """Adds an :class:`EntropyTerm` to every pass's loss, aggregated by the term's own mode.

    Logs ``<prefix>/loss_entropy``, the term's metrics, and feeds it the step's mean token
    entropy (``actor/entropy``).
    """

    def __init__(self, term: EntropyTerm) -> None:
        self.term = term
        self.entropy_grad = term.coef > 0

    def loss_terms(self, ctx: LossContext, rows: slice, micro: TokenBatch, fw: Any) -> list[LossTerm]:
        weights = ctx.weights(self.term.aggregation)[rows, :micro.seq_len]
        value = (self.term.per_token(fw.entropy, ctx.step) * weights).sum()
        return [LossTerm("loss_entropy", value)]

    def end_step(self, step: int, tally: Tally, rows: int) -> None:
        for name, value in self.term.metrics(step).items():
            tally.add(name, value)
        mean_entropy = tally.get("actor/entropy")
        if mean_entropy is not None:
            self.term.observe(mean_entropy)

    def state_dict(self) -> dict[str, Any]:
        return {"entropy_term": self.term.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.term.load_state_dict(state["entropy_term"])


@LEARNER_PARTS.register("entropy_bonus")
def _entropy_bonus(cfg: AlgorithmConfig, ctx: PartContext) -> EntropyPart | None:
    # EPO's term replaces the plain bonus (the "epo" part).
    return None if cfg.epo.enabled else EntropyPart(EntropyBonus(cfg.entropy_coef))


#: The batch column a part may set to scale each token's KL term (ARES); absent means 1.
KL_WEIGHT = "kl_weight"


class KLPart(LearnerPart):
    """The KL-to-reference term: k3 against a frozen reference, weighted like the policy loss
    (times the ``kl_weight`` column when a part sets one).

    The reference is the model given to the learner, or a frozen copy of the policy as it is
    when the learner is built, in the compute dtype on the training device or, with
    ``ref_device=cpu``, on the CPU (then saved in the checkpoint). Reference log-probs are computed
    in the old-policy pass while the coefficient is > 0; rows without them (the replay's) get
    no KL term. Logs ``<prefix>/kl_ref``, ``<prefix>/loss_kl`` and ``kl/coef``.
    """

    def __init__(self, cfg: KLConfig, ctx: PartContext, *, ref_device: str = "same") -> None:
        self.controller = KLController(cfg)
        self.forward = ctx.forward
        self.owns_ref = False
        self.ref_model = ctx.ref_model
        if cfg.coef > 0 and self.ref_model is None:
            if data_parallel_world(ctx.model)[1] > 1:
                raise ValueError("algorithm.kl.coef > 0 with a sharded policy: give the learner a "
                                 "reference model (a copy of a sharded policy is not made)")
            device = ctx.device if ref_device == "same" else torch.device("cpu")
            dtype = ctx.compute_dtype or next(ctx.model.parameters()).dtype
            self.ref_model, self.owns_ref = frozen_reference(ctx.model, dtype=dtype, device=device), True
        if self.ref_model is not None:
            self.ref_model.requires_grad_(False)

    def old_columns(self) -> tuple[str, ...]:
        return ("ref_logprobs",) if self.ref_model is not None and self.controller.coef > 0 else ()

    def old_pass(self, micro: TokenBatch, fw: Any) -> dict[str, Tensor]:
        if not self.old_columns():
            return {}
        return {"ref_logprobs": self.forward(self.ref_model, micro, hidden=False, entropy_grad=False).logp}

    def loss_terms(self, ctx: LossContext, rows: slice, micro: TokenBatch, fw: Any) -> list[LossTerm]:
        coef = self.controller.coef
        if coef <= 0 or micro.ref_logprobs is None:
            return []
        kl_ref = kl_k3(fw.logp, micro.ref_logprobs) * micro.loss_mask
        weights = ctx.weights()[rows, :micro.seq_len]
        if KL_WEIGHT in micro.columns:  # a part's per-token factor (ARES's per-difficulty beta)
            weights = weights * micro.columns[KL_WEIGHT].to(weights.dtype)
        kl = (kl_ref * weights).sum()
        ctx.tally.add(f"{ctx.prefix}/kl_ref", kl_ref.sum(), micro.loss_mask.sum())
        return [LossTerm("loss_kl", kl, coef=coef)]

    def end_step(self, step: int, tally: Tally, rows: int) -> None:
        kl = tally.get("actor/kl_ref")
        if kl is not None:
            self.controller.update(kl, rows)
        tally.add("kl/coef", self.controller.coef)

    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {"kl": self.controller.state_dict()}
        if self.owns_ref:
            state["ref_model"] = self.ref_model.state_dict()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.controller.load_state_dict(state["kl"])
        if self.owns_ref and "ref_model" in state:
            self.ref_model.load_state_dict(state["ref_model"])


@LEARNER_PARTS.register("kl")
def _kl(cfg: AlgorithmConfig, ctx: PartContext) -> KLPart:
    return KLPart(cfg.kl, ctx, ref_device=cfg.ref_device)

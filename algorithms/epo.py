"""EPO: entropy-regularised policy optimisation with entropy smoothing (arXiv 2509.22576).

:class:`EPORegularizer` is the entropy term (an :class:`~agentropy.algorithms.regularizers.EntropyTerm`);
the ``epo`` learner part adds it to the loss in place of the plain bonus when
``algorithm.epo.enabled`` (settings: :class:`agentropy.configs.schema.EPOConfig`; lambda is
``algorithm.entropy_coef``). The math is in :mod:`agentropy.algorithms.functional`
(``epo_entropy_penalty``, ``epo_beta``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from agentropy.algorithms.functional import epo_beta, epo_entropy_penalty
from agentropy.algorithms.parts import PartContext
from agentropy.algorithms.registry import LEARNER_PARTS
from agentropy.algorithms.regularizers import EntropyPart
from torch import Tensor

if TYPE_CHECKING:
    from agentropy.configs.schema import AlgorithmConfig, EPOConfig

__all__ = ["NESTED", "EPORegularizer"]

#: EPO's entropy terms are nested averages: tokens within a turn, turns, trajectories.
NESTED = "traj-mean-turn-mean-token-mean"


class EPORegularizer:
    """EPO's entropy regularisation with smoothing (arXiv 2509.22576, Algorithm 1;
    docs/algorithms.md section 5).

    L_EPO = L_MT - lambda [L_H - beta_k L_smooth]: per token the loss gets
    -lambda (H - beta_k alpha P(H)), with P the hinge of
    :func:`~agentropy.algorithms.functional.epo_entropy_penalty` against H_W, the cumulative mean of the
    batch mean token entropies of all earlier steps (not a sliding window). Both terms are
    nested averages (tokens in a turn, turns, trajectories). At the first step there is no
    history and L_smooth = 0.

    Deviations from the released code, which this follows the paper against (docs/algorithms.md
    section 5.2): the hinge is differentiable (the code's penalty is a constant with no gradient), the
    history is one scalar per step (not indexed by turn), smoothing is not gated on the turn
    index, the schedule is the paper's beta_k, and it applies to PPO as well as GRPO.

    Args:
        cfg: alpha, kappa_l, kappa_r, gamma.
        coef: lambda (``algorithm.entropy_coef``; the paper uses 0.001).
        total_steps: K, the number of training steps (for beta_k).
    """

    aggregation: str | None = NESTED

    def __init__(self, cfg: EPOConfig, coef: float, total_steps: int) -> None:
        self.cfg = cfg
        self.coef = coef
        self.total_steps = total_steps
        self._sum = 0.0
        self._count = 0

    @property
    def hist_mean(self) -> float | None:
        """H_W: the mean of the batch entropies of all earlier steps, or None before any."""
        return self._sum / self._count if self._count else None

    def beta(self, step: int) -> float:
        return epo_beta(step, self.total_steps, gamma=self.cfg.gamma)

    def per_token(self, entropy: Tensor, step: int) -> Tensor:
        term = entropy
        hist = self.hist_mean
        if hist is not None:
            penalty = epo_entropy_penalty(entropy, hist, kappa_l=self.cfg.kappa_l,
                                            kappa_r=self.cfg.kappa_r)
            term = entropy - self.beta(step) * self.cfg.alpha * penalty
        return -self.coef * term

    def observe(self, mean_entropy: float) -> None:
        self._sum += float(mean_entropy)
        self._count += 1

    def metrics(self, step: int) -> dict[str, float]:
        hist = self.hist_mean
        return {"epo/hist_entropy": float("nan") if hist is None else hist,
                "epo/beta": self.beta(step)}

    def state_dict(self) -> dict[str, Any]:
        return {"sum": self._sum, "count": self._count}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._sum = float(state["sum"])
        self._count = int(state["count"])


@LEARNER_PARTS.register("epo")
def _epo(cfg: AlgorithmConfig, ctx: PartContext) -> EntropyPart | None:
    if not cfg.epo.enabled:
        return None
    return EntropyPart(EPORegularizer(cfg.epo, cfg.entropy_coef, ctx.total_steps))

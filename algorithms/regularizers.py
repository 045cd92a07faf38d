"""Stateful loss terms the learner owns: the entropy term (plain bonus or EPO) and the KL controller.

Each is a small object with explicit state and ``state_dict()`` / ``load_state_dict()`` for
checkpoints. The entropy terms share one interface (:class:`EntropyTerm`), so the learner adds
"the entropy term" without knowing which one it has.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from agentropy.algorithms import functional as F
from torch import Tensor

if TYPE_CHECKING:
    from agentropy.configs.schema import EPOConfig, KLConfig

__all__ = ["EntropyTerm", "EntropyBonus", "EPORegularizer", "KLController"]

#: EPO's entropy terms are nested averages: tokens within a turn, turns, trajectories.
NESTED = "traj-mean-turn-mean-token-mean"


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
        return F.epo_beta(step, self.total_steps, gamma=self.cfg.gamma)

    def per_token(self, entropy: Tensor, step: int) -> Tensor:
        term = entropy
        hist = self.hist_mean
        if hist is not None:
            penalty = F.epo_entropy_penalty(entropy, hist, kappa_l=self.cfg.kappa_l,
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

"""HAPO's token-aware sampling temperature: the rule the sampler applies at each generated token.

HAPO (Liu et al. 2025, "From Uniform to Heterogeneous: Tailoring Policy Optimization to Every
Token's Nature", arXiv 2509.16591; the released code's vLLM sampler) samples every token at its
own temperature

    h_t = (log H_t - c) / s,   h^_t = h_t / max h (h_t > 0),  h_t / |min h| (h_t <= 0)
    T_t = T0 (1 + tau clip(h^_t, -1, 1))

where H_t is the token's full-vocabulary entropy (nats) and c, s, max h, min h are the learner's
normalisation statistics of the previous update's old-policy entropies
(:func:`agentropy.algorithms.entropy_methods.hapo_entropy_stats`). The normalisation lives here,
below the learner, because the sampler needs it and ``agents`` does not import ``algorithms``;
the learner's HAPO part uses these same functions (re-exported by
:mod:`agentropy.algorithms.entropy_methods`).

The released normalisation divides the negative side by min h itself, so low-entropy tokens get
h^ > 0 (and a higher temperature); ``legacy_sign=True`` reproduces it, the sign-correct form is
the default (docs/algorithms.md section 14.5).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = ["HapoEntropyStats", "TokenTemperature", "hapo_normalized_entropy", "hapo_temperature"]


@dataclass(frozen=True)
class HapoEntropyStats:
    """Normalisation statistics of HAPO's entropy: pivot c, RMS scale s around it, largest positive
    h and most negative h. The sampler uses the previous update's values."""

    pivot: float
    scale: float
    pos_max: float
    neg_min: float


def hapo_normalized_entropy(
    entropy: Tensor, stats: HapoEntropyStats, *, legacy_sign: bool = False
) -> Tensor:
    """HAPO's normalised entropy h^ in [-1, 1]: positive for high-entropy tokens, negative for low.

    h = (log H - c) / s; h^ = h / max(h) for h > 0 and h / |min(h)| for h <= 0. The released code
    divides the negative branch by min(h) itself (a negative number), so every low-entropy token
    gets a positive h^ and is treated like a high-entropy one; ``legacy_sign=True`` reproduces it.
    The sign-correct form is the default because it is what the paper describes.

    Args:
        entropy: (...) token entropies; stats: from
            :func:`agentropy.algorithms.entropy_methods.hapo_entropy_stats`.

    Returns:
        (...) h^ (clipped to [-1, 1], no gradient).
    """
    h = (torch.log(entropy.detach().clamp_min(1e-8)) - stats.pivot) / stats.scale
    neg = h / stats.neg_min if legacy_sign else h / abs(stats.neg_min)
    return torch.where(h > 0, h / stats.pos_max, neg).clamp(-1.0, 1.0)


def hapo_temperature(h_hat: Tensor, *, t0: float = 1.0, tau: float = 0.05) -> Tensor:
    """Token-aware sampling temperature T_t = T0 (1 + tau clip(h^_t, -1, 1)). Neutral: tau = 0."""
    return t0 * (1.0 + tau * h_hat.clamp(-1.0, 1.0))


@dataclass(frozen=True)
class TokenTemperature:
    """A per-token sampling temperature rule (HAPO, arXiv 2509.16591), carried by
    :class:`agentropy.agents.backends.base.SamplingParams` as ``token_temperature``.

    The base temperature T0 is the sampling parameters' ``temperature``; at each generated token
    the sampler takes H_t, the entropy of softmax(logits / T0) over the whole vocabulary (before
    top-p), and draws the token from softmax(logits / T_t) (then top-p), T_t of
    :meth:`temperatures`. Neutral: ``tau = 0`` (T_t = T0 exactly).

    Attributes:
        stats: the normalisation statistics (the learner's, from its last update).
        tau: the temperature range, in [0, 1) (the recipe's ``rollout.temperature_tau`` 0.05).
        legacy_sign: the released normalisation (low-entropy tokens get h^ > 0).
    """

    stats: HapoEntropyStats
    tau: float
    legacy_sign: bool = False

    def __post_init__(self) -> None:
        if not 0 <= self.tau < 1:
            raise ValueError(f"token temperature: tau must be in [0, 1), got {self.tau}")
        if not self.stats.scale > 0:
            raise ValueError(f"token temperature: the entropy scale must be > 0, got {self.stats.scale}")

    def temperatures(self, entropy: Tensor, t0: float) -> Tensor:
        """(...) T_t for tokens whose T0 distributions have (...) entropies ``entropy`` (nats)."""
        h_hat = hapo_normalized_entropy(entropy, self.stats, legacy_sign=self.legacy_sign)
        return hapo_temperature(h_hat, t0=t0, tau=self.tau)

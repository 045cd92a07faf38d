"""Typed configs of the entropy interventions in :mod:`agentropy.algorithms.entropy_methods`.

One dataclass per method; every default is the paper's where it is known, otherwise the released
code's main training script, with the source in the field's comment. Each class documents its
*neutral setting*: the values at which the method reduces exactly to its base learner (a test
checks each). Each is a field of :class:`agentropy.configs.schema.AlgorithmConfig`
(``algorithm.siren.coef``); a method whose part lives in the learner is switched on by its
``enabled`` flag, which ``configs/algorithm/<method>.yaml`` sets (``algorithm=siren``); CANON and
HAPO's token-level advantage are selected as ``algorithm.advantage``. docs/algorithms.md section 14
lists what is wired.

``released_*`` / ``legacy_*`` / ``as_released`` flags reproduce a public implementation where it
departs from its paper; they default to the paper's intent.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from agentropy.configs.errors import ConfigError

__all__ = [
    "AepoAConfig",
    "AepoTConfig",
    "AresConfig",
    "CanonConfig",
    "HapoConfig",
    "LpRegConfig",
    "SirenConfig",
    "SteerConfig",
    "neutral",
]


def _in(
    key: str, value: float, lo: float, hi: float, *, lo_open: bool = False, hi_open: bool = False
) -> None:
    ok_lo = value > lo if lo_open else value >= lo
    ok_hi = value < hi if hi_open else value <= hi
    if not (ok_lo and ok_hi):
        a, b = "(" if lo_open else "[", ")" if hi_open else "]"
        raise ConfigError(f"{key}: must be in {a}{lo}, {hi}{b}, got {value}")


def _choice(key: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ConfigError(f"{key}: must be one of {', '.join(choices)}, got {value!r}")


INF = float("inf")


@dataclass
class SirenConfig:
    """SIREN, selective entropy regularisation (Jiang et al. 2025, arXiv 2509.25133).

    Constants from the released code (``Linn3a/siren``, ``exp_scripts/siren.sh`` and its actor);
    the paper's own equations and table were not read: UNVERIFIED. Neutral: ``coef = 0``.
    """

    enabled: bool = False
    """the ``siren`` learner part (``algorithm=siren``)"""

    coef: float = 0.005
    """lambda of lambda (H_sel - H_anchor)^2 (code: actor.entropy_coeff)"""
    top_p: float = 0.8
    """nucleus mass of the top-p entropy (code: entropy_topp, actor default)"""
    top_k: int = 10_000
    """vocabulary prefilter before the nucleus (code: entropy_topk; memory only)"""
    quantile: float = 0.8
    """per-row entropy quantile of the peak mask; 0.8 keeps the top 20% (code: mask_ratio)"""
    include_crossing_token: bool = True
    """True: standard nucleus (paper intent). False: the released code's set, which drops the crossing
    token and is empty when p_max >= top_p"""
    unit: str = "row"
    """per-row quantile over a turn-row ("row") or a whole trajectory ("trajectory")"""

    def __post_init__(self) -> None:
        _in("algorithm.siren.coef", self.coef, 0.0, INF)
        _in("algorithm.siren.top_p", self.top_p, 0.0, 1.0, lo_open=True)
        _in("algorithm.siren.top_k", self.top_k, 1, INF)
        _in("algorithm.siren.quantile", self.quantile, 0.0, 1.0)
        _choice("algorithm.siren.unit", self.unit, ("row", "trajectory"))


@dataclass
class SteerConfig:
    """STEER, entropy-change-aware token weights (Zhang et al. 2025, arXiv 2510.10150).

    Defaults from ``zz-haooo/STEER`` ``run/run_exp.sh`` (exponential mapping, the paper's form); the
    code's function and actor fallbacks differ (1.2 / 0.95 / 1.05). Neutral: ``weight_min = 1``
    (exp) or ``weight_min = weight_max = 1`` (linear): all weights 1.
    """

    enabled: bool = False
    """the ``steer`` learner part (``algorithm=steer``)"""

    weight_min: float = 0.8
    """lambda_min: the weight of the largest |Omega| (code: token_weight_min)"""
    weight_max: float = 1.0
    """upper weight of the linear mapping; unused by exp (code: token_weight_max; run_linear.sh 1.2)"""
    mapping: str = "exp"
    """"exp" (paper) or "linear" (code variant)"""
    omega_floor: float = 0.02
    """floor on max |Omega| in k = -ln(weight_min) / max|Omega| (code constant)"""
    scope: str = "micro"
    """statistics over the micro-batch (released), mini-batch or batch"""

    def __post_init__(self) -> None:
        _in("algorithm.steer.weight_min", self.weight_min, 0.0, 1.0, lo_open=True)
        _in("algorithm.steer.weight_max", self.weight_max, self.weight_min, INF)
        _choice("algorithm.steer.mapping", self.mapping, ("exp", "linear"))
        _in("algorithm.steer.omega_floor", self.omega_floor, 0.0, INF, lo_open=True)
        _choice("algorithm.steer.scope", self.scope, ("micro", "mini", "batch"))


@dataclass
class AepoTConfig:
    """AEPO-T, Arbitrary Entropy Policy Optimization (Wang et al. 2025, arXiv 2510.08141).

    Defaults from ``597358816/AEPO`` ``verl/trainer/config.py`` and its math script; paper body not
    read. Neutral: ``max_rows = 0`` (no extra rollout, no REINFORCE rows: the base learner's batch
    unchanged).
    """

    enabled: bool = False
    """the ``aepo_t`` learner part: the tempered extra rollout and its REINFORCE episodes
    (``algorithm=aepo_t``)"""

    target_entropy: float = 0.5
    """H_target (code: trainer.entropy_base; README's best table entry uses 0.75)"""
    t_high: float = 1.2
    """temperature of the extra rollout while entropy <= target (code: temperature_high)"""
    t_low: float = 0.8
    """temperature while entropy > target (code: temperature_low)"""
    max_rows: int = 60
    """S, the most REINFORCE rows per step (code: reinforce_sample_num); in the multi-turn
    learner a unit is a whole episode (all its turn-rows)"""
    threshold: float = 0.05
    """a tempered row qualifies if its group advantage exceeds this (code constant); multi-turn:
    an episode, by its std-normalised advantage within its extra group"""
    extra_share: float = 0.25
    """share of the step's tasks rolled out again at the switched temperature (code constant);
    the first ceil(share x tasks) tasks"""
    halve_above_target: bool = True
    """keep half as many rows while entropy is above target (code)"""
    old_logp_at_unit_temperature: bool = True
    """ratio denominator at T = 1 for the tempered rows: the paper's "distribution as regulariser"
    intent, so True is the default here (set False to correct towards the tempered sampler)"""

    def __post_init__(self) -> None:
        _in("algorithm.aepo_t.target_entropy", self.target_entropy, 0.0, INF)
        _in("algorithm.aepo_t.t_high", self.t_high, 0.0, INF, lo_open=True)
        _in("algorithm.aepo_t.t_low", self.t_low, 0.0, self.t_high, lo_open=True)
        _in("algorithm.aepo_t.max_rows", self.max_rows, 0, INF)
        _in("algorithm.aepo_t.extra_share", self.extra_share, 0.0, 1.0)


@dataclass
class AepoAConfig:
    """AEPO-A, Agentic Entropy-Balanced Policy Optimization (Dong et al. 2025, arXiv 2510.14545).

    No official code was available; constants from the third-party reproduction ARLArena and the ARPO
    scripts (arXiv 2507.19849): UNVERIFIED. Neutral: ``alpha = 0``, ``high_entropy_stop_gradient =
    False`` (plain dual-clip PPO) and ``branching = False`` (no forks).
    """

    enabled: bool = False
    """the ``aepo_a`` learner part, entropy-balanced optimisation (``algorithm=aepo_a``)"""

    alpha: float = 0.2
    """entropy-aware advantage scale A (1 + alpha H^) (ARLArena)"""
    high_entropy_stop_gradient: bool = True
    """keep a rescaled gradient on clipped high-entropy tokens (paper [secondary summary])"""
    dual_clip_c: float = 3.0
    """dual clip constant (ARLArena)"""
    branching: bool = True
    """entropy-balanced rollout: fork episodes at high-entropy env steps (the collector's branch
    rule; ``algorithm=aepo_a`` sets false, docs/algorithms.md section 14.6)"""
    beta: float = 0.5
    """pre-monitoring sensitivity in m = k sigma(beta (H_root - H_tool)) (ARLArena)"""
    dynamic_global_samples: bool = False
    """use pre-monitoring for m (ARLArena's default False: m fixed to global_samples)"""
    global_samples: int = 6
    """fixed m when pre-monitoring is off (ARPO script initial_rollouts)"""
    branch_weight: float = 0.5
    """w in (u + w dH) (ARLArena entropy_weight; ARPO 14B script 0.2)"""
    branch_threshold: float = 0.5
    """branch iff the score >= this (branch_probability)"""
    consecutive_penalty: float = 0.05
    """P per consecutive branch (ARLArena; form UNVERIFIED)"""
    beam_size: int = 2
    """forks per branching step = beam_size - 1"""
    entropy_tokens: int = 20
    """step entropy over the first generated tokens (the paper: their top-10 log-probabilities;
    here the sampler's full-vocabulary token entropies)"""
    train_prefix_once: bool = True
    """a branch's turns replayed from its parent are trained once, in the parent (spec: the
    shared rows appear once); false trains them once per branch too"""

    def __post_init__(self) -> None:
        _in("algorithm.aepo_a.alpha", self.alpha, 0.0, INF)
        _in("algorithm.aepo_a.dual_clip_c", self.dual_clip_c, 1.0, INF, lo_open=True)
        _in("algorithm.aepo_a.beta", self.beta, 0.0, INF)
        _in("algorithm.aepo_a.global_samples", self.global_samples, 1, INF)
        _in("algorithm.aepo_a.branch_weight", self.branch_weight, 0.0, INF)
        _in("algorithm.aepo_a.branch_threshold", self.branch_threshold, 0.0, 1.0)
        _in("algorithm.aepo_a.consecutive_penalty", self.consecutive_penalty, 0.0, 1.0)
        _in("algorithm.aepo_a.beam_size", self.beam_size, 1, INF)
        _in("algorithm.aepo_a.entropy_tokens", self.entropy_tokens, 1, INF)


@dataclass
class LpRegConfig:
    """Lp-Reg, low-probability regularisation (Huang et al. 2025, arXiv 2510.03222).

    Defaults from the development code ``CarlanLark/Lp-Reg-dev`` scripts (Qwen3-14B-Base); yaml
    defaults differ (kappa 0.1, rho 0). Neutral: ``neg_fraction = pos_fraction = 0`` (the plain clip
    surrogate; the wide clip range stays a base-learner setting).
    """

    enabled: bool = False
    """the ``lp_reg`` learner part (``algorithm=lp_reg``)"""

    kappa: float = 0.02
    """min-p ratio: tokens under kappa max p leave the proxy (minp_p_threshold)"""
    mode: str = "relative"
    """"relative" (min-p) or "fixed" (absolute threshold kappa)"""
    soft: bool = False
    """filtered logits to the row minimum instead of -1e4 (minp_soft)"""
    neg_fraction: float = 0.01
    """share rho of negative-advantage tokens considered (logp_neg_k_percent, a fraction)"""
    pos_fraction: float = 0.0
    """same for positive-advantage tokens (logp_pos_k_percent)"""
    beta: float = 1.0
    """weight of the k3 term (ppo_kl_coef)"""
    clip_low: float = 1.0
    clip_high: float = 9.0
    """ratio bounds [0, 10] in the scripts"""
    released_gate: bool = False
    """True: regularise only when floor(rho N) > 1 (released code; nothing under 200 negative tokens
    at rho = 1%). False (default): at least one token whenever rho > 0"""

    def __post_init__(self) -> None:
        _in("algorithm.lp_reg.kappa", self.kappa, 0.0, 1.0, lo_open=True)
        _choice("algorithm.lp_reg.mode", self.mode, ("relative", "fixed"))
        _in("algorithm.lp_reg.neg_fraction", self.neg_fraction, 0.0, 1.0)
        _in("algorithm.lp_reg.pos_fraction", self.pos_fraction, 0.0, 1.0)
        _in("algorithm.lp_reg.beta", self.beta, 0.0, INF)
        _in("algorithm.lp_reg.clip_low", self.clip_low, 0.0, 1.0)
        _in("algorithm.lp_reg.clip_high", self.clip_high, 0.0, INF)


@dataclass
class CanonConfig:
    """CANON, conditional advantage estimation (Chen et al. 2025, arXiv 2509.23962).

    Defaults from ``biuboomc/CANON`` ``scripts/setups.sh``; the paper's Eq. 8 (alpha) was not read.
    Neutral: ``mu = 0.5, alpha = 1`` gives R - group mean (Dr.GRPO) for even group sizes.
    """

    metric: str = "entropy"
    """split key: mean token entropy of the old policy, or response length"""
    mu: float = 1.0
    """inter-group weight (code: _lambda, "mu in Eq. 5")"""
    alpha: float = 1.0
    """code: alpha, "Eq. 8"; placement as coded"""
    normalizer: float = 1.0
    """constant divisor (Dr.GRPO); the code uses the maximum response length"""
    unit: str = "trajectory"
    """group trajectories (default) or turn-rows"""

    def __post_init__(self) -> None:
        _choice("algorithm.canon.metric", self.metric, ("entropy", "length"))
        _in("algorithm.canon.mu", self.mu, 0.0, 1.0)
        _in("algorithm.canon.alpha", self.alpha, 0.0, INF)
        _in("algorithm.canon.normalizer", self.normalizer, 0.0, INF, lo_open=True)
        _choice("algorithm.canon.unit", self.unit, ("row", "trajectory"))


@dataclass
class HapoConfig:
    """HAPO, heterogeneous adaptive policy optimisation (Liu et al. 2025, arXiv 2509.16591).

    Defaults from ``starriver030515/HAPO`` ``recipe/qwen2.5_math_7b.sh``. Neutral: ``tau = 0``,
    ``alpha = 0``, ``beta = 0``, ``token_level_advantage = False``.
    """

    enabled: bool = False
    """the ``hapo`` learner part, its loss side (``algorithm=hapo``, which also selects the
    ``hapo`` advantage estimator)"""

    tau: float = 0.05
    """temperature range of the token-aware sampling temperature T_t = T0 (1 + tau h^), h^ the token's
    entropy normalised with the last update's statistics (rollout.temperature_tau; the training
    rollout only, ``hf`` backend only). The PPO ratio's denominator is ``algorithm.old_logprobs``'s:
    ``recompute`` is the temperature-1 forward pass (the released code's, uncorrected), ``rollout``
    the sampler's log-probability at T_t"""
    pivot: float = 0.8
    """quantile of log-entropy used as the pivot (actor.entropy_pivot; function default 0.5)"""
    alpha: float = 1.0
    """adaptive clip width (actor.clip_alpha)"""
    beta: float = 1.0
    """advantage redistribution strength (actor.adv_beta)"""
    token_level_advantage: bool = True
    """token-level group average advantage (estimator hapo)"""
    fallback_abs: float = 5.0
    """fall back to GRPO for a group with some |A| >= this (code constant)"""
    legacy_sign: bool = False
    """True reproduces the released normalisation, which maps low-entropy tokens to positive h^"""

    def __post_init__(self) -> None:
        _in("algorithm.hapo.tau", self.tau, 0.0, 1.0, hi_open=True)
        _in("algorithm.hapo.pivot", self.pivot, 0.0, 1.0)
        _in("algorithm.hapo.alpha", self.alpha, 0.0, INF)
        _in("algorithm.hapo.beta", self.beta, 0.0, INF)
        _in("algorithm.hapo.fallback_abs", self.fallback_abs, 0.0, INF, lo_open=True)


@dataclass
class AresConfig:
    """ARES's entropy shaping and per-difficulty KL (Chen et al. 2025, arXiv 2510.08457).

    Code-only (``shawn0728/ARES`` ``experiments/AEPO/config.yaml`` and reward function); the paper's
    equations are UNVERIFIED. Neutral: ``alpha_init = 0``, ``alpha_lr = 0`` (no shaping) and
    ``kl_lr = 0`` (every bucket keeps beta = 1).
    """

    enabled: bool = False
    """the ``ares`` learner part: entropy shaping of the scores and per-difficulty KL weights
    (``algorithm=ares``)"""
    trigger_words: list[str] | None = None
    """words whose sampled tokens can count as high-window-entropy triggers (compared stripped and
    lower-cased; needs the learner's tokenizer). None: every completion token can (our default for
    agent text: the released list is English reasoning markers, docs/algorithms.md section 14.7)"""
    window: int = 4
    """window entropy over the next w tokens (worker.rollout.window_size)"""
    threshold_percentile: float = 95.0
    threshold_momentum: float = 0.99
    alpha_init: float = 0.5
    alpha_lr: float = 0.05
    alpha_max: float = 2.0
    as_released_alpha: bool = False
    """True: target refreshed before the alpha step, so alpha barely moves (released behaviour)"""
    kl_target: float = 0.01
    kl_lr: float = 0.05
    kl_every: int = 100
    kl_momentum: float = 0.97
    kl_deadzone: float = 0.02
    kl_err_clip: float = 0.2

    def __post_init__(self) -> None:
        _in("algorithm.ares.window", self.window, 1, INF)
        _in("algorithm.ares.threshold_percentile", self.threshold_percentile, 0.0, 100.0)
        _in("algorithm.ares.threshold_momentum", self.threshold_momentum, 0.0, 1.0)
        _in("algorithm.ares.alpha_init", self.alpha_init, 0.0, self.alpha_max)
        _in("algorithm.ares.alpha_lr", self.alpha_lr, 0.0, INF)
        _in("algorithm.ares.kl_target", self.kl_target, 0.0, INF, lo_open=True)
        _in("algorithm.ares.kl_lr", self.kl_lr, 0.0, INF)
        _in("algorithm.ares.kl_every", self.kl_every, 1, INF)
        _in("algorithm.ares.kl_momentum", self.kl_momentum, 0.0, 1.0)


_NEUTRAL: dict[type, dict] = {
    SirenConfig: {"coef": 0.0},
    SteerConfig: {"weight_min": 1.0, "weight_max": 1.0},
    AepoTConfig: {"max_rows": 0},
    AepoAConfig: {"alpha": 0.0, "high_entropy_stop_gradient": False, "branching": False},
    LpRegConfig: {"neg_fraction": 0.0, "pos_fraction": 0.0},
    CanonConfig: {"mu": 0.5, "alpha": 1.0},
    HapoConfig: {"tau": 0.0, "alpha": 0.0, "beta": 0.0, "token_level_advantage": False},
    AresConfig: {"alpha_init": 0.0, "alpha_lr": 0.0, "kl_lr": 0.0},
}


def neutral(cls: type):
    """The config of ``cls`` at its neutral setting (the method reduces to its base learner)."""
    names = {f.name for f in fields(cls)}
    values = _NEUTRAL[cls]
    assert set(values) <= names
    return cls(**values)

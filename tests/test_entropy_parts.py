"""The entropy interventions wired into the learner (agentropy.algorithms.entropy_parts and the
canon / hapo estimators): each at its neutral setting gives exactly the base learner's update;
padding (and, where the statistics are the batch's, the micro-batch size) does not change the
update; each method composes over the base recipes; its part does what it says on a small case.
The two-iteration runs of ``agentropy train`` are in tests/test_train.py (every algorithm yaml)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch
from agentropy.agents.tiny import load_pretrained
from agentropy.algorithms.learner import Learner
from agentropy.configs import methods as cm
from agentropy.configs.compose import load_config
from agentropy.configs.schema import ConfigError

from tests.learner_cases import make_batch

#: method -> (its config field, its config class, what else its neutral setting selects)
METHODS = {
    "siren": ("siren", cm.SirenConfig, {}),
    "steer": ("steer", cm.SteerConfig, {}),
    "lp_reg": ("lp_reg", cm.LpRegConfig, {}),
    "canon": ("canon", cm.CanonConfig, {"advantage": "canon"}),
    "hapo": ("hapo", cm.HapoConfig, {"advantage": "hapo"}),
    "aepo_a": ("aepo_a", cm.AepoAConfig, {}),
}
BASES = ["grpo", "gigpo", "dapo", "drbot", "ppo"]
CONFIGS = Path(__file__).resolve().parents[1] / "configs" / "algorithm"

#: rollout log-probs as the ratio's denominator: ratios away from 1, so clipping is active.
SMALL = ["algorithm.mini_batch_size=64", "algorithm.micro_batch_size=8", "algorithm.old_logprobs=rollout"]


def _base(base: str = "grpo", *more: str):
    return load_config([f"algorithm={base}", *SMALL, *more]).algorithm


def _neutral(cfg, method: str):
    field, cls, extra = METHODS[method]
    neutral = cm.neutral(cls)
    if hasattr(neutral, "enabled"):
        neutral = dataclasses.replace(neutral, enabled=True)
    return dataclasses.replace(cfg, **{field: neutral}, **extra)


def _update(model_dir, cfg, batch, *, dtype=torch.float32):
    """(parameters, gradients of the last optimizer step, metrics) after one update."""
    model, _ = load_pretrained(model_dir)
    model = model.to(dtype)
    learner = Learner(model, cfg, total_steps=10, max_new_tokens=64, max_seq_len=256)
    result = learner.update(batch)
    learner.last = result
    assert result.metrics["actor/optimizer_steps"] == 1
    params = {n: p.detach().clone() for n, p in model.named_parameters()}
    grads = {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}
    return params, grads, result.metrics, learner


@pytest.fixture(scope="module")
def batch(tiny_model_dir):
    _, tokenizer = load_pretrained(tiny_model_dir)
    return make_batch(tokenizer, groups=2, group_size=2, seed=3)


def test_every_method_yaml_is_here():
    assert set(METHODS) <= {p.stem for p in CONFIGS.glob("*.yaml")}


@pytest.mark.parametrize("method", sorted(set(METHODS) - {"canon"}))
def test_neutral_setting_is_the_base_update(tiny_model_dir, batch, method):
    base = _base()
    want, want_grads, _, _ = _update(tiny_model_dir, base, batch)
    got, got_grads, metrics, learner = _update(tiny_model_dir, _neutral(base, method), batch)
    assert method in learner.parts or base.advantage != _neutral(base, method).advantage
    assert want_grads and want_grads.keys() == got_grads.keys()
    for name in want:
        assert torch.equal(got_grads[name], want_grads[name]), name
        assert torch.equal(got[name], want[name]), name


@pytest.mark.parametrize("method", sorted(METHODS))
def test_padding_does_not_change_the_update(tiny_model_dir, batch, method):
    cfg = load_config([f"algorithm={method}", *SMALL]).algorithm
    padded = batch.pad_to(batch.seq_len + 9, pad_token_id=0)
    _, want, _, _ = _update(tiny_model_dir, cfg, batch, dtype=torch.float64)
    _, got, _, _ = _update(tiny_model_dir, cfg, padded, dtype=torch.float64)
    assert max(g.abs().max() for g in want.values()) > 0
    for name in want:
        assert torch.allclose(got[name], want[name], rtol=1e-10, atol=1e-13), name


@pytest.mark.parametrize("method", sorted(METHODS))
@pytest.mark.parametrize("base", BASES)
def test_methods_compose_over_every_base(method, base):
    cfg = load_config([f"algorithm={method}", f"algorithm.base={base}"]).algorithm
    plain = load_config([f"algorithm={base}"]).algorithm
    field = METHODS[method][0]
    assert cfg.name == method and cfg.base == base
    assert cfg.kl.coef == plain.kl.coef and cfg.lr == plain.lr
    assert getattr(getattr(cfg, field), "enabled", False) or cfg.advantage == method
    for other, (f, _, _) in METHODS.items():
        if other != method and hasattr(getattr(cfg, f), "enabled"):
            assert not getattr(cfg, f).enabled, other


# ------------------------------------------------------------------------------------------ SIREN

def test_siren_anchors_on_the_first_batch_and_pulls_towards_it(tiny_model_dir, batch):
    cfg = load_config(["algorithm=siren", *SMALL, "algorithm.siren.coef=1.0"]).algorithm
    _, _, metrics, learner = _update(tiny_model_dir, cfg, batch)
    part = learner.parts["siren"]
    assert part.anchor is not None and part.anchor > 0
    assert metrics["siren/anchor"] == pytest.approx(part.anchor)
    # the first step's term is tiny (one micro-batch's H_sel against the batch's anchor)
    assert 0 <= metrics["actor/loss_siren"] < 1.0
    assert learner.state_dict()["siren"]["anchor"] == part.anchor
    part.anchor = part.anchor + 1.0  # far from it: a large term with a gradient
    metrics = learner.update(batch).metrics
    assert metrics["actor/loss_siren"] > 0.1


def test_siren_trajectory_unit_is_refused():
    with pytest.raises(ConfigError, match=r"algorithm\.siren\.unit"):
        load_config(["algorithm=siren", "algorithm.siren.unit=trajectory"])
    with pytest.raises(ConfigError, match=r"algorithm\.siren\.coef"):
        load_config(["algorithm=siren", "algorithm.siren.coef=-1"])
    with pytest.raises(ConfigError, match="coeff"):
        load_config(["algorithm=siren", "algorithm.siren.coeff=1"])


# ------------------------------------------------------------------------------------------ STEER

def test_steer_weights_tokens_between_weight_min_and_one(tiny_model_dir, batch):
    cfg = load_config(["algorithm=steer", *SMALL]).algorithm
    _, _, metrics, learner = _update(tiny_model_dir, cfg, batch)
    assert 0.8 <= metrics["steer/weight"] < 1.0
    assert "old_entropy" in learner.parts["steer"].old_columns()
    with pytest.raises(ConfigError, match=r"algorithm\.steer\.scope"):
        load_config(["algorithm=steer", "algorithm.steer.scope=batch"])


# ----------------------------------------------------------------------------------------- Lp-Reg

def test_lp_reg_protects_low_probability_tokens_and_takes_the_wide_clip(tiny_model_dir, batch):
    cfg = load_config(["algorithm=lp_reg", *SMALL]).algorithm
    loss = cfg.policy_loss
    assert (loss.clip_low, loss.clip_high, loss.dual_clip_c) == (1.0, 9.0, None)
    # the tiny model's distributions are flat: no token is under 0.02 max p, the proxy is the
    # policy itself and nothing is protected; with kappa 0.5 and every negative token considered,
    # the negative-advantage tokens the proxy keeps are protected (and only those)
    _, _, metrics, _ = _update(tiny_model_dir, cfg, batch)
    assert metrics["lp_reg/selected"] == 0
    wide = dataclasses.replace(cfg, lp_reg=dataclasses.replace(cfg.lp_reg, kappa=0.5, neg_fraction=1.0))
    _, _, metrics, _ = _update(tiny_model_dir, wide, batch)
    assert 0 < metrics["lp_reg/selected"] < 1
    # Lp-Reg inside SPEAR: the on-policy rows get it, SPEAR's clip_cov stays the base loss
    spear = load_config(["algorithm=spear", "algorithm.lp_reg.enabled=true"]).algorithm
    assert spear.lp_reg.enabled and spear.replay.enabled and spear.policy_loss.name == "clip_cov"


# ------------------------------------------------------------------------------------------ CANON

def test_canon_neutral_is_the_mean_baseline(tiny_model_dir, batch):
    # mu = 0.5, alpha = 1: R - (R- + R+) / 2, i.e. GRPO over trajectories without the std
    # (Dr.GRPO) for even groups; the same numbers by another sum, so equal to rounding
    base = _base("grpo", "algorithm.group.norm_by_std=false", "algorithm.group.over_rows=false")
    want, want_grads, _, plain = _update(tiny_model_dir, base, batch, dtype=torch.float64)
    got, got_grads, _, canon = _update(tiny_model_dir, _neutral(base, "canon"), batch, dtype=torch.float64)
    assert plain.last.row_advantages.abs().max() > 0
    assert torch.allclose(canon.last.row_advantages, plain.last.row_advantages, rtol=0, atol=1e-6)
    for name in want:
        assert torch.allclose(got_grads[name], want_grads[name], rtol=1e-6, atol=1e-10), name
        assert torch.allclose(got[name], want[name], rtol=0, atol=1e-9), name


def test_canon_splits_each_group_by_the_metric():
    from agentropy.algorithms.advantages import AdvantageInputs, reward_signals
    from agentropy.algorithms.registry import ADVANTAGES

    from tests.learner_cases import rows_batch

    # one group of four one-turn trajectories; two won; completion lengths 2, 4, 6, 8
    b = rows_batch(group=[0, 0, 0, 0], traj=[0, 1, 2, 3], turn=[0, 0, 0, 0], success=[1, 0, 1, 0],
                   completion_len=[2, 4, 6, 8])
    cfg = load_config(["algorithm=canon", "algorithm.canon.metric=length"]).algorithm
    signals = reward_signals(b, cfg.reward, 0)
    adv = ADVANTAGES.get("canon")(b, cfg, AdvantageInputs(signals, None, None)).row_advantages
    r = signals.scores
    low, high = r[:2].mean(), r[2:].mean()  # the short half, the long half
    want = torch.cat([r[:2] - high, r[2:] - low])  # mu = 1: compare across the halves
    assert torch.allclose(adv, want)
    with pytest.raises(ValueError, match="entropies"):
        ADVANTAGES.get("canon")(b, load_config(["algorithm=canon"]).algorithm,
                                AdvantageInputs(signals, None, None))


# ------------------------------------------------------------------------------------------- HAPO

@pytest.mark.parametrize("method", ["hapo", "canon"])
def test_micro_batch_size_does_not_change_the_update(tiny_model_dir, batch, method):
    # the statistics are the batch's (HAPO's entropy normalisation, CANON's halves), so the
    # accumulated gradient is the same for micro-batches of 1, 3 and all rows
    grads = []
    for micro in (1, 3, batch.batch_size):
        cfg = load_config([f"algorithm={method}", *SMALL, f"algorithm.micro_batch_size={micro}"]).algorithm
        grads.append(_update(tiny_model_dir, cfg, batch, dtype=torch.float64)[1])
    for other in grads[1:]:
        for name in grads[0]:
            assert torch.allclose(other[name], grads[0][name], rtol=1e-9, atol=1e-12), name


def test_hapo_token_level_advantage_and_its_loss(tiny_model_dir, batch):
    from agentropy.algorithms.advantages import AdvantageInputs, reward_signals
    from agentropy.algorithms.registry import ADVANTAGES

    from tests.learner_cases import rows_batch

    # one group: a won 2-token row and a lost 6-token row; token weights 2 and 6
    b = rows_batch(group=[0, 0], traj=[0, 1], turn=[0, 0], success=[1, 0], completion_len=[2, 6])
    cfg = load_config(["algorithm=hapo", "algorithm.group.norm_by_std=false",
                       "algorithm.hapo.fallback_abs=100"]).algorithm
    signals = reward_signals(b, cfg.reward, 0)
    r = signals.scores

    def estimate(c):
        return ADVANTAGES.get("hapo")(b, c, AdvantageInputs(signals, None, None)).row_advantages

    assert torch.allclose(estimate(cfg), r - (2 * r[0] + 6 * r[1]) / 8)  # 7.5, -2.5
    # |7.5| >= the default fall-back 5: the group takes GRPO's advantage; so does the neutral setting
    fallback = dataclasses.replace(cfg, hapo=dataclasses.replace(cfg.hapo, fallback_abs=5.0))
    assert torch.allclose(estimate(fallback), r - r.mean())
    assert torch.allclose(estimate(dataclasses.replace(cfg, hapo=cm.neutral(cm.HapoConfig))), r - r.mean())
    # the part: h^ from the batch's old entropies, in [-1, 1]
    cfg = load_config(["algorithm=hapo", *SMALL]).algorithm
    _, _, metrics, learner = _update(tiny_model_dir, cfg, batch)
    assert learner.parts["hapo"].stats is not None and -1 <= metrics["hapo/h_hat"] <= 1
    for bad, key in (("algorithm.hapo.tau=0.05", "tau"), ("algorithm.policy_loss.name=clip_cov", "enabled")):
        with pytest.raises(ConfigError, match=rf"algorithm\.hapo\.{key}"):
            load_config(["algorithm=hapo", bad])


# ----------------------------------------------------------------------------------------- AEPO-A

def test_aepo_a_changes_the_policy_loss_and_refuses_branching(tiny_model_dir, batch):
    cfg = load_config(["algorithm=aepo_a", *SMALL]).algorithm
    assert cfg.aepo_a.enabled and not cfg.aepo_a.branching and cfg.policy_loss.clip_high == 0.28
    _, _, with_aepo, _ = _update(tiny_model_dir, cfg, batch)
    off = dataclasses.replace(cfg, aepo_a=dataclasses.replace(cfg.aepo_a, enabled=False))
    _, _, without, _ = _update(tiny_model_dir, off, batch)
    assert with_aepo["actor/loss_policy"] != pytest.approx(without["actor/loss_policy"], rel=1e-6)
    with pytest.raises(ConfigError, match=r"algorithm\.aepo_a\.branching"):
        load_config(["algorithm=aepo_a", "algorithm.aepo_a.branching=true"])

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
    "ares": ("ares", cm.AresConfig, {}),
    "aepo_t": ("aepo_t", cm.AepoTConfig, {}),
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

@pytest.mark.parametrize("method", ["hapo", "canon", "ares"])
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
    # the token-aware temperature needs the hf backend and a sampled rollout; tau 0 needs neither
    for bad, key in (("agent.backend=vllm", "tau"), ("agent.temperature=0", "tau"),
                     ("algorithm.policy_loss.name=clip_cov", "enabled")):
        with pytest.raises(ConfigError, match=rf"algorithm\.hapo\.{key}"):
            load_config(["algorithm=hapo", bad])
    load_config(["algorithm=hapo", "agent.backend=vllm", "algorithm.hapo.tau=0"])


def test_hapo_sets_the_next_rollouts_token_temperature(tiny_model_dir, batch):
    from agentropy.agents.backends.base import SamplingParams
    from agentropy.agents.temperature import TokenTemperature

    sampling = SamplingParams(max_new_tokens=8, temperature=1.0, top_p=1.0)
    cfg = load_config(["algorithm=hapo", *SMALL, "algorithm.hapo.legacy_sign=true"]).algorithm

    def make():
        return Learner(load_pretrained(tiny_model_dir)[0], cfg, total_steps=10, max_new_tokens=64,
                       max_seq_len=256)

    learner = make()
    assert learner.rollout_sampling(sampling) == sampling  # no statistics yet: T0 everywhere
    learner.update(batch)
    stats = learner.parts["hapo"].stats
    assert learner.rollout_sampling(sampling) == dataclasses.replace(
        sampling, token_temperature=TokenTemperature(stats, tau=0.05, legacy_sign=True))
    # a resumed learner's next rollout uses the same rule
    fresh = make()
    fresh.load_state_dict(learner.state_dict())
    assert fresh.rollout_sampling(sampling) == learner.rollout_sampling(sampling)
    # neutral: tau 0 leaves the sampling alone (the base learner's rollout)
    learner.parts["hapo"].cfg = dataclasses.replace(cfg.hapo, tau=0.0)
    assert learner.rollout_sampling(sampling) == sampling


# ----------------------------------------------------------------------------------------- AEPO-A

def test_aepo_a_changes_the_policy_loss(tiny_model_dir, batch):
    cfg = load_config(["algorithm=aepo_a", *SMALL]).algorithm
    assert cfg.aepo_a.enabled and not cfg.aepo_a.branching and cfg.policy_loss.clip_high == 0.28
    _, _, with_aepo, _ = _update(tiny_model_dir, cfg, batch)
    off = dataclasses.replace(cfg, aepo_a=dataclasses.replace(cfg.aepo_a, enabled=False))
    _, _, without, _ = _update(tiny_model_dir, off, batch)
    assert with_aepo["actor/loss_policy"] != pytest.approx(without["actor/loss_policy"], rel=1e-6)
    # the branching rollout (tests/test_branching.py) does not change the update of a batch
    branching = dataclasses.replace(cfg, aepo_a=dataclasses.replace(cfg.aepo_a, branching=True))
    _, _, with_branching, _ = _update(tiny_model_dir, branching, batch)
    assert with_branching["actor/loss_policy"] == with_aepo["actor/loss_policy"]


# ------------------------------------------------------------------------------------------- AEPO-T

def _episodes(wins, *, first_group: int, group_size: int = 5, turns: int = 2):
    """Episodes of ``turns`` valid turns each, ``group_size`` per group, won as ``wins`` says."""
    from agentropy.algorithms.data import Trajectory, Turn

    turn = Turn(prompt_ids=(3, 4, 5), completion_ids=(6, 7), completion_logprobs=(-0.5, -0.7),
                reward=0.0, action_is_valid=True)
    return [Trajectory(env_id="agentropy/TWX-v0", seed=0, group_id=first_group + i // group_size,
                       policy_version=0, turns=(turn,) * turns, won=bool(w), episode_id=f"e{first_group}-{i}")
            for i, w in enumerate(wins)]


def _aepo_t_part(*overrides: str):
    from agentropy.algorithms.entropy_parts import AepoTPart

    cfg = load_config(["algorithm=aepo_t", *overrides]).algorithm
    return AepoTPart(cfg.aepo_t, cfg.reward, eps=cfg.group.eps)


def test_aepo_t_worked_example_replaces_the_first_episodes():
    """The spec's worked example (its AEPO-T section): H_bar 0.42 <= 0.5, so the extra rollout
    is at T = 1.2; three tasks x 5 with wins [1,0,0,1,1], [0]*5, [1,1,1,1,0]: std-normalised advantages
    [0.730, -1.095, -1.095, 0.730, 0.730], [0]*5, [0.447]*4 + [-1.789] (10 x won, the scale
    cancels); 7 above 0.05 (episodes 0, 3, 4, 10-13), min(60, 7) = 7 replace the first 7 main
    episodes, every turn-row of theirs with advantage 1. Above the target: T = 0.8, floor(7/2) = 3."""
    from agentropy.algorithms import entropy_methods as em
    from agentropy.algorithms.data import collate

    extra = _episodes([1, 0, 0, 1, 1, 0, 0, 0, 0, 0, 1, 1, 1, 1, 0], first_group=100)
    main = _episodes([1, 0] * 10, first_group=0)
    part = _aepo_t_part()
    part.state = em.AepoTState(entropy=0.42)
    request = part.rollout_request(12, 5)
    assert request.tasks == (0, 1, 2) and request.group_size == 5 and request.temperature == 1.2  # ceil(12/4)
    merged = part.merge_rollouts(main, extra)
    picked = [0, 3, 4, 10, 11, 12, 13]
    assert merged == [dataclasses.replace(extra[i], fixed_advantage=1.0) for i in picked] + main[7:]
    assert [t.fixed_advantage for t in merged] == [1.0] * 7 + [None] * 13
    fixed = collate(merged, pad_token_id=0).fixed_advantage
    assert fixed[:14].tolist() == [1.0] * 14 and torch.isnan(fixed[14:]).all()  # two rows each
    assert collate(main, pad_token_id=0).fixed_advantage is None

    part.state = em.AepoTState(entropy=0.6)
    request = part.rollout_request(12, 5)
    assert request.temperature == 0.8
    merged = part.merge_rollouts(main, extra)
    assert [t.episode_id for t in merged[:4]] == ["e100-0", "e100-3", "e100-4", "e0-3"]
    halve_off = _aepo_t_part("algorithm.aepo_t.halve_above_target=false")
    halve_off.state = part.state
    halve_off.rollout_request(12, 5)
    assert sum(t.fixed_advantage is not None for t in halve_off.merge_rollouts(main, extra)) == 7


def test_aepo_t_neutral_asks_for_nothing_and_merges_nothing():
    part = _aepo_t_part("algorithm.aepo_t.max_rows=0")
    assert part.rollout_request(8, 4) is None
    main, extra = _episodes([1, 0] * 4, first_group=0, group_size=4), _episodes([1, 0] * 2, first_group=9)
    assert part.merge_rollouts(main, extra) == main
    assert _aepo_t_part("algorithm.aepo_t.extra_share=0").rollout_request(8, 4) is None


def _aepo_t_learner(tiny_model_dir, *overrides: str):
    cfg = load_config(["algorithm=aepo_t", *SMALL, *overrides]).algorithm
    model, tokenizer = load_pretrained(tiny_model_dir)
    return Learner(model, cfg, total_steps=10, max_new_tokens=64, max_seq_len=256), tokenizer


def _aepo_t_step(learner, tokenizer):
    """One iteration as the trainer runs it: request, merge (one tempered winner replaces main
    episode 0), collate, update."""
    from agentropy.algorithms.data import collate

    from tests.learner_cases import make_trajectories

    part = learner.parts["aepo_t"]
    main = make_trajectories(tokenizer, groups=2, group_size=2, seed=3)
    request = part.rollout_request(2, 2)
    assert request is not None and request.tasks == (0,)
    extra = make_trajectories(tokenizer, groups=1, group_size=2, seed=4)
    extra = [dataclasses.replace(t, group_id=50) for t in extra]
    merged = part.merge_rollouts(main, extra)
    assert merged[0].fixed_advantage == 1.0 and merged[1:] == main[1:]
    batch = collate(merged, pad_token_id=tokenizer.pad_token_id)
    return request, batch, learner.update(batch)


def test_aepo_t_rows_train_with_advantage_one_through_the_group_filter(tiny_model_dir):
    # DAPO's filter drops groups of one outcome: the REINFORCE episode is alone in its group
    learner, tokenizer = _aepo_t_learner(tiny_model_dir, "algorithm.base=dapo")
    assert learner.cfg.filters.drop_constant_groups
    request, batch, result = _aepo_t_step(learner, tokenizer)
    rows = batch.traj_index == 0
    assert request.temperature == 1.2  # H_bar starts at 0
    assert torch.equal(result.row_advantages[rows], torch.ones(int(rows.sum())))
    m = result.metrics
    assert m["aepo_t/temperature"] == 1.2 and m["aepo_t/entropy"] == 0.0
    assert m["aepo_t/reinforce_episodes"] == 1 and m["aepo_t/reinforce_rows"] == int(rows.sum())
    part = learner.parts["aepo_t"]
    assert part.state.entropy == pytest.approx(m["aepo_t/entropy_estimate"]) and part.state.entropy > 0


@pytest.mark.parametrize(("mode", "unit"), [("rollout", True), ("recompute", False)])
def test_aepo_t_behaviour_logprobs_of_the_reinforce_rows(tiny_model_dir, mode, unit):
    """At T = 1 (a forward of the policy even with rollout log-probs) or the sampler's."""
    from agentropy.algorithms.advantages import reward_signals
    from agentropy.algorithms.data import collate
    from agentropy.algorithms.parts import Tally

    from tests.learner_cases import make_trajectories

    learner, tokenizer = _aepo_t_learner(tiny_model_dir, f"algorithm.old_logprobs={mode}",
                                         f"algorithm.aepo_t.old_logp_at_unit_temperature={unit}")
    part = learner.parts["aepo_t"]
    trajs = make_trajectories(tokenizer, groups=2, group_size=2, seed=3)
    batch = collate([dataclasses.replace(trajs[0], fixed_advantage=1.0), *trajs[1:]],
                    pad_token_id=tokenizer.pad_token_id)
    old, _ = learner._old_policy_pass(batch)
    shaped, _ = part.shape_scores(old, reward_signals(old, learner.cfg.reward, 0), 0, Tally())
    rows = batch.traj_index == 0
    mask = batch.loss_mask
    with torch.no_grad():
        unit_lp = learner._forward(learner.model, batch, hidden=False, entropy_grad=False).logp
    want_fixed = unit_lp if unit else batch.rollout_logprobs
    want_other = batch.rollout_logprobs if mode == "rollout" else unit_lp
    assert torch.allclose(shaped.old_logprobs[rows][mask[rows]], want_fixed[rows][mask[rows]], atol=1e-5)
    assert torch.allclose(shaped.old_logprobs[~rows][mask[~rows]], want_other[~rows][mask[~rows]], atol=1e-5)


def test_aepo_t_state_switches_the_temperature_and_is_checkpointed(tiny_model_dir):
    from agentropy.algorithms import entropy_methods as em

    learner, tokenizer = _aepo_t_learner(tiny_model_dir)
    part = learner.parts["aepo_t"]
    for h, t in ((0.0, 1.2), (0.5, 1.2), (0.51, 0.8)):  # T_high at or below the target 0.5
        part.state = em.AepoTState(entropy=h)
        assert part.rollout_request(4, 2).temperature == t
    part.state = em.AepoTState()
    _aepo_t_step(learner, tokenizer)
    state = learner.state_dict()
    assert state["aepo_t"] == {"entropy": part.state.entropy, "step": 1}
    fresh, _ = _aepo_t_learner(tiny_model_dir)
    fresh.load_state_dict(state)
    again = fresh.parts["aepo_t"]
    assert again.state == part.state and again.step == 1
    assert again.rollout_request(4, 2) == part.rollout_request(4, 2)


# ------------------------------------------------------------------------------------------- ARES

def _ares_case():
    """Five rows: trajectory 0 has two (group 0, won), 1 one (group 0, won), 2 and 3 one each
    (group 1: one won, one lost). Completion entropies (6 tokens, window 1: each position sees the
    next token's entropy)."""
    from tests.learner_cases import rows_batch

    batch = rows_batch(group=[0, 0, 0, 1, 1], traj=[0, 0, 1, 2, 3], turn=[0, 1, 0, 0, 0],
                       success=[1, 1, 1, 1, 0], prompt_len=3, completion_len=6)
    completion = torch.tensor([[0, 2, 2, 2, 0, 0],   # window [2 2 2 0 0 0]: 3 tokens at 2
                               [0, 2, 2, 0, 0, 0],   # [2 2 0 0 0 0]: 2
                               [0, 2, 0, 0, 0, 0],   # [2 0 0 0 0 0]: 1
                               [0, 2, 2, 0, 0, 0],   # 2
                               [0, 1, 1, 1, 0, 0]],  # [1 1 1 0 0 0]: 0 at the threshold
                              dtype=torch.float32)
    entropy = torch.zeros(batch.input_ids.shape)
    entropy[:, 3:9] = completion
    return batch.replace(old_entropy=entropy)


def _shape(part, batch):
    from agentropy.algorithms.advantages import reward_signals
    from agentropy.algorithms.parts import Tally
    from agentropy.configs.schema import RewardConfig

    signals = reward_signals(batch, RewardConfig(), 0)
    tally = Tally()
    shaped_batch, shaped = part.shape_scores(batch, signals, 0, tally)
    return shaped_batch, (shaped.scores - signals.scores).tolist(), tally.result()


def test_ares_shapes_the_scores_by_hand():
    """theta = mean of the rows' largest window entropy (percentile 100) = (2+2+2+2+1)/5 = 1.8.
    Counts: trajectory 0: 3 + 2 = 5, 1: 1, 2: 2, 3: 0. Buckets: group 0 wins all (easy), group 1
    half (medium); targets round(mean): easy 3, medium 1. With alpha 0.5:
    - trajectory 0, easy and won, delta 2, M = max(1, 0.15 x 3) = 1: Huber(1, kappa 2) = 0.25,
      -(0.25 / (1 + 2)) x 0.5 = -1/24, times reward.scale 10 on both its rows: -0.41667;
    - trajectory 1 (delta -2) and 2 (medium, |delta| = 1 = M): 0;
    - trajectory 3, medium and lost, delta -1: sigmoid(0) x 0.5 x 0.8 = 0.2, times 10: 2.0."""
    from agentropy.algorithms.entropy_parts import AresPart

    cfg = cm.AresConfig(enabled=True, window=1, threshold_percentile=100.0)
    part = AresPart(cfg, reward_scale=10.0, trigger_ids=None)
    shaped_batch, bonus, metrics = _shape(part, _ares_case())
    assert bonus == pytest.approx([-5 / 12, -5 / 12, 0.0, 0.0, 2.0], abs=1e-6)
    assert part.theta == pytest.approx(1.8)
    assert part.target.tolist() == [3.0, 1.0, 0.0] and part.alpha.tolist() == [0.5, 0.5, 0.5]
    assert metrics["ares/count"] == pytest.approx(2.0) and metrics["ares/theta"] == pytest.approx(1.8)
    assert torch.equal(shaped_batch.columns["kl_weight"], torch.ones(shaped_batch.input_ids.shape,
                                                                     dtype=torch.float64))
    # Trigger words: only token id 12 counts (row 0 position 4, row 1 position 3; the other rows
    # have it in the prompt): trajectory 0 counts 2, the others 0.
    part = AresPart(cfg, reward_scale=10.0, trigger_ids=torch.tensor([12]))
    _, _, metrics = _shape(part, _ares_case())
    assert metrics["ares/count"] == pytest.approx(0.5)


def test_ares_alpha_follows_the_counts_and_the_state_is_checkpointed():
    from agentropy.algorithms.entropy_parts import AresPart

    cfg = cm.AresConfig(enabled=True, window=1, threshold_percentile=100.0)
    part = AresPart(cfg, reward_scale=10.0, trigger_ids=None)
    batch = _ares_case()
    _shape(part, batch)
    # The second batch: 2 added to every completion entropy, so every position but the last of a
    # row is at >= 2 > theta (0.99 x 1.8 + 0.01 x 4): 5 per row. Easy mean 7.5 against the target
    # 3: alpha 0.5 + 0.05 x 4.5 = 0.725; medium 5 against 1: 0.7; hard absent: unchanged.
    entropy = batch.columns["old_entropy"] + 2 * batch.loss_mask
    _shape(part, batch.replace(old_entropy=entropy))
    assert part.theta == pytest.approx(0.99 * 1.8 + 0.01 * 4.0)
    assert part.alpha.tolist() == pytest.approx([0.725, 0.7, 0.5])
    assert part.target.tolist() == [8.0, 5.0, 0.0]  # round(7.5) = 8 (half to even), 5, kept
    saved = part.state_dict()
    other = AresPart(cfg, reward_scale=10.0, trigger_ids=None)
    other.load_state_dict(saved)
    assert other.state_dict() == saved


def test_ares_neutral_shaping_is_zero():
    from agentropy.algorithms.entropy_parts import AresPart

    part = AresPart(dataclasses.replace(cm.neutral(cm.AresConfig), enabled=True), 10.0, None)
    _, bonus, _ = _shape(part, _ares_case())
    assert bonus == [0.0] * 5


def test_ares_beta_weights_the_kl_term(tiny_model_dir, batch):
    import math

    from agentropy.algorithms import entropy_methods as em

    cfg = load_config(["algorithm=ares", *SMALL]).algorithm
    assert cfg.kl.coef > 0
    losses = []
    for log_beta in (0.0, math.log(2.0)):
        model, _ = load_pretrained(tiny_model_dir)
        learner = Learner(model, cfg, total_steps=10, max_new_tokens=64, max_seq_len=256)
        learner.parts["ares"].kl_state = em.AresKLState(log_beta=(log_beta,) * 3)
        # the reference is the policy itself at the start: perturb it so the KL is not 0
        with torch.no_grad():
            for p in learner.parts["kl"].ref_model.parameters():
                p.add_(0.01 * torch.randn(p.shape, generator=torch.Generator().manual_seed(0)))
        metrics = learner.update(batch).metrics
        losses.append(metrics["actor/loss_kl"])
        assert [v for k, v in metrics.items() if k.startswith("ares/kl_") and v > 0]  # measured per bucket
    assert losses[0] > 0 and losses[1] == pytest.approx(2 * losses[0], rel=1e-5)

"""The registered estimators on hand-made batches: the reward the advantages see, GRPO over rows
or trajectories, GiGPO's episode + step advantage, EMPG's wiring, GAE; the registries' checks."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from agentropy.algorithms.advantages import AdvantageInputs, reward_signals
from agentropy.algorithms.registry import ADVANTAGES, POLICY_LOSSES, Registry
from agentropy.configs.schema import AlgorithmConfig, GiGPOConfig, GroupConfig, RewardConfig

from tests.learner_cases import rows_batch


def _cfg(**kw) -> AlgorithmConfig:
    return AlgorithmConfig(**kw)


def _two_trajectories():
    # Group 0: trajectory 0 won in 2 turns (anchors a, b); trajectory 1 lost in 2 turns
    # (anchors a, c), its second action invalid.
    return rows_batch(group=[0, 0, 0, 0], traj=[0, 0, 1, 1], turn=[0, 1, 0, 1],
                      anchor=[0, 1, 0, 2], success=[1, 1, 0, 0], rewards=[0, 1, 0, 0],
                      valid=[True, True, True, False])


def test_reward_signals_success_penalty_and_tool_bonus():
    b = _two_trajectories()
    # success x 10 at every row; -0.1 on the invalid row; step reward 10 at the won last step.
    s = reward_signals(b, RewardConfig(), step=0)
    assert s.scores.tolist() == pytest.approx([10, 10, 0, -0.1])
    assert s.step_rewards.tolist() == [0, 10, 0, 0]
    # Tool bonus min(1, 0.1 x 2 actions) = 0.2, weight (1 + cos(pi 100 / 200)) / 2 = 0.5 -> +0.1.
    s = reward_signals(b, RewardConfig(tool_call_coef=0.1, tool_call_steps=200), step=100)
    assert s.tool_weight == pytest.approx(0.5)
    assert s.scores.tolist() == pytest.approx([10.1, 10.1, 0.1, 0.0])
    # The env's own rewards: outcome = scale x episode return (1 for trajectory 0).
    s = reward_signals(b, RewardConfig(outcome="return", scale=1.0), step=0)
    assert s.scores.tolist() == pytest.approx([1, 1, 0, -0.1])
    assert s.step_rewards.tolist() == [0, 1, 0, 0]


def test_grpo_statistics_over_rows_or_trajectories():
    # Trajectory 0 has three rows scoring 10, trajectory 1 one row scoring 0.
    # Over rows: mean 30 / 4 = 7.5, deviations [2.5 x 3, -7.5], unbiased var (3 x 6.25 + 56.25) / 3
    # = 25, std 5: A = [0.5, 0.5, 0.5, -1.5].
    # Over trajectories: scores [10, 0], mean 5, std sqrt(50) = 7.0711: A = [0.7071 x 3, -0.7071].
    b = rows_batch(group=[0] * 4, traj=[0, 0, 0, 1], turn=[0, 1, 2, 0], success=[1, 1, 1, 0])
    inputs = AdvantageInputs(reward_signals(b, RewardConfig(), 0))
    rows = ADVANTAGES.get("grpo")(b, _cfg(), inputs)
    assert rows.row_advantages.tolist() == pytest.approx([0.5, 0.5, 0.5, -1.5], abs=1e-5)
    traj = ADVANTAGES.get("grpo")(b, _cfg(group=GroupConfig(over_rows=False)), inputs)
    assert traj.row_advantages.tolist() == pytest.approx([0.7071, 0.7071, 0.7071, -0.7071], abs=1e-4)
    # Broadcast over the completion tokens only.
    assert torch.equal(rows.advantages != 0, b.loss_mask)


def test_gigpo_episode_plus_step_by_hand():
    # Without std (mean_norm). Scores [10, 10, 0, -0.1]; episode mean 19.9 / 4 = 4.975:
    #   A_E = [5.025, 5.025, -4.975, -5.075].
    # Step returns, gamma 0.95: trajectory 0 rewards [0, 10] -> [9.5, 10]; trajectory 1 [0, 0]
    #   -> [0, 0], minus 0.1 on the invalid row -> [0, -0.1].
    # Anchor a = {9.5, 0}: mean 4.75 -> +-4.75; anchors b and c are singletons -> 0.
    #   A_S = [4.75, 0, -4.75, 0];  A = A_E + 1 x A_S = [9.775, 5.025, -9.725, -5.075].
    b = _two_trajectories()
    cfg = _cfg(advantage="gigpo", group=GroupConfig(norm_by_std=False),
               gigpo=GiGPOConfig(step_norm_by_std=False))
    out = ADVANTAGES.get("gigpo")(b, cfg, AdvantageInputs(reward_signals(b, cfg.reward, 0)))
    assert out.row_advantages.tolist() == pytest.approx([9.775, 5.025, -9.725, -5.075], abs=1e-5)


def test_empg_modulates_the_base_estimator():
    # With equal step entropies H~ = 0 everywhere: g = 1 and f = 1 where a next step exists,
    # so A = A_grpo + zeta x [1, 0, 1, 0], then minus its mean (zeta / 2).
    b = _two_trajectories()
    cfg = _cfg(advantage="empg")
    inputs = AdvantageInputs(reward_signals(b, cfg.reward, 0), old_entropy=b.loss_mask.float() * 2.0)
    base = ADVANTAGES.get("grpo")(b, cfg, inputs).row_advantages
    out = ADVANTAGES.get("empg")(b, cfg, inputs).row_advantages
    bonus = torch.tensor([0.1, 0.0, 0.1, 0.0])
    assert out.tolist() == pytest.approx((base + bonus - (base + bonus).mean()).tolist(), abs=1e-6)
    cfg_g = dataclasses.replace(cfg, empg=dataclasses.replace(cfg.empg, over="gigpo"))
    gigpo = ADVANTAGES.get("gigpo")(b, cfg_g, inputs).row_advantages
    out_g = ADVANTAGES.get("empg")(b, cfg_g, inputs).row_advantages
    assert out_g.tolist() == pytest.approx((gigpo + bonus - (gigpo + bonus).mean()).tolist(), abs=1e-5)
    with pytest.raises(ValueError, match="entropies"):
        ADVANTAGES.get("empg")(b, cfg, AdvantageInputs(inputs.signals))


def test_gae_estimator_places_the_score_on_the_last_token():
    # gamma = lambda = 1, V = 0: A_t = R at every completion token; unwhitened returns = R.
    b = rows_batch(group=[0, 1], traj=[0, 1], turn=[0, 0], success=[1, 0], completion_len=[2, 3])
    cfg = _cfg(advantage="gae")
    cfg = dataclasses.replace(cfg, ppo=dataclasses.replace(cfg.ppo, whiten=False))
    out = ADVANTAGES.get("gae")(b, cfg, AdvantageInputs(reward_signals(b, cfg.reward, 0),
                                                        values=torch.zeros(b.input_ids.shape)))
    assert out.advantages[b.loss_mask].tolist() == pytest.approx([10, 10, 0, 0, 0])
    assert out.returns[b.loss_mask].tolist() == pytest.approx([10, 10, 0, 0, 0])
    assert ADVANTAGES.get("gae").needs == {"values"}


def test_registries_list_their_names():
    assert ADVANTAGES.names() == ["canon", "empg", "gae", "gigpo", "grpo", "hapo"]
    assert POLICY_LOSSES.names() == ["clip_cov", "kl_cov", "ppo_clip"]
    with pytest.raises(KeyError, match="known: canon, empg, gae, gigpo, grpo, hapo"):
        ADVANTAGES.get("rloo")
    local: Registry = Registry("thing")
    local.register("a")(len)
    with pytest.raises(ValueError, match="already registered"):
        local.register("a")(len)

"""Algorithm configs: methods compose over every base recipe, recipe values reach the typed
config, and unknown names or impossible combinations fail naming the key."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from agentropy.configs.compose import load_config
from agentropy.configs.schema import ConfigError

METHODS = ["epo", "empg", "spear"]
BASES = ["grpo", "gigpo", "dapo", "drbot", "ppo"]


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("base", BASES)
def test_methods_compose_over_every_base(method, base):
    if method == "empg" and base == "ppo":
        with pytest.raises(ConfigError, match=r"algorithm\.empg\.over"):
            load_config([f"algorithm={method}", f"algorithm.base={base}"])
        return
    cfg = load_config([f"algorithm={method}", f"algorithm.base={base}"]).algorithm
    assert cfg.name == method and cfg.base == base
    plain = load_config([f"algorithm={base}"]).algorithm
    # The method keeps what it does not override from its base.
    assert cfg.kl.coef == plain.kl.coef and cfg.lr == plain.lr
    assert cfg.epo.enabled == (method == "epo")
    assert cfg.replay.enabled == (method == "spear")
    assert (cfg.advantage == "empg") == (method == "empg")
    if method == "empg":
        assert cfg.empg.over == plain.advantage
    else:
        assert cfg.advantage == plain.advantage


def test_recipe_values():
    epo = load_config(["algorithm=epo", "algorithm.base=gigpo"]).algorithm
    assert epo.advantage == "gigpo" and epo.aggregation == "traj-mean-turn-mean-token-mean"
    assert (epo.epo.alpha, epo.epo.kappa_r, epo.epo.gamma, epo.entropy_coef) == (0.1, 2.0, 3.0, 0.001)
    assert epo.gigpo.gamma == 0.95 and epo.group.norm_by_std

    drbot = load_config(["algorithm=drbot"]).algorithm
    assert drbot.kl.coef == 0 and not drbot.group.norm_by_std
    assert drbot.aggregation == "seq-mean-token-sum-norm"
    assert (drbot.policy_loss.clip_low, drbot.policy_loss.clip_high, drbot.policy_loss.dual_clip_c) == (
        0.2, 0.28, 10.0)
    assert drbot.filters.group_keep_ratio == 0.75 and drbot.filters.incomplete

    spear = load_config(["algorithm=spear", "algorithm.base=drbot"]).algorithm
    assert spear.policy_loss.name == "clip_cov" and spear.replay.policy_loss.name == "clip_cov"
    assert (spear.replay.policy_loss.clip_cov_ratio, spear.replay.policy_loss.clip_cov_lb,
            spear.replay.policy_loss.clip_cov_ub) == (0.02, 2.0, 60.0)
    assert (spear.policy_loss.clip_cov_ratio, spear.policy_loss.clip_cov_ub) == (2e-4, 5.0)
    assert spear.reward.tool_call_coef == 0.1 and spear.replay.tolerate_steps == 5
    assert spear.aggregation == "seq-mean-token-sum-norm"  # from Dr.BoT

    ppo = load_config(["algorithm=ppo"]).algorithm
    assert ppo.advantage == "gae" and ppo.ppo.value_clip == 0.5 and ppo.ppo.critic_lr == 1e-5

    grpo = load_config(["algorithm=grpo"]).algorithm
    assert grpo.group.over_rows and grpo.reward.scale == 10 and grpo.reward.invalid_action_penalty == 0.1


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("algorithm.advantage=rloo", "algorithm.advantage"),
        ("algorithm.policy_loss.name=sapo", "algorithm.policy_loss.name"),
        ("algorithm.replay.policy_loss.name=sapo", "algorithm.replay.policy_loss.name"),
        ("algorithm.aggregation=mean", "algorithm.aggregation"),
        ("algorithm.lr_schedule=linear", "algorithm.lr_schedule"),
        ("algorithm.policy_loss.dual_clip_c=0.5", "algorithm.policy_loss.dual_clip_c"),
        ("algorithm.filters.group_keep_ratio=0", "algorithm.filters.group_keep_ratio"),
        ("algorithm.reward.outcome=score", "algorithm.reward.outcome"),
        ("algorithm.epo.kappa_r=-1", "algorithm.epo.kappa_r"),
        ("algorithm.empg.kk=1", "kk"),
    ],
)
def test_bad_algorithm_values_fail_naming_the_key(override, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        load_config([override])


def test_unknown_name_lists_the_known_ones():
    with pytest.raises(ConfigError, match="known: canon, empg, gae, gigpo, grpo"):
        load_config(["algorithm.advantage=rloo"])


def test_replay_capacity_must_reach_the_trigger():
    with pytest.raises(ConfigError, match=r"algorithm\.replay\.capacity"):
        load_config(["algorithm=spear", "algorithm.replay.capacity=100"])
    cfg = load_config(["algorithm=spear", "algorithm.replay.capacity=100",
                       "algorithm.replay.batch_rows=50"]).algorithm
    assert cfg.replay.capacity == 100


def test_dual_clip_can_be_turned_off():
    assert load_config(["algorithm.policy_loss.dual_clip_c=null"]).algorithm.policy_loss.dual_clip_c is None


# ------------------------------------------------------------------ recipe fixes (issue 12)
EXPERIMENT_DIR = Path(__file__).resolve().parents[1] / "configs" / "experiment"
EXPERIMENTS = sorted(p.stem for p in EXPERIMENT_DIR.glob("*.yaml"))


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_experiment_curricula_span_the_run_and_gpu_recipes_save_memory(experiment):
    cfg = load_config([f"experiment={experiment}"])
    algo = cfg.algorithm
    if algo.replay.enabled:
        assert algo.replay.loss_steps == cfg.iterations
    if algo.reward.tool_call_coef > 0 and algo.reward.tool_call_schedule == "cosine":
        assert algo.reward.tool_call_steps == cfg.iterations
    if experiment != "quickstart":
        assert algo.activation_checkpointing and algo.max_tokens_per_micro_batch > 0
        assert algo.master_weights == "float32" and cfg.agent.dtype == "bfloat16"


def test_spear_keeps_gigpo_step_std_normalisation():
    import torch
    from agentropy.algorithms.advantages import AdvantageInputs, reward_signals
    from agentropy.algorithms.registry import ADVANTAGES

    from tests.learner_cases import rows_batch

    spear = load_config(["experiment=alfworld_spear"]).algorithm
    assert not spear.group.norm_by_std and spear.gigpo.step_norm_by_std
    assert not load_config(["experiment=webshop_spear"]).algorithm.gigpo.step_norm_by_std
    # Two anchor groups with the same centred step returns but different spreads: with the std
    # the step advantages are equal, mean-only they differ (the flag reaches the estimator).
    batch = rows_batch(group=[0, 0, 0, 0], traj=[0, 1, 2, 3], turn=[0, 0, 0, 0], anchor=[0, 0, 1, 1],
                       success=[1, 0, 1, 1], rewards=[0, 0, 0, 0])
    batch = batch.replace(success=torch.tensor([1.0, 0.0, 1.0, 0.0]), rewards=torch.tensor([0.0, 0, 0, 0]))
    out = {}
    for step_std in (True, False):
        cfg = dataclasses.replace(spear, gigpo=dataclasses.replace(spear.gigpo, step_norm_by_std=step_std),
                                  reward=dataclasses.replace(spear.reward, tool_call_coef=0.0))
        signals = reward_signals(batch, cfg.reward, 0)
        adv = ADVANTAGES.get("gigpo")(batch, cfg, AdvantageInputs(signals, None, None)).advantages
        out[step_std] = (adv * batch.loss_mask).sum(1) / batch.loss_mask.sum(1)
    assert not torch.allclose(out[True], out[False])


def test_dapo_has_no_dual_clip_and_filters_by_outcome():
    from agentropy.algorithms.advantages import reward_signals
    from agentropy.algorithms.filters import group_keep, row_outcomes

    from tests.learner_cases import rows_batch

    dapo = load_config(["algorithm=dapo"]).algorithm
    assert dapo.policy_loss.dual_clip_c is None
    assert load_config(["algorithm=grpo"]).algorithm.policy_loss.dual_clip_c == 3.0
    # Group 0: both failed, one with an invalid action (scores differ by the penalty only);
    # group 1: one won. DAPO drops group 0 and keeps group 1.
    batch = rows_batch(group=[0, 0, 1, 1], traj=[0, 1, 2, 3], turn=[0, 0, 0, 0],
                       success=[0, 0, 1, 0], valid=[True, False, True, True])
    scores = reward_signals(batch, dapo.reward, 0).scores
    assert scores[0] != scores[1]
    keep = group_keep(batch, scores, dapo.filters, outcomes=row_outcomes(batch, dapo.reward.outcome))
    assert keep.tolist() == [False, False, True, True]
    assert group_keep(batch, scores, dapo.filters).tolist() == [True, True, True, True]  # the old rule


def test_invalid_penalty_hits_format_failures_by_default():
    import torch
    from agentropy.algorithms.advantages import reward_signals
    from agentropy.algorithms.data import Trajectory, Turn, collate

    def turn(valid, reason):
        return Turn(prompt_ids=(1, 2), completion_ids=(3,), completion_logprobs=(-1.0,), reward=0.0,
                    action_is_valid=valid, observation="o", action="a", invalid_reason=reason)

    turns = (turn(True, ""), turn(False, "format: no <action> tag"),
             turn(False, "env: the engine did not recognise the command"),
             turn(False, "format: no </think>; env: refused"))
    batch = collate([Trajectory(env_id="x", seed=0, group_id=0, policy_version=0, turns=turns)],
                    pad_token_id=0)
    assert batch.format_is_valid.tolist() == [True, False, True, False]
    reward = load_config(["algorithm=gigpo"]).algorithm.reward
    assert reward.penalize == "format"
    published = reward_signals(batch, reward, 0).penalties
    assert published.tolist() == pytest.approx([0.0, 0.1, 0.0, 0.1])
    every = reward_signals(batch, dataclasses.replace(reward, penalize="any"), 0).penalties
    assert every.tolist() == pytest.approx([0.0, 0.1, 0.1, 0.1])
    with pytest.raises(ConfigError, match=r"algorithm\.reward\.penalize"):
        load_config(["algorithm.reward.penalize=env"])
    assert torch.equal(batch.select([1, 2]).format_is_valid, torch.tensor([False, True]))

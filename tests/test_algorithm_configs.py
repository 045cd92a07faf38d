"""Algorithm configs: methods compose over every base recipe, recipe values reach the typed
config, and unknown names or impossible combinations fail naming the key."""

from __future__ import annotations

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
    with pytest.raises(ConfigError, match="known: empg, gae, gigpo, grpo"):
        load_config(["algorithm.advantage=rloo"])


def test_replay_capacity_must_reach_the_trigger():
    with pytest.raises(ConfigError, match=r"algorithm\.replay\.capacity"):
        load_config(["algorithm=spear", "algorithm.replay.capacity=100"])
    cfg = load_config(["algorithm=spear", "algorithm.replay.capacity=100",
                       "algorithm.replay.batch_rows=50"]).algorithm
    assert cfg.replay.capacity == 100


def test_dual_clip_can_be_turned_off():
    assert load_config(["algorithm.policy_loss.dual_clip_c=null"]).algorithm.policy_loss.dual_clip_c is None

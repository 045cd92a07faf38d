"""Configs: every YAML composes into the typed schema; typos and bad values fail naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest
from agentropy.configs.compose import load_config
from agentropy.configs.schema import ConfigError, TrainConfig

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def _options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONFIGS / group).glob("*.yaml"))


def test_default_config():
    cfg = load_config()
    assert isinstance(cfg, TrainConfig)
    assert cfg.env.id == "agentropy/TWX-v0" and cfg.agent.backend == "hf"


@pytest.mark.parametrize("group", ["env", "agent", "algorithm", "experiment"])
def test_every_option_composes(group):
    options = _options(group)
    assert options, f"configs/{group}/ is empty"
    for option in options:
        cfg = load_config([f"{group}={option}"])
        assert isinstance(cfg, TrainConfig)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("env.max_turn=3", "max_turn"),  # misspelt key
        ("agent.temprature=0.5", "temprature"),
        ("seeed=1", "seeed"),
        ("env.max_turns=abc", "max_turns"),  # wrong type
        ("agent.top_p=2.0", "agent.top_p"),  # out of range
        ("sft.detour=1.5", "sft.detour"),
        ("agent.backend=tpu", "agent.backend"),  # unknown choice
        ("algorithm.aggregation=mean", "algorithm.aggregation"),  # unknown registered name
        ("algorithm=nope", "algorithm/nope"),  # unknown algorithm
        ("env=nope", "env/nope"),
        ("env.id=agentropy/Nope-v0", "env.id"),
    ],
)
def test_bad_config_fails_naming_the_key(override, message):
    with pytest.raises(ConfigError, match=message.replace(".", r"\.")):
        load_config([override])


def test_overrides_reach_the_typed_config():
    cfg = load_config(["agent.temperature=0.4", "env.kwargs.game=sorting", "group_size=8"])
    assert cfg.agent.temperature == 0.4 and cfg.env.kwargs["game"] == "sorting"
    assert cfg.group_size == 8


def test_no_hidden_defaults_in_code():
    """Library code reads typed attributes, never cfg.get(key, default)."""
    root = CONFIGS.parent
    offenders = []
    for folder in ("agentropy", "envs", "agents", "algorithms", "configs"):
        for path in (root / folder).rglob("*.py"):
            text = path.read_text()
            if "cfg.get(" in text or "config.get(" in text:
                offenders.append(str(path.relative_to(root)))
    assert not offenders


def test_every_experiment_names_its_source():
    """Each experiment file says where its settings come from (a paper table or docs/learning.md)."""
    for path in sorted((CONFIGS / "experiment").glob("*.yaml")):
        header = "".join(line for line in path.read_text().splitlines(keepends=True) if line.startswith("#"))
        assert any(s in header for s in ("docs/algorithms.md", "docs/learning.md", "arXiv")), path.name


@pytest.mark.parametrize(
    ("experiment", "expected"),
    [
        # EPO Tab. 2/3: ScienceWorld PPO lr 3e-6, mini/micro 64/8, K 125, alpha 0.05
        ("scienceworld_ppo_epo", {"algorithm.lr": 3e-6, "algorithm.mini_batch_size": 64,
                                  "algorithm.micro_batch_size": 8, "iterations": 125,
                                  "algorithm.epo.alpha": 0.05, "algorithm.advantage": "gae"}),
        # EPO Tab. 2/3: ALFWorld GRPO lr 5e-6, 256/32, K 150, alpha 0.1, 16 x 8
        ("alfworld_grpo_epo", {"algorithm.lr": 5e-6, "algorithm.mini_batch_size": 256,
                               "iterations": 150, "algorithm.epo.alpha": 0.1, "group_size": 8,
                               "tasks_per_iteration": 16, "algorithm.lr_schedule": "cosine"}),
        # verl-agent GiGPO WebShop: mean_norm, mini-batch 64, 15 turns
        ("webshop_gigpo", {"algorithm.group.norm_by_std": False, "algorithm.mini_batch_size": 64,
                           "env.max_turns": 15, "algorithm.lr": 1e-6, "algorithm.kl.coef": 0.01}),
        # SPEAR over GiGPO: replay on, clip-cov, GiGPO's step advantage
        ("alfworld_spear", {"algorithm.replay.enabled": True, "algorithm.advantage": "gigpo",
                            "algorithm.policy_loss.name": "clip_cov", "env.max_turns": 50}),
        ("alfworld_empg", {"algorithm.advantage": "empg", "algorithm.empg.over": "grpo",
                           "algorithm.empg.zeta": 0.1}),
    ],
)
def test_published_recipe_settings(experiment, expected):
    cfg = load_config([f"experiment={experiment}"])
    for dotted, value in expected.items():
        node = cfg
        for part in dotted.split("."):
            node = getattr(node, part)
        assert node == value, (dotted, node)

"""Configs: every YAML composes into the typed schema; typos and bad values fail naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from configs.schema import ConfigError, TrainConfig, load_config

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

"""The agent's config keys and factory."""

from __future__ import annotations

import pytest
from agentropy.agents.agent import make_agent
from agentropy.configs.compose import load_config
from agentropy.configs.schema import AgentConfig, ConfigError


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("agent.prompt_mode=chat", "agent.prompt_mode"),
        ("agent.history_observation=last", "agent.history_observation"),
        ("agent.invalid_action=skip", "agent.invalid_action"),
        ("agent.history_length=-1", "agent.history_length"),
        ("agent.scripted_policy=greedy", "agent.scripted_policy"),
        ("agent.vllm.gpu_memory_utilization=0", "agent.vllm.gpu_memory_utilization"),
        ("agent.vllm.in_proces=true", "in_proces"),
    ],
)
def test_bad_agent_config_fails_naming_the_key(override, message):
    with pytest.raises(ConfigError, match=message.replace(".", r"\.")):
        load_config([override])


def test_agent_overrides_reach_the_typed_config():
    overrides = ["agent.prompt_mode=conversation", "agent.history_length=0", "agent.vllm.in_process=false"]
    cfg = load_config(overrides)
    assert cfg.agent.prompt_mode == "conversation" and cfg.agent.history_length == 0
    assert cfg.agent.vllm.in_process is False


@pytest.mark.parametrize(("backend", "name"), [("hf", "model:hf"), ("scripted", "scripted:expert")])
def test_make_agent(tiny_model_dir, backend, name):
    agent = make_agent(AgentConfig(backend=backend), tiny_model_dir)
    assert agent.name == name and agent.policy_version == 0
    memory = agent.start("twx", "Find the coin.")
    info = {"admissible_commands": ["take coin", "move west"], "expert_action": "take coin"}
    (step,) = agent.act([memory], ["You see a coin."], [info])
    assert step.prompt.ids and len(step.generation.token_ids) == len(step.generation.logprobs)
    if backend == "scripted":
        assert step.parsed.valid and step.parsed.action == "take coin"
    agent.record(memory, step, "You see a coin.")
    assert memory.history == [("You see a coin.", step.parsed.action)]
    agent.close()

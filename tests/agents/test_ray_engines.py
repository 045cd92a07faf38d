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
    expected = _tokens(local.generate(PROMPTS, GREEDY))
    assert _tokens(engines.generate(PROMPTS, GREEDY, _contexts(keys))) == expected
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


def test_engines_need_ray_and_a_backend_with_weights():
    from agentropy.configs.compose import load_config
    from agentropy.configs.schema import ConfigError

    with pytest.raises(ConfigError, match="cluster.rollout_engines=1 needs cluster=ray"):
        load_config(["cluster.rollout_engines=1"])
    with pytest.raises(ConfigError, match="engines run agent.backend=hf or vllm, not scripted"):
        load_config(["cluster=ray", "cluster.rollout_engines=1", "agent.backend=scripted"])
    assert load_config(["cluster=ray", "cluster.rollout_engines=2"]).cluster.rollout_engines == 2


def test_shareable_round_trips_every_dtype_and_shape():
    from agentropy.agents.backends.weight_sync import shareable, unshare

    state = {"w": torch.randn(3, 4), "b16": torch.randn(5).to(torch.bfloat16), "scalar": torch.tensor(2.5),
             "ids": torch.arange(6).reshape(2, 3), "t": torch.randn(4, 2).t()}
    back = unshare(shareable(state))
    assert list(back) == list(state)
    for key, value in state.items():
        assert back[key].dtype == value.dtype and back[key].shape == value.shape
        assert torch.equal(back[key], value)


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_broadcast_state_sends_every_dtype_in_aligned_buckets():
    """Rank 0 and two receivers (threads) over gloo, buckets of 64 bytes so that tensors of odd
    byte counts share buckets and one tensor is larger than a bucket."""
    import threading

    from agentropy.agents.backends.weight_sync import Manifest, broadcast_state, open_group

    state = {"a": torch.randn(3), "odd": torch.randn(5).to(torch.bfloat16), "ids": torch.arange(7),
             "big": torch.randn(40), "scalar": torch.tensor(1.5), "h": torch.randn(2, 3).to(torch.float16)}
    manifest = Manifest.of(state)
    assert [list(b) for b in manifest.buckets(64)] == [[0, 1], [2], [3], [4, 5]]  # 12+10, 56, 160, 4+12 bytes
    address, got, errors = f"tcp://127.0.0.1:{_free_port()}", {}, []

    def member(rank):
        try:
            group = open_group(address, rank, 3, nccl=False, timeout_s=60)
            got[rank] = broadcast_state(group, manifest, state if rank == 0 else None, bucket_bytes=64)
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=member, args=(r,)) for r in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    for rank in (1, 2):
        assert list(got[rank]) == list(state)
        for key, value in state.items():
            assert got[rank][key].dtype == value.dtype and torch.equal(got[rank][key], value), key


def test_learner_rank_0_broadcasts_each_update_to_the_engines(ray_local, tiny_model_dir):
    """cluster.weight_sync=broadcast: after an update of 2 learner ranks, the 2 engines generate
    what the driver's model (which pulled the same update) generates."""
    from agentropy.agents.backends.weight_sync import Manifest
    from agentropy.agents.tiny import load_pretrained
    from agentropy.algorithms.learner import LearnerSpec
    from agentropy.algorithms.memory import engine_state_dict
    from agentropy.algorithms.ray_learner import RemoteLearner
    from agentropy.configs.compose import load_config

    from tests.learner_cases import make_batch

    model, tokenizer = load_pretrained(tiny_model_dir)
    batch = make_batch(tokenizer, groups=2, group_size=4)
    algorithm = load_config(["algorithm=grpo", "algorithm.kl.coef=0", "algorithm.lr=0.05",
                             f"algorithm.mini_batch_size={batch.batch_size}",
                             "algorithm.micro_batch_size=4"]).algorithm
    spec = LearnerSpec(algorithm, model_path=str(tiny_model_dir), master_dtype="float32",
                       compute_dtype="float32", total_steps=10, max_new_tokens=64, max_seq_len=512, seed=0)
    cluster = ClusterConfig(backend="ray", learner_ranks=2, learner_cpus_per_rank=0.5, rollout_engines=2,
                            engine_cpus=0.5, weight_sync="broadcast")
    engines = RayEngines(AgentConfig(), tiny_model_dir, cluster)
    learner = None
    try:
        learner = RemoteLearner(spec, model, cluster)
        manifest = Manifest.of(engine_state_dict(model, "float32"))
        learner.link_engines(engines, manifest)
        before = _tokens(HFBackend(model, tokenizer).generate(PROMPTS, GREEDY))
        learner.update(batch)  # the driver's model pulls the update too
        engines.update_weights({}, version=1)  # the driver's copy is not sent: rank 0 broadcasts
        expected = _tokens(HFBackend(model, tokenizer).generate(PROMPTS, GREEDY))
        assert expected != before, "the update did not change the greedy completions"
        assert _tokens(engines.generate(PROMPTS, GREEDY, _contexts("abcde"))) == expected
        assert engines.policy_version == 1
        assert engines.sync_metrics()["sync/engine_bytes"] == manifest.total_bytes
    finally:
        if learner is not None:
            learner.close()
        engines.close()


def test_broadcast_needs_ranks_and_engines():
    from agentropy.configs.compose import load_config
    from agentropy.configs.schema import ConfigError

    with pytest.raises(ConfigError, match="weight_sync=broadcast sends from learner rank 0"):
        load_config(["cluster=ray", "cluster.rollout_engines=1", "cluster.weight_sync=broadcast"])


def test_colocated_engines_run_in_their_ranks_bundles(ray_local, tiny_model_dir):
    """cluster.colocate: the engines run in the learner's placement group, engine i in bundle i
    with rank i (on GPUs, sharing its GPUs; Ray does not tell an actor its bundle index, so the
    test sees the group); the run's session owns the group and removes it at close."""
    import ray
    from agentropy.agents.tiny import load_pretrained
    from agentropy.algorithms.cluster import ClusterSession
    from agentropy.algorithms.learner import LearnerSpec
    from agentropy.algorithms.ray_learner import RemoteLearner
    from agentropy.configs.compose import load_config

    cluster = ClusterConfig(backend="ray", learner_ranks=2, learner_cpus_per_rank=0.5, rollout_engines=2,
                            engine_cpus=0.5, colocate=True)
    session = ClusterSession(cluster, started=False)  # the Ray of ray_local
    model, _ = load_pretrained(tiny_model_dir)
    spec = LearnerSpec(load_config(["algorithm=grpo", "algorithm.kl.coef=0"]).algorithm,
                       model_path=str(tiny_model_dir), master_dtype="float32", compute_dtype="float32",
                       total_steps=10, max_new_tokens=64, max_seq_len=512, seed=0)
    engines = RayEngines(AgentConfig(), tiny_model_dir, cluster, group=session.learner_group())
    learner = None
    try:
        learner = RemoteLearner(spec, model, cluster, group=session.learner_group())
        group_id = session.learner_group().id.hex()
        assert [g for _, _, g in engines.where()] == [group_id] * 2  # bundle e: as scheduled
        assert [g for *_, g in learner.where()] == [group_id] * 2
    finally:
        if learner is not None:
            learner.close()
        engines.close()
        session.close()
    deadline = time.monotonic() + 30
    while ray.util.placement_group_table().get(group_id, {}).get("state") != "REMOVED":
        assert time.monotonic() < deadline, "the session left its placement group"
        time.sleep(0.2)


def test_colocate_needs_ranks_and_as_many_bundles():
    from agentropy.configs.compose import load_config
    from agentropy.configs.schema import ConfigError

    with pytest.raises(ConfigError, match="colocate puts engine i in learner rank i's bundle"):
        load_config(["cluster=ray", "cluster.rollout_engines=3", "cluster.learner_ranks=2",
                     "cluster.colocate=true"])
    with pytest.raises(ConfigError, match="two members of one NCCL group on one GPU"):
        load_config(["cluster=ray", "cluster.rollout_engines=2", "cluster.learner_ranks=2",
                     "cluster.colocate=true", "cluster.weight_sync=broadcast"])

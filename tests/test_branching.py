"""AEPO-A's branching rollout (arXiv 2510.14545; docs/algorithms.md section 14.6): the branch
rule's decisions, and the collector's forks on TWX coin with the scripted random agent (seeded,
so every run below is deterministic)."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from agentropy.agents.agent import Agent
from agentropy.agents.backends.base import Generation
from agentropy.agents.backends.scripted import ScriptedBackend
from agentropy.algorithms.data import collate
from agentropy.algorithms.entropy_parts import AepoABranchRule
from agentropy.algorithms.learner import Learner
from agentropy.algorithms.rollout import Task, collect
from agentropy.configs.compose import load_config
from agentropy.configs.methods import AepoAConfig
from agentropy.configs.schema import AgentConfig, ConfigError
from agentropy.envs.pool import EnvSpec, SerialPool

from agentropy.inspect.rerun import Rerunner
from agentropy.records.episodes import EpisodeLog, EpisodeRecord, read_episodes

COIN = EnvSpec("agentropy/TWX-v0", {"game": "coin", "max_episode_steps": 6})
TASKS = [Task(0, {"task": 0}), Task(1, {"task": 1})]
K = 4  # group size


def _rule(**changes) -> AepoABranchRule:
    cfg = AepoAConfig(**{"enabled": True, "branching": True, "global_samples": 2, **changes})
    return AepoABranchRule(cfg, vocab_size=1000, seed=0)


def _collect(tokenizer, rule, *, slots=2 * K, pool_cls=SerialPool, log=None):
    backend = ScriptedBackend(tokenizer, policy="random", seed=1)
    agent = Agent(backend, tokenizer, AgentConfig(backend="scripted"))
    with pool_cls([COIN] * slots) as pool:
        return collect(pool, agent, TASKS, K, progress=False, branch_rule=rule, first_group_id=5, log_to=log)


def _shape(trajs):
    """What a rollout decided: per episode, its group, parent (position), fork turn and actions."""
    where = {t.episode_id: i for i, t in enumerate(trajs)}
    return [(t.group_id, where.get(t.parent_id), t.fork_turn, t.train_from, t.failure,
             tuple(x.action for x in t.turns)) for t in trajs]


# ------------------------------------------------------------------------------------ the rule

def test_step_entropy_is_the_mean_of_the_first_tokens_over_ln_v():
    rule = AepoABranchRule(AepoAConfig(entropy_tokens=2), vocab_size=round(math.e ** 2))
    v = math.log(round(math.e ** 2))
    gen = Generation((1, 2, 3), (-0.1, -0.2, -0.3), "x", "stop", entropies=(0.5, 1.5, 9.0))
    assert rule.step_entropy(gen) == pytest.approx((0.5 + 1.5) / 2 / v)  # the third token is not read
    # no token entropies (vLLM): the sampled tokens' surprisal stands in
    assert rule.step_entropy(dataclasses.replace(gen, entropies=None)) == pytest.approx(0.15 / v)
    assert rule.step_entropy(Generation((), (), "x", "stop", trainable=False)) is None


def test_forks_follow_the_seeded_draw():
    rule = _rule(beam_size=3)
    key = (7, 5, 1, 2)
    u = np.random.default_rng([0, *key]).random()  # 0.5314: forks at l = 0, not at dH 0.1 with l = 4
    for d, run in ((0.0, 0), (0.3, 0), (-0.4, 2), (0.1, 4)):
        score = min(max((u + 0.5 * d) * max(0.0, 1 - 0.05 * run), 0.0), 1.0)
        want = 2 if score >= 0.5 else 0
        assert rule.forks(key=key, delta_entropy=d, consecutive=run, budget_left=5) == want
        assert rule.forks(key=key, delta_entropy=d, consecutive=run, budget_left=1) == min(want, 1)
    assert rule.forks(key=key, delta_entropy=5.0, consecutive=0, budget_left=0) == 0
    assert rule.global_samples(8) == 2 and rule.global_samples(1) == 1


# ------------------------------------------------------------------------------- the collector

@pytest.fixture(scope="module")
def branched(tiny_model, tmp_path_factory):
    """Two tasks x 4 episodes, 2 from the reset, forks whenever the score allows (threshold 0):
    logged, and played twice."""
    _, tokenizer = tiny_model
    path = tmp_path_factory.mktemp("branch") / "episodes.jsonl"
    with EpisodeLog(path) as log:
        first = _collect(tokenizer, _rule(branch_threshold=0.0), log=log)
    again = _collect(tokenizer, _rule(branch_threshold=0.0))
    return first, again, read_episodes(path)


def test_groups_keep_their_size_and_branches_their_parents(branched, tiny_model):
    trajs, _, _ = branched
    assert [t.group_id for t in trajs] == [5] * K + [6] * K
    for g in range(2):
        group = trajs[g * K:(g + 1) * K]
        assert [bool(t.parent_id) for t in group] == [False, False, True, True]  # 2 global, 2 branches
        by_id = {t.episode_id: t for t in group}
        for branch in group[2:]:
            parent = by_id[branch.parent_id]  # a member of the same group
            assert not branch.failure and 1 <= branch.fork_turn < parent.length
            # the shared prefix is the parent's turns (not generated again), then the branch samples
            assert branch.turns[:branch.fork_turn] == parent.turns[:branch.fork_turn]
            assert branch.train_from == branch.fork_turn
            assert (branch.seed, dict(branch.options)) == (parent.seed, dict(parent.options))
    # threshold 0: the first decision (turn 1 of member 0) takes beam_size - 1 = 1 fork, then
    # member 1 takes the last slot in the same round
    assert _shape(trajs)[2][1:3] == (0, 1) and _shape(trajs)[3][1:3] == (1, 1)
    # the prefix rows are trained once, in the parent
    _, tokenizer = tiny_model
    batch = collate(trajs, pad_token_id=tokenizer.pad_token_id)
    assert batch.batch_size == sum(t.length - t.fork_turn for t in trajs)


def test_the_same_seed_gives_the_same_branches(branched):
    first, again, _ = branched
    assert _shape(first) == _shape(again)


def test_a_branch_record_reruns_identically_from_the_reset(branched):
    trajs, _, records = branched
    assert sorted(r.episode_id for r in records) == sorted(t.episode_id for t in trajs)
    by_id = {t.episode_id: t for t in trajs}
    branches = [r for r in records if r.parent_id]
    assert len(branches) == 4
    for r in branches:
        assert r.fork_turn == by_id[r.episode_id].fork_turn >= 1
        assert r.parent_id in by_id and r.group_id == by_id[r.parent_id].group_id
    with Rerunner() as runner:
        reports = [runner.rerun(r) for r in records]
    assert [r.describe() for r in reports if not r.identical] == []


def test_old_records_load_without_the_branch_fields(branched):
    _, _, records = branched
    data = dataclasses.asdict(records[0])
    del data["parent_id"], data["fork_turn"]
    old = EpisodeRecord.from_dict(data)
    assert (old.parent_id, old.fork_turn) == ("", 0)


def test_no_branch_rule_and_no_budget_give_the_plain_rollout(tiny_model):
    _, tokenizer = tiny_model
    plain = _collect(tokenizer, None)
    assert all(not t.parent_id and t.fork_turn == 0 for t in plain)
    no_budget = _collect(tokenizer, _rule(global_samples=K, branch_threshold=0.0))
    assert _shape(plain) == _shape(no_budget)


def test_without_forks_the_rest_of_the_group_starts_from_the_reset(tiny_model):
    """A rule that never forks: when a group's global episodes have ended, its other members
    start from the reset; fewer slots than episodes (episodes wait for a slot)."""
    _, tokenizer = tiny_model
    never = _rule(branch_weight=0.0, branch_threshold=1.0)  # u + 0 >= 1 has probability 0
    trajs = _collect(tokenizer, never, slots=3)
    assert [t.group_id for t in trajs] == [5] * K + [6] * K
    assert all(not t.parent_id and not t.failure for t in trajs)


def test_prefix_per_branch_keeps_the_shared_rows(tiny_model):
    _, tokenizer = tiny_model
    trajs = _collect(tokenizer, _rule(branch_threshold=0.0, train_prefix_once=False))
    assert any(t.fork_turn for t in trajs) and all(t.train_from == 0 for t in trajs)


class _DivergingPool(SerialPool):
    """Slots of the branches (episodes 2, 3, 6, 7 with a slot per episode) see another observation."""

    def step(self, slots, actions):
        out = super().step(slots, actions)
        return [dataclasses.replace(r, observation=r.observation + " (moved)") if s % K >= 2 else r
                for s, r in zip(slots, out, strict=True)]


def test_a_replay_that_diverges_fails_the_branch(tiny_model):
    _, tokenizer = tiny_model
    trajs = _collect(tokenizer, _rule(branch_threshold=0.0), pool_cls=_DivergingPool)
    branches = [t for t in trajs if t.parent_id]
    assert branches and all(t.failure.startswith("branch replay diverged") for t in branches)
    assert all(not t.failure for t in trajs if not t.parent_id)


# ---------------------------------------------------------------------------------- the wiring

def test_the_aepo_a_part_gives_the_trainer_its_rule(tiny_model):
    model, tokenizer = tiny_model
    plain = load_config(["algorithm=aepo_a"])
    assert not plain.algorithm.aepo_a.branching  # algorithm=aepo_a: the benchmarked setting, no forks
    assert Learner(model, plain.algorithm, total_steps=1, max_new_tokens=8).branch_rule() is None
    cfg = load_config(["algorithm=aepo_a", "algorithm.aepo_a.branching=true"])
    rule = Learner(model, cfg.algorithm, total_steps=1, max_new_tokens=8).branch_rule()
    assert isinstance(rule, AepoABranchRule) and rule.vocab_size == model.config.vocab_size
    assert rule.global_samples(cfg.group_size) == 2 and rule.prefix_once
    with pytest.raises(ConfigError, match=r"algorithm\.aepo_a\.global_samples"):
        load_config(["algorithm=aepo_a", "algorithm.aepo_a.branching=true", "group_size=2"])
    with pytest.raises(ConfigError, match=r"algorithm\.aepo_a\.dynamic_global_samples"):
        load_config(["algorithm=aepo_a", "algorithm.aepo_a.branching=true",
                     "algorithm.aepo_a.dynamic_global_samples=true"])

"""The rollout collector: groups, per-turn validity and rewards, failures, waves of episodes,
and the episode records it writes."""

from __future__ import annotations

import json
import math

import pytest
from agentropy.agents.agent import Agent
from agentropy.agents.backends.hf import HFBackend
from agentropy.agents.backends.scripted import ScriptedBackend
from agentropy.algorithms.data import collate
from agentropy.algorithms.rollout import RolloutStats, Task, collect
from agentropy.configs.schema import AgentConfig
from agentropy.envs import env_class
from agentropy.envs.pool import EnvSpec, SerialPool, StepResult

from agentropy.records.episodes import EpisodeLog, EpisodeRecord, read_episodes
from tests.envs.cases import ENV_CASES

TURNS = 3


def _two_families() -> list[EnvSpec]:
    """One cheap case of each of two env families; a second TWX game while TWX is the only family."""
    picks: dict[str, EnvSpec] = {}
    for env_id, cases in ENV_CASES.items():
        kwargs = {**cases[0][1], "max_episode_steps": TURNS}
        picks.setdefault(env_class(env_id).family, EnvSpec(env_id, kwargs))
    specs = list(picks.values())[:2]
    if len(specs) < 2:
        specs.append(EnvSpec("agentropy/TWX-v0", {"game": "cookingworld", "max_episode_steps": TURNS}))
    return specs


@pytest.fixture(scope="module")
def model_rollout(tiny_model, tmp_path_factory):
    """8 episodes of the tiny model: 2 tasks (one per family) x group size 4, logged."""
    model, tokenizer = tiny_model
    config = AgentConfig(max_new_tokens=12, history_observation="first_sentence")
    agent = Agent(HFBackend(model, tokenizer), tokenizer, config)
    first, second = _two_families()
    path = tmp_path_factory.mktemp("rollout") / "episodes.jsonl"
    stats = RolloutStats()
    with SerialPool([first] * 4 + [second] * 4) as pool, EpisodeLog(path) as log:
        trajectories = collect(pool, agent, [Task(11, {"task": 2}), Task(12, {"task": 5})], 4,
                               log_to=log, iteration=3, first_group_id=10, stats=stats, progress=False)
    return trajectories, read_episodes(path), stats, (first, second)


def test_groups_share_their_task_and_first_observation(model_rollout):
    trajectories, _, _, specs = model_rollout
    assert [t.group_id for t in trajectories] == [10] * 4 + [11] * 4
    for g, spec in enumerate(specs):
        group = trajectories[4 * g : 4 * g + 4]
        assert {t.env_id for t in group} == {spec.env_id}
        assert {t.seed for t in group} == {11 + g} and all(t.options == {"task": (2, 5)[g]} for t in group)
        assert len({t.turns[0].observation for t in group}) == 1
        assert len({t.task_id for t in group}) == 1
        assert len({t.episode_id for t in group}) == 4
    assert trajectories[0].turns[0].observation != trajectories[4].turns[0].observation


def test_turns_carry_tokens_validity_and_rewards(model_rollout, tiny_model):
    _, tokenizer = tiny_model
    trajectories, _, stats, _ = model_rollout
    for traj in trajectories:
        assert not traj.failure and 1 <= traj.length <= TURNS
        assert traj.terminated or traj.truncated
        assert all(not (t.terminated or t.truncated) for t in traj.turns[:-1])
        for turn in traj.turns:
            assert len(turn.completion_logprobs) == len(turn.completion_ids) > 0
            assert all(lp <= 0 for lp in turn.completion_logprobs)
            assert turn.prompt_text == tokenizer.decode(turn.prompt_ids)
            assert turn.completion_text == tokenizer.decode(turn.completion_ids, skip_special_tokens=True)
            assert isinstance(turn.action_is_valid, bool) and isinstance(turn.reward, float)
            assert (turn.invalid_reason == "") == turn.action_is_valid
            assert turn.mean_entropy is not None and turn.mean_entropy > 0
            if not turn.action_is_valid:
                assert turn.invalid_reason.startswith(("format: ", "env: "))
        # The history window shows at most the previous turns, by their first sentence.
        assert "Your last" not in traj.turns[0].prompt_text
    assert stats.episodes == 8 and stats.turns == sum(t.length for t in trajectories)
    assert stats.completion_tokens == sum(len(x.completion_ids) for t in trajectories for x in t.turns)
    assert 0 < stats.generate_seconds and 0 < stats.env_seconds < stats.wall_seconds
    batch = collate(trajectories, pad_token_id=tokenizer.pad_token_id)
    assert batch.batch_size == stats.turns


def test_episode_records_round_trip(model_rollout, tiny_model):
    _, tokenizer = tiny_model
    trajectories, records, _, _ = model_rollout
    assert sorted(r.episode_id for r in records) == sorted(t.episode_id for t in trajectories)
    by_id = {t.episode_id: t for t in trajectories}
    for record in records:
        traj = by_id[record.episode_id]
        assert EpisodeRecord.from_dict(json.loads(record.to_json())) == record
        assert record.agent == "model:hf" and record.phase == "train" and record.iteration == 3
        assert record.group_id == traj.group_id and record.seed == traj.seed
        assert record.env_kwargs == dict(traj.env_kwargs) and record.options == dict(traj.options)
        assert record.initial_observation == traj.turns[0].observation
        assert record.won == traj.won and record.length == traj.length
        assert "textworld-express" in record.package_versions or record.env_id != "agentropy/TWX-v0"
        for rt, turn in zip(record.turns, traj.turns, strict=True):
            assert (rt.action, rt.action_is_valid, rt.invalid_reason) == (turn.action, turn.action_is_valid,
                                                                           turn.invalid_reason)
            assert rt.prompt == turn.prompt_text and rt.completion == turn.completion_text
            assert math.isclose(rt.logprob_sum, sum(turn.completion_logprobs), rel_tol=1e-6)
            assert len(rt.tokens) == len(rt.token_entropies) == len(turn.completion_ids)
            assert list(rt.tokens) == [tokenizer.decode([i]) for i in turn.completion_ids]
            if "\ufffd" not in "".join(rt.tokens):  # a character split over tokens shows as U+FFFD
                assert "".join(rt.tokens) == tokenizer.decode(turn.completion_ids)
            mean = sum(rt.token_entropies) / len(rt.token_entropies)
            assert math.isclose(rt.mean_entropy, mean, rel_tol=1e-6)


# --------------------------------------------------------------------------- scripted agents
COIN = EnvSpec("agentropy/TWX-v0", {"game": "coin", "max_episode_steps": 30})  # gold paths: <= 26


def _scripted(tokenizer, policy: str) -> Agent:
    return Agent(ScriptedBackend(tokenizer, policy=policy), tokenizer, AgentConfig(backend="scripted"))


def test_expert_wins_and_episodes_wait_for_free_slots(tiny_model, tmp_path):
    _, tokenizer = tiny_model
    tasks = [Task(0, {"task": 0}), Task(1, {"task": 1}), Task(2, {"task": 2})]
    with SerialPool([COIN] * 2) as pool, EpisodeLog(tmp_path / "e.jsonl") as log:  # 6 episodes, 2 slots
        trajectories = collect(pool, _scripted(tokenizer, "expert"), tasks, 2, log_to=log, phase="eval",
                               progress=False)
    assert [t.group_id for t in trajectories] == [0, 0, 1, 1, 2, 2]
    assert all(t.won and t.terminated and t.num_invalid == 0 for t in trajectories)
    assert all(math.isclose(t.total_reward, 1.0) for t in trajectories)
    assert all(lp == 0.0 for t in trajectories for turn in t.turns for lp in turn.completion_logprobs)
    records = read_episodes(tmp_path / "e.jsonl")
    assert len(records) == 6 and {r.agent for r in records} == {"scripted:expert"}
    assert {r.phase for r in records} == {"eval"}


def test_max_turns_truncates(tiny_model):
    _, tokenizer = tiny_model
    with SerialPool([COIN] * 2) as pool:
        trajectories = collect(pool, _scripted(tokenizer, "random"), [Task(5, {"task": 9})], 2, max_turns=2,
                               progress=False)
    for traj in trajectories:  # the env would allow 30 turns
        assert traj.length <= 2 and (traj.terminated or traj.truncated)
        assert traj.length == 2 or traj.won


class _FailingPool(SerialPool):
    """A serial pool whose slot 1 reports a failure on its first step."""

    def __init__(self, specs):
        super().__init__(specs)
        self.steps = 0

    def step(self, slots, actions):
        out = super().step(slots, actions)
        self.steps += 1
        if self.steps == 1 and 1 in slots:
            k = list(slots).index(1)
            out[k] = StepResult("", 0.0, False, False, {}, failure="env error: worker died")
        return out


def test_a_failed_episode_is_reported_and_the_others_finish(tiny_model, tmp_path):
    _, tokenizer = tiny_model
    random_coin = EnvSpec("agentropy/TWX-v0", {"game": "coin", "max_episode_steps": 4})
    with _FailingPool([random_coin] * 3) as pool, EpisodeLog(tmp_path / "e.jsonl") as log:
        trajectories = collect(pool, _scripted(tokenizer, "random"), [Task(3, {"task": 4})], 3, log_to=log,
                               progress=False)
    failed = trajectories[1]
    assert failed.failure == "env error: worker died" and failed.length == 0
    assert all(not t.failure for t in (trajectories[0], trajectories[2]))
    records = {r.episode_id: r for r in read_episodes(tmp_path / "e.jsonl")}
    assert records[failed.episode_id].failure == failed.failure and len(records) == 3


def test_collect_checks_its_arguments(tiny_model):
    _, tokenizer = tiny_model
    agent = _scripted(tokenizer, "random")
    pool = SerialPool([COIN, EnvSpec("agentropy/TWX-v0", {"game": "sorting"})])
    assert collect(pool, agent, [], 4, progress=False) == []
    with pytest.raises(ValueError, match="mixed pool"):
        collect(pool, agent, [Task(0), Task(1)], 2, progress=False)
    with pytest.raises(ValueError, match="group_size"):
        collect(pool, agent, [Task(0)], 0, progress=False)
    pool.close()

"""ScienceWorld (envs/scienceworld.py): gold paths win, scores and rewards follow the engine, the
admissible-commands mode, the ambiguity dialog, the caches, and the JVM's heap cap."""

from __future__ import annotations

import os
import subprocess
import sys

import gymnasium as gym
import pytest
from agentropy.envs.scienceworld import SCIENCE_TASKS, ScienceWorldEnv

from agentropy import envs  # noqa: F401
from agentropy.records.episodes import read_episodes

FAST_GOLD_TASKS = ["find-animal", "lifespan-longest-lived", "power-component", "chemistry-mix"]


def _make(**kwargs):
    return gym.make("agentropy/ScienceWorld-v0", max_episode_steps=300, **kwargs)


@pytest.fixture(scope="module")
def sci():
    """One env (one JVM) over a few tasks with short gold paths, shared by this module."""
    env = _make(tasks=FAST_GOLD_TASKS)
    yield env
    env.close()


def _first_index(env, task: str) -> int:
    return next(i for i, (name, _) in enumerate(env.unwrapped.task_list) if name == task)


def _play_gold(env, index: int):
    obs, info = env.reset(options={"task": index})
    total, steps = 0.0, []
    terminated = truncated = False
    while not (terminated or truncated):
        action = info["expert_action"]
        assert action is not None, (info["task_id"], steps)
        obs, reward, terminated, truncated, info = env.step(action)
        assert info["action_is_valid"], (action, obs)
        total += reward
        steps.append((action, obs, reward))
    return info, total, steps


@pytest.mark.parametrize("task", FAST_GOLD_TASKS)
def test_gold_path_wins_and_rewards_sum_to_the_score(sci, task):
    info, total, _ = _play_gold(sci, _first_index(sci, task))
    assert info["won"] is True and info["score"] == 1.0
    assert info["task_id"].startswith(f"science/{task}/train/")
    assert info["expert_action"] is None
    # Per-step rewards are differences of the normalised score: they add up to it.
    assert total == pytest.approx(1.0)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("task", "simplification"),
    [("boil", ""), ("grow-plant", ""), ("grow-plant", "easy"), ("test-conductivity", "")],
)
def test_longer_gold_paths_win(task, simplification):
    """Longer gold paths, and grow-plant's, which answers the ambiguity dialog with "0"."""
    env = _make(tasks=task, simplification=simplification, variations_per_task=1)
    try:
        info, total, steps = _play_gold(env, 0)
        assert info["won"] is True and info["score"] == 1.0 and total == pytest.approx(1.0)
        if task == "grow-plant" and not simplification:
            assert any(action == "0" for action, *_ in steps)
    finally:
        env.close()


def test_wrong_focus_is_lost_with_score_zero(sci):
    obs, info = sci.reset(options={"task": _first_index(sci, "find-animal")})
    obs, reward, terminated, truncated, info = sci.step("focus on air")
    assert (terminated, truncated, info["won"], info["score"], reward) == (True, False, False, 0.0, 0.0)
    obs, reward, terminated, *_ , info = sci.step("look around")
    assert terminated and not info["action_is_valid"] and "episode is over" in info["invalid_reason"]


def test_engine_decides_validity_and_reset_task_is_refused(sci):
    sci.reset(options={"task": _first_index(sci, "find-animal")})
    obs, reward, terminated, _, info = sci.step("xyzzy plugh")
    assert obs == "No known action matches that input."
    assert info["action_is_valid"] is False and info["invalid_reason"] and reward == 0.0
    # Phrasings the engine understands are valid even though no list names them.
    obs, _, _, _, info = sci.step("LOOK AROUND")
    assert info["action_is_valid"] is True and obs.startswith("This room is called the hallway")
    assert info["admissible_commands"] == []
    obs, reward, _, _, info = sci.step("reset task")
    assert info["action_is_valid"] is False and "reset()" in info["invalid_reason"]


def test_ambiguity_dialog_with_admissible_commands():
    """The admissible-commands mode: the engine's valid actions, sorted, then the numbers of an
    ambiguity prompt; an unmatched command leaves the list as it was."""
    env = _make(tasks="find-animal", admissible_commands=True, variations_per_task=1)
    try:
        obs, info = env.reset(options={"task": 0})
        first = info["admissible_commands"]
        assert first == sorted(first) and "look around" in first and "reset task" not in first
        obs, _, _, _, info = env.step("xyzzy")
        assert info["admissible_commands"] == first and info["action_is_valid"] is False
        obs, reward, _, _, info = env.step("open door")  # several closed doors in the hallway
        assert obs.startswith("Ambiguous request") and info["action_is_valid"] is True
        choices = info["admissible_commands"]
        assert choices == [str(i) for i in range(len(choices))] and len(choices) > 1
        obs, reward, _, _, info = env.step(choices[0])
        assert obs == "The door is now open." and info["action_is_valid"] is True
        assert "look around" in info["admissible_commands"]
    finally:
        env.close()


def test_gold_cache_gives_the_same_game(tmp_path):
    """The first reset of a variation generates its gold path inside the engine; later resets
    load it from the cache. Both must start the same game."""
    env = _make(tasks="find-animal", split="test", variations_per_task=2, cache_dir=tmp_path)
    try:
        runs = []
        for _ in range(2):
            info, total, steps = _play_gold(env, 1)
            runs.append((info["task_id"], steps))
        assert runs[0] == runs[1] and info["won"]
        version_dir = next(tmp_path.iterdir())
        gold_files = list((version_dir / "gold" / "find-animal").iterdir())
        assert [p.name for p in gold_files] == [f"none-{runs[0][0].rsplit('/', 1)[1]}.json"]
        assert not [p for p in version_dir.rglob("*") if p.name.startswith(".")]  # no temp files
    finally:
        env.close()


def _rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        line = next(line for line in f if line.startswith("VmRSS:"))
    return int(line.split()[1])


def test_jvm_heap_is_capped(sci):
    engine = sci.unwrapped._engine
    pid = engine.process.pid
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        argv = f.read().split(b"\0")
    assert b"-Xmx512m" in argv
    _play_gold(sci, _first_index(sci, "chemistry-mix"))
    assert _rss_kb(pid) < 600 * 1024


def test_task_selection_and_splits(sci):
    names = {name for name, _ in sci.unwrapped.task_list}
    assert names == set(FAST_GOLD_TASKS)
    assert len(SCIENCE_TASKS) == 30 and "boil" in SCIENCE_TASKS
    with pytest.raises(ValueError, match="unknown ScienceWorld task"):
        ScienceWorldEnv(tasks="bake-a-cake")
    with pytest.raises(ValueError, match="simplification"):
        ScienceWorldEnv(tasks="boil", simplification="easy,fly")
    with pytest.raises(ValueError, match="unknown split"):
        ScienceWorldEnv(tasks="boil", split="valid")


@pytest.mark.slow
def test_all_thirty_tasks_and_disjoint_splits():
    """All 30 tasks make one train split; the package's splits never overlap."""
    env = ScienceWorldEnv(split="train")
    try:
        assert {name for name, _ in env.task_list} == set(SCIENCE_TASKS)
        for task in SCIENCE_TASKS:
            splits = {k: set(v) for k, v in env.variation_splits(task).items()}
            assert splits["train"] and splits["dev"] and splits["test"], task
            assert not (splits["train"] & splits["dev"] or splits["train"] & splits["test"]
                        or splits["dev"] & splits["test"]), task
        obs, info = env.reset(seed=0)
        assert info["task_id"].split("/")[1] in SCIENCE_TASKS and info["task"]
    finally:
        env.close()


def _play_in_a_fresh_process(out_dir, one_cpu: bool = False) -> list[tuple]:
    """Seeded find-animal episodes played by `agentropy play` in a new Python process (a new JVM),
    optionally pinned to one CPU (a JVM there starts fewer threads, as on a smaller machine)."""

    def pin() -> None:
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})

    done = subprocess.run(
        [sys.executable, "-m", "agentropy.cli", "play", "--env", "agentropy/ScienceWorld-v0",
         "--kwargs", '{"tasks": "find-animal"}', "--agent", "random", "--episodes", "4",
         "--seed", "0", "--max-turns", "4", "--out", str(out_dir)],
        capture_output=True, text=True, timeout=600, preexec_fn=pin if one_cpu else None)
    assert done.returncode == 0, done.stderr
    return [(r.task_id, r.seed, [(t.observation, t.action, t.reward) for t in r.turns])
            for r in read_episodes(out_dir / "episodes.jsonl")]


@pytest.mark.slow
def test_seeded_episodes_are_identical_across_processes(tmp_path):
    """The engine lists a room's objects in the order of the JVM's identity hashes, which follow
    the order in which the JVM started its threads: without DETERMINISTIC_JVM_OPTIONS two
    processes (here one of them on one CPU) showed the same seeded room differently."""
    first = _play_in_a_fresh_process(tmp_path / "a")
    second = _play_in_a_fresh_process(tmp_path / "b", one_cpu=True)
    assert len(first) == 4 and all(turns for _, _, turns in first)
    assert first == second

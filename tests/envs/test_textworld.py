"""TextWorld (envs/textworld.py): generated games of each type and a user's game
file are won by the expert, the game cache is safe, and Frotz's command-line traps stay shut."""

from __future__ import annotations

import multiprocessing
import warnings

import gymnasium as gym
import pytest
from agentropy.envs.textworld import TEXTWORLD_GAMES, TEXTWORLD_SPLITS, TextWorldEnv

from agentropy import envs  # noqa: F401


def _make(**kwargs):
    return gym.make("agentropy/TextWorld-v0", max_episode_steps=100, **kwargs)


def _play_expert(env, **reset_kwargs):
    obs, info = env.reset(**reset_kwargs)
    observations, total = [obs], 0.0
    terminated = truncated = False
    while not (terminated or truncated):
        assert info["expert_action"] is not None, observations[-1]
        obs, reward, terminated, truncated, info = env.step(info["expert_action"])
        assert info["action_is_valid"]
        observations.append(obs)
        total += reward
    return info, total, observations


@pytest.fixture(scope="module")
def user_game(tmp_path_factory):
    """A game built the way a user would: TextWorld's GameMaker, compiled to a .z8 file."""
    import textworld

    maker = textworld.GameMaker()
    room = maker.new_room("workshop")
    maker.set_player(room)
    box = maker.new(type="c", name="wooden box")
    box.add_property("open")
    room.add(box)
    room.add(maker.new(type="o", name="red apple"))
    with warnings.catch_warnings():  # jericho: "not fully supported" (expected for TextWorld)
        warnings.simplefilter("ignore")
        maker.set_quest_from_commands(["take red apple", "insert red apple into wooden box"])
        return maker.compile(str(tmp_path_factory.mktemp("user") / "box_game.z8"))


@pytest.mark.parametrize("game", sorted(TEXTWORLD_GAMES))
def test_walkthrough_expert_wins_generated_games(game):
    env = _make(game=game, num_games=2)
    try:
        for index in range(2):
            info, total, observations = _play_expert(env, options={"task": index})
            assert info["won"] is True and info["score"] == 1.0 and total == pytest.approx(1.0)
            assert info["task_id"] == f"textworld/{game}/train/{TEXTWORLD_SPLITS['train'][index]}"
            # The text reads like the game, without Frotz's banner, prompt or end-of-game menu.
            assert "$$" not in observations[0] and info["task"] in observations[0]
            assert not any(o.rstrip().endswith(">") or "RESTART" in o for o in observations)
    finally:
        env.close()


def test_replanning_expert_recovers_after_a_detour():
    env = _make(game="cooking", num_games=1, expert_replans=True)
    walk = _make(game="cooking", num_games=1)
    try:
        obs, info = env.reset(options={"task": 0})
        walk.reset(options={"task": 0})
        detour = next(c for c in info["admissible_commands"] if c.startswith("examine"))
        info = env.step(detour)[4]
        assert walk.step(detour)[4]["expert_action"] is None  # the walkthrough expert gives up
        terminated = truncated = False
        while not (terminated or truncated):
            obs, _, terminated, truncated, info = env.step(info["expert_action"])
        assert info["won"] is True
    finally:
        env.close(), walk.close()


def test_user_game_file(user_game, tmp_path):
    env = _make(game_file=user_game)
    try:
        assert env.unwrapped.num_tasks == 1
        info, total, observations = _play_expert(env, seed=0)
        assert info["task_id"] == "textworld/custom/box_game" and info["task_type"] == "custom"
        assert info["won"] is True and info["score"] == 1.0
        assert "red apple" in info["task"]
    finally:
        env.close()
    two = TextWorldEnv(game_file=[user_game, user_game])
    assert two.num_tasks == 2
    two.close()
    with pytest.raises(FileNotFoundError):
        TextWorldEnv(game_file=tmp_path / "missing.z8")


def test_newlines_and_backslashes_never_reach_frotz(user_game):
    """Frotz runs 'a\\nb' as two commands and reads '\\X' as an escape: with admissibility
    checks off, such actions must still be refused and leave the game as it was."""
    env = _make(game_file=user_game, check_admissible=False)
    control = _make(game_file=user_game)
    try:
        env.reset(seed=0), control.reset(seed=0)
        for action in ["take red apple\ninsert red apple into wooden box", "take red apple\\n",
                       "look\r\nlook", "\\x41"]:
            obs, reward, terminated, _, info = env.step(action)
            assert info["action_is_valid"] is False and reward == 0.0 and not terminated, action
        assert env.step("look")[:2] == control.step("look")[:2]
        # Unknown commands reach the engine when checks are off, and change nothing.
        obs, reward, terminated, _, info = env.step("xyzzy")
        assert reward == 0.0 and not terminated and "recognise" in obs
        assert env.step("take red apple")[:3] == control.step("take red apple")[:3]
    finally:
        env.close(), control.close()


def test_interpreter_commands_never_reach_frotz(user_game, tmp_path, monkeypatch):
    """Frotz's 'save' and 'script' write files into the working directory and 'quit' and
    'restart' open a yes/no dialog: refused even with admissibility checks off."""
    monkeypatch.chdir(tmp_path)
    env = _make(game_file=user_game, check_admissible=False)
    try:
        env.reset(seed=0)
        for action in ["save", "script", "SCRIPT on", "restore", "quit", "q", "restart", "recording on"]:
            obs, reward, terminated, _, info = env.step(action)
            assert info["action_is_valid"] is False and "interpreter" in info["invalid_reason"], action
        assert list(tmp_path.iterdir()) == []
        info, *_ = _play_expert(env, seed=0)
        assert info["won"]
    finally:
        env.close()


def test_game_cache_writes_once_and_leaves_no_temporary_files(tmp_path):
    first = TextWorldEnv(game="treasure", cache_dir=tmp_path)
    path = first.game_path(0)
    assert path.is_file() and path.with_suffix(".json").is_file()
    assert path.parent == tmp_path / "games"
    assert path.name.startswith(f"treasure-{TEXTWORLD_SPLITS['train'][0]}-")
    files = sorted(p.name for p in path.parent.iterdir())
    assert files == sorted([path.name, path.with_suffix(".json").name])
    stamp = path.stat().st_mtime_ns
    second = TextWorldEnv(game="treasure", cache_dir=tmp_path)
    assert second.game_path(0) == path and path.stat().st_mtime_ns == stamp


def test_same_seed_same_game_when_generated_twice(tmp_path):
    """Generation is seeded: two caches generate games that play identically."""
    a = _make(game="treasure", cache_dir=tmp_path / "a")
    b = _make(game="treasure", cache_dir=tmp_path / "b")
    try:
        assert _play_expert(a, seed=7) == _play_expert(b, seed=7)
    finally:
        a.close(), b.close()


def _generate_in_child(cache_dir: str) -> str:
    return str(TextWorldEnv(game="coin", split="test", cache_dir=cache_dir).game_path(1))


@pytest.mark.slow
def test_two_processes_generating_the_same_game(tmp_path):
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(2) as pool:
        paths = pool.map(_generate_in_child, [str(tmp_path)] * 2)
    assert paths[0] == paths[1]
    names = sorted(p.name for p in (tmp_path / "games").iterdir())
    assert len(names) == 2 and not any(n.startswith(".") for n in names)
    env = _make(game="coin", split="test", cache_dir=tmp_path)
    try:
        info, *_ = _play_expert(env, options={"task": 1})
        assert info["won"]
    finally:
        env.close()


def test_splits_are_disjoint_seed_ranges_and_kwargs_are_checked():
    ranges = list(TEXTWORLD_SPLITS.values())
    for i, r in enumerate(ranges):
        for other in ranges[i + 1:]:
            assert r.stop <= other.start or other.stop <= r.start
    assert TextWorldEnv.splits == tuple(TEXTWORLD_SPLITS)
    assert TextWorldEnv(game="coin", split="valid", num_games=5).num_tasks == 5
    with pytest.raises(ValueError, match="unknown TextWorld game"):
        TextWorldEnv(game="zork")
    with pytest.raises(ValueError, match="setting"):
        TextWorldEnv(game="coin", params={"rooms": 3})
    with pytest.raises(ValueError, match="num_games"):
        TextWorldEnv(game="coin", num_games=0)


def test_the_parsers_refusals_are_invalid_without_admissibility_checks():
    """With ``check_admissible=False`` the engine judges the command: its parser's refusals
    (unknown verb, absent object, incomplete command, no exit) are invalid turns, as in
    ScienceWorld and ALFWorld; commands it carries out are valid."""
    env = _make(check_admissible=False)
    try:
        obs, info = env.reset(seed=0)
        for action in ["dance", "take unicorn", "move west", "xyzzy"]:
            obs, _, _, _, info = env.step(action)
            assert info["action_is_valid"] is False, (action, obs)
            assert info["invalid_reason"] == "the engine did not understand the command"
        exits = [c for c in info["admissible_commands"] if c.startswith("go ")]
        blocked = next(f"go {d}" for d in ("north", "south", "east", "west") if f"go {d}" not in exits)
        obs, _, _, _, info = env.step(blocked)
        assert info["action_is_valid"] is False and "can't go that way" in obs
        for action in ["inventory", "look", exits[0]]:
            obs, _, _, _, info = env.step(action)
            assert info["action_is_valid"] is True and info["invalid_reason"] == "", (action, obs)
    finally:
        env.close()

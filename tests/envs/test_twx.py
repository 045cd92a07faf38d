"""TextWorldExpress specifics: the coin explorer expert and the gold-path expert."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from agentropy.envs.twx import _CoinExplorer

from agentropy import envs  # noqa: F401

KITCHEN = (
    "You are in the kitchen. In one part of the room you see a stove. \n"
    "To the South you see a closed screen door. To the East you see the corridor. "
    "Through an open plain door, to the West you see the pantry. "
)


def test_explorer_reads_rooms_exits_and_doors():
    ex = _CoinExplorer()
    ex.observe(KITCHEN)
    assert ex.room == "kitchen"
    assert ex.exits["kitchen"] == {"south": "a closed screen door", "east": "corridor", "west": "pantry"}
    # North is absent; south hides an unknown room behind a closed door: open it first.
    assert ex.action(["move east", "open door to south", "move west", "look around"]) == "open door to south"
    assert ex.action(["take coin", "move east"]) == "take coin"


def test_explorer_goes_back_through_known_rooms_to_the_nearest_unexplored_exit():
    ex = _CoinExplorer()
    ex.observe("You are in the kitchen. \nTo the East you see the corridor. To the West you see the pantry. ")
    ex.observe("You are in the corridor. \nTo the West you see the kitchen. ")  # a dead end
    # Everything around the corridor is visited: back west to the kitchen, towards the pantry.
    assert ex.action(["move west", "look around"]) == "move west"


@pytest.mark.parametrize("params", [None, "numLocations=5,includeDoors=1,numDistractorItems=0"])
def test_explorer_wins_every_game_and_is_deterministic(params):
    env = gym.make("agentropy/TWX-v0", game="coin", params=params, split="dev", max_episode_steps=40)
    try:
        for task in range(25):
            runs = []
            for _ in range(2):  # the same game twice: the same expert path
                obs, info = env.reset(options={"task": task})
                path, terminated, truncated = [], False, False
                while not (terminated or truncated):
                    path.append(info["expert_action"])
                    obs, _, terminated, truncated, info = env.step(path[-1])
                    assert info["action_is_valid"]
                assert info["won"], (task, path)
                runs.append(path)
            assert runs[0] == runs[1]
    finally:
        env.close()


def test_explorer_advises_after_detours():
    env = gym.make("agentropy/TWX-v0", game="coin", max_episode_steps=30)
    rng = np.random.default_rng(0)
    try:
        for task in range(20):
            obs, info = env.reset(options={"task": task})
            for t in range(30):
                detour = t < 4 and rng.random() < 0.7
                action = rng.choice(info["admissible_commands"]) if detour else info["expert_action"]
                obs, _, terminated, truncated, info = env.step(str(action))
                if terminated or truncated:
                    break
            assert info["won"]
    finally:
        env.close()


def test_gold_expert_for_other_games_and_explicit_choice():
    with pytest.raises(ValueError, match="explore"):
        gym.make("agentropy/TWX-v0", game="sorting", expert="explore")
    env = gym.make("agentropy/TWX-v0", game="coin", expert="gold")
    try:
        obs, info = env.reset(seed=0)
        assert info["expert_action"] is not None  # the engine's gold path
    finally:
        env.close()


def test_unknown_actions_are_invalid_without_admissibility_checks():
    """With ``check_admissible=False`` the engine judges the command: its "Unknown action"
    answer is an invalid turn (as in ScienceWorld and ALFWorld); an admissible one is valid."""
    env = gym.make("agentropy/TWX-v0", game="coin", check_admissible=False)
    try:
        _, info = env.reset(seed=0)
        for action in ["dance", "take unicorn", "go to the moon"]:
            obs, _, _, _, info = env.step(action)
            assert obs.startswith("Unknown action") and info["action_is_valid"] is False, action
            assert info["invalid_reason"] == "the engine did not understand the command"
        for action in ["inventory", "look around", info["admissible_commands"][0]]:
            obs, _, _, _, info = env.step(action)
            assert info["action_is_valid"] is True and info["invalid_reason"] == "", (action, obs)
    finally:
        env.close()

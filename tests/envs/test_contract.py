"""The contract every registered environment keeps (envs/core.py, docs/environments.md section 1)."""

from __future__ import annotations

import os
import warnings

import gymnasium as gym
import pytest
from gymnasium.utils.env_checker import check_env

from agentropy import envs
from tests.envs.cases import ENV_CASES, all_cases

CASES = all_cases()
IDS = [f"{env_id.split('/')[1]}-{name}" for env_id, name, _ in CASES]

ADVERSARIAL = [
    "",
    "   ",
    "x" * 100_000,
    "look\nlook",
    "take coin\\nlook",
    "\\x41\\\\",
    "go\x00north",
    "\x1b[31mred\x1b[0m",
    "prendre la pièce",
    "拿硬币",
    "<action>look</action>",
    "rm -rf /; DROP TABLE",
    "%s%s%n{0}",
    "\t\r\x0b\x0c",
]


def _make(env_id, kwargs, **extra):
    return gym.make(env_id, **kwargs, **extra)


def test_every_registered_id_has_cases():
    registered = {k for k in gym.registry if k.startswith("agentropy/")}
    assert registered == set(envs.ENV_IDS)
    assert registered <= set(ENV_CASES), f"no contract cases for {registered - set(ENV_CASES)}"


@pytest.mark.parametrize(("env_id", "name", "kwargs"), CASES, ids=IDS)
def test_gymnasium_env_checker(env_id, name, kwargs):
    env = _make(env_id, kwargs)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            check_env(env.unwrapped, skip_render_check=True)
    finally:
        env.close()


def _policy(info, t):
    """A deterministic policy that walks the admissible list ("look" when the env leaves the
    list empty, as ScienceWorld does unless asked for it)."""
    commands = info["admissible_commands"]
    return commands[t % len(commands)] if commands else "look"


def _rollout(env, seed, steps=15, options=None):
    out = []
    obs, info = env.reset(seed=seed, options=options)
    out.append((obs, info))
    for t in range(steps):
        step = env.step(_policy(info, t))
        out.append(step)
        obs, reward, terminated, truncated, info = step
        if terminated or truncated:
            break
    return out


@pytest.mark.parametrize(("env_id", "name", "kwargs"), CASES, ids=IDS)
def test_same_seed_same_game(env_id, name, kwargs):
    a, b = _make(env_id, kwargs), _make(env_id, kwargs)
    try:
        assert _rollout(a, seed=11) == _rollout(b, seed=11)
        assert _rollout(a, seed=None, options={"task": 2}) == _rollout(b, seed=5, options={"task": 2})
        firsts = {a.reset(seed=s)[0] + a.reset(seed=s)[1]["task_id"] for s in range(6)}
        assert len(firsts) > 1, "different seeds should reach different tasks"
    finally:
        a.close(), b.close()


@pytest.mark.parametrize(("env_id", "name", "kwargs"), CASES, ids=IDS)
def test_step_types_and_info_keys(env_id, name, kwargs):
    env = _make(env_id, kwargs)
    try:
        obs, info = env.reset(seed=0)
        assert isinstance(obs, str) and env.observation_space.contains(obs)
        for key in ("task", "task_id", "task_type", "admissible_commands", "won", "score",
                    "action_is_valid", "invalid_reason"):
            assert key in info, key
        family = envs.env_class(env_id).family
        assert info["task_id"].startswith(f"{family}/{info['task_type']}/")
        obs, reward, terminated, truncated, info = env.step(_policy(info, 0))
        assert type(reward) is float and type(terminated) is bool and type(truncated) is bool
        assert type(info["won"]) is bool and type(info["action_is_valid"]) is bool
        assert 0.0 <= info["score"] <= 1.0
        assert info["action_is_valid"] is True
    finally:
        env.close()


@pytest.mark.parametrize(("env_id", "name", "kwargs"), CASES, ids=IDS)
def test_adversarial_actions_are_ordinary_invalid_outcomes(env_id, name, kwargs):
    """Garbage never raises, is marked invalid, and leaves the game exactly as it was."""
    env, control = _make(env_id, kwargs, max_episode_steps=1000), _make(env_id, kwargs)
    try:
        obs, info = env.reset(seed=3)
        control.reset(seed=3)
        for action in ADVERSARIAL:
            o, reward, terminated, truncated, info2 = env.step(action)
            assert info2["action_is_valid"] is False, repr(action)
            assert info2["invalid_reason"]
            assert reward == 0.0 and terminated is False
            assert env.observation_space.contains(o)
        # Not admissible -> invalid too.
        o, reward, terminated, truncated, info2 = env.step("xyzzy plugh")
        assert info2["action_is_valid"] is False
        # The game state is intact: the same valid moves give the same answers as in a fresh game.
        for t in range(5):
            action = _policy(info, t)
            s1, s2 = env.step(action), control.step(action)
            assert s1[:4] == s2[:4] and s1[4]["admissible_commands"] == s2[4]["admissible_commands"]
            info = s1[4]
            if s1[2]:
                break
        # Random Text-space samples, as check_env sends them.
        env.action_space.seed(0)
        for _ in range(100):
            env.step(env.action_space.sample())
    finally:
        env.close(), control.close()


@pytest.mark.parametrize(("env_id", "name", "kwargs"), CASES[:1], ids=IDS[:1])
def test_turn_limit_truncates_without_terminating(env_id, name, kwargs):
    env = _make(env_id, kwargs, max_episode_steps=2)
    try:
        env.reset(seed=0)
        *_, terminated, truncated, _ = env.step("not a command")
        assert (terminated, truncated) == (False, False)
        *_, terminated, truncated, _ = env.step("not a command")
        assert (terminated, truncated) == (False, True)
    finally:
        env.close()


@pytest.mark.parametrize(("env_id", "name", "kwargs"), CASES, ids=IDS)
def test_expert_wins(env_id, name, kwargs):
    env = _make(env_id, kwargs)
    if not type(env.unwrapped).has_expert:
        env.close()
        pytest.fail(f"{env_id} has no expert; the SFT warm start needs one")
    try:
        for seed in range(5):
            obs, info = env.reset(seed=seed)
            terminated = truncated = False
            while not (terminated or truncated):
                assert info["expert_action"] is not None, (seed, obs)
                obs, _, terminated, truncated, info = env.step(info["expert_action"])
                assert info["action_is_valid"]
            assert info["won"] and info["score"] == 1.0, (seed, info["task_id"])
    finally:
        env.close()


def _child_processes() -> list[str]:
    """Command lines of this process's living children (zombies included), from /proc."""
    me, out = str(os.getpid()), []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if fields[1] == me:
            out.append(f"{pid} {fields[0]} {cmd[:80]}")
    return out


@pytest.mark.parametrize(("env_id", "name", "kwargs"), CASES, ids=IDS)
def test_close_leaves_no_processes(env_id, name, kwargs):
    # by pid: a process that was there before (a session's Ray) may change state meanwhile
    before = {line.split()[0] for line in _child_processes()}
    for _ in range(2):
        env = _make(env_id, kwargs)
        env.reset(seed=0)
        env.close()
    env.close()  # closing twice is harmless
    assert [line for line in _child_processes() if line.split()[0] not in before] == []

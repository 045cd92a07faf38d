"""Play episodes and record them: ``agentropy play``.

Scripted policies need no model: ``random`` picks an admissible command uniformly, ``expert``
follows ``info["expert_action"]`` (and falls back to a random admissible command where the env
has none). They give baselines, smoke tests, and the SFT data of the training pipeline.

:func:`play_model` plays a model (``--agent model --model PATH --backend hf|vllm``) through the
rollout collector, with the prompts, parsing and episode records of training.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from agentropy import envs  # noqa: F401  (registers the ids)
from agentropy.configs.schema import AgentConfig
from agentropy.records.episodes import EpisodeLog, EpisodeRecord, TurnRecord, package_versions

__all__ = ["SCRIPTED_AGENTS", "play", "play_model", "summarize"]

SCRIPTED_AGENTS = ("random", "expert")


def _choose(agent: str, info: Mapping[str, Any], rng: np.random.Generator) -> str:
    commands = info["admissible_commands"]
    if agent == "expert" and info.get("expert_action"):
        return info["expert_action"]
    if not commands:
        return "look"
    return commands[int(rng.integers(len(commands)))]


def play(
    env_id: str,
    *,
    agent: str = "random",
    episodes: int = 10,
    out_dir: str | Path | None = None,
    env_kwargs: Mapping[str, Any] | None = None,
    seed: int = 0,
    max_turns: int | None = None,
) -> list[EpisodeRecord]:
    """Play ``episodes`` episodes of ``env_id`` with a scripted agent.

    Args:
        env_id: a registered id, e.g. ``"agentropy/TWX-v0"``.
        agent: ``"random"`` or ``"expert"``.
        episodes: how many; episode i resets with seed ``seed + i``.
        out_dir: if given, records are appended to ``out_dir/episodes.jsonl``.
        env_kwargs: keyword arguments for ``gymnasium.make``.
        seed: first reset seed; also seeds the random policy.
        max_turns: turn limit (the id's registered limit when None).

    Returns:
        The episode records, in play order.
    """
    if agent not in SCRIPTED_AGENTS:
        raise ValueError(f"unknown scripted agent {agent!r}; known: {', '.join(SCRIPTED_AGENTS)}")
    env_kwargs = dict(env_kwargs or {})
    make_kwargs = dict(env_kwargs)
    if max_turns is not None:
        make_kwargs["max_episode_steps"] = max_turns
    env = gym.make(env_id, **make_kwargs)
    rng = np.random.default_rng(seed)
    log = EpisodeLog(Path(out_dir) / "episodes.jsonl") if out_dir is not None else None
    versions = package_versions(type(env.unwrapped).engine_packages)
    records = []
    try:
        for i in range(episodes):
            obs, info = env.reset(seed=seed + i)
            first, turns = obs, []
            terminated = truncated = False
            while not (terminated or truncated):
                action = _choose(agent, info, rng)
                next_obs, reward, terminated, truncated, info = env.step(action)
                turns.append(
                    TurnRecord(
                        observation=obs,
                        action=action,
                        action_is_valid=info["action_is_valid"],
                        invalid_reason=info["invalid_reason"],
                        reward=reward,
                    )
                )
                obs = next_obs
            record = EpisodeRecord(
                episode_id=uuid.uuid4().hex[:12],
                env_id=env_id,
                env_kwargs=make_kwargs,
                seed=seed + i,
                options={},
                package_versions=versions,
                policy_version=0,
                agent=agent,
                phase="play",
                task=info["task"],
                task_id=info["task_id"],
                won=info["won"],
                score=info["score"],
                total_reward=float(sum(t.reward for t in turns)),
                terminated=terminated,
                truncated=truncated,
                turns=tuple(turns),
                initial_observation=first,
                split=getattr(env.unwrapped, "split", ""),
            )
            records.append(record)
            if log is not None:
                log.append(record)
    finally:
        env.close()
        if log is not None:
            log.close()
    return records


def play_model(
    env_id: str,
    *,
    model: str | Path,
    agent_config: AgentConfig | None = None,
    episodes: int = 10,
    out_dir: str | Path | None = None,
    env_kwargs: Mapping[str, Any] | None = None,
    seed: int = 0,
    max_turns: int | None = None,
    parallel: int = 8,
) -> list[EpisodeRecord]:
    """Play ``episodes`` episodes of ``env_id`` with a model and record them.

    Args:
        env_id: a registered id.
        model: a model folder (``agentropy make-model``, ``save_pretrained``) or a hub name.
        agent_config: backend, prompt and sampling settings (the defaults when None).
        episodes: how many; episode i resets with seed ``seed + i`` (as :func:`play` does).
        out_dir: if given, records are appended to ``out_dir/episodes.jsonl``.
        env_kwargs: keyword arguments for ``gymnasium.make``.
        seed: first reset seed.
        max_turns: turn limit (the id's registered limit when None).
        parallel: environments played at once (one generation batch).

    Returns:
        The episode records, in seed order.
    """
    from agentropy.agents.agent import make_agent
    from agentropy.algorithms.rollout import Task, collect, episode_record
    from agentropy.envs.pool import EnvSpec, make_pool

    config = agent_config or AgentConfig()
    make_kwargs = dict(env_kwargs or {})
    if max_turns is not None:
        make_kwargs["max_episode_steps"] = max_turns
    agent = make_agent(config, model)
    pool = make_pool([EnvSpec(env_id, make_kwargs)] * max(1, min(episodes, parallel)))
    log = EpisodeLog(Path(out_dir) / "episodes.jsonl") if out_dir is not None else None
    try:
        trajectories = collect(
            pool, agent, [Task(seed + i) for i in range(episodes)], 1, log_to=log, phase="play"
        )
    finally:
        pool.close()
        agent.close()
        if log is not None:
            log.close()
    return [episode_record(t, agent=agent.name, phase="play") for t in trajectories]


def summarize(records: Sequence[EpisodeRecord]) -> dict[str, float]:
    """Success rate, mean score, mean length and invalid-action rate (per turn)."""
    n = max(len(records), 1)
    turns = max(sum(r.length for r in records), 1)
    return {
        "episodes": len(records),
        "success": sum(r.won for r in records) / n,
        "score": sum(r.score for r in records) / n,
        "length": sum(r.length for r in records) / n,
        "invalid_rate": sum(r.num_invalid for r in records) / turns,
    }

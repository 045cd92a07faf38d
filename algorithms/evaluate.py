"""``agentropy eval``: a policy on a suite of envs and splits, with 95% intervals.

A suite (``configs/suite/NAME.yaml``) lists env configs (``configs/env/``) and their splits, and
fixes the episode count and the seeds: episode ``i`` of a split is task ``i`` reset with seed
``seed + i``, the same tasks the trainer's evaluation plays (``eval.seed``), so two evaluations
of one suite are comparable episode by episode. Episodes are played by the rollout collector
(:func:`agentropy.algorithms.rollout.collect`) into ``<out>/episodes.jsonl`` with
``phase="eval"``, so ``agentropy replay``, ``view`` and ``compare`` read the folder; the table is
written to ``<out>/eval.json``.

Intervals (95%): Wilson score intervals for rates (success over episodes, invalid actions over
turns); a percentile bootstrap (1000 resamples, fixed seed) for means (score, episode length).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from agentropy.agents.agent import Agent
from agentropy.agents.backends.base import SamplingParams
from agentropy.algorithms.rollout import Task, collect
from agentropy.configs.schema import ConfigError, EnvConfig
from agentropy.envs.pool import EnvSpec, make_pool

from agentropy.records.episodes import EpisodeLog, EpisodeRecord

__all__ = ["SuiteConfig", "SuiteEntry", "bootstrap_ci", "evaluate", "load_suite", "summarize", "wilson"]

Z95 = 1.959963984540054


def wilson(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval of a binomial rate ``successes / n`` ((nan, nan) when n == 0)."""
    if n <= 0:
        return math.nan, math.nan
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def bootstrap_ci(values: Sequence[float], n_boot: int = 1000, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap 95% interval of the mean of ``values`` [n] ((nan, nan) when empty)."""
    x = np.asarray(values, dtype=np.float64)
    if x.size == 0:
        return math.nan, math.nan
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, x.size, size=(n_boot, x.size))].mean(axis=1)
    return float(np.quantile(means, 0.025)), float(np.quantile(means, 0.975))


@dataclass
class SuiteEntry:
    env: str
    """an env config name (``configs/env/<env>.yaml``)"""
    splits: list[str] = field(default_factory=list)
    """splits to evaluate (empty: the env config's ``eval_splits``)"""


@dataclass
class SuiteConfig:
    envs: list[SuiteEntry]
    episodes: int = 50
    """episodes per env and split: tasks 0 .. episodes-1, one each"""
    seed: int = 1000
    """reset seed of episode i is seed + i (the trainer's ``eval.seed``)"""


def _configs_dir() -> Path:
    return Path(__file__).resolve().parent.parent / "configs"


def load_suite(name: str, overrides: dict[str, Any] | None = None) -> tuple[SuiteConfig, list[EnvConfig]]:
    """The suite ``configs/suite/<name>.yaml`` (or a yaml path) and its env configs.

    Raises:
        ConfigError: unknown suite, env config or key.
    """
    from omegaconf import OmegaConf

    path = Path(name) if name.endswith(".yaml") else _configs_dir() / "suite" / f"{name}.yaml"
    if not path.exists():
        known = sorted(p.stem for p in (_configs_dir() / "suite").glob("*.yaml"))
        raise ConfigError(f"suite={name}: no such suite; known: {', '.join(known)}")
    schema = OmegaConf.structured(SuiteConfig(envs=[]))
    try:
        raw = OmegaConf.merge(schema, OmegaConf.load(path), OmegaConf.create(overrides or {}))
        suite: SuiteConfig = OmegaConf.to_object(raw)  # type: ignore[assignment]
    except Exception as exc:  # omegaconf's validation errors: one clear line
        raise ConfigError(f"suite={name}: {exc}".splitlines()[0]) from None
    if suite.episodes <= 0:
        raise ConfigError(f"suite={name}: episodes must be positive, got {suite.episodes}")
    envs = []
    for entry in suite.envs:
        env_path = _configs_dir() / "env" / f"{entry.env}.yaml"
        if not env_path.exists():
            raise ConfigError(f"suite={name}: env config {entry.env!r} not in configs/env/")
        env_raw = OmegaConf.merge(OmegaConf.structured(EnvConfig), OmegaConf.load(env_path))
        env: EnvConfig = OmegaConf.to_object(env_raw)  # type: ignore[assignment]
        if not entry.splits:
            entry.splits = list(env.eval_splits)
        envs.append(env)
    return suite, envs


def _rows(records: Sequence[EpisodeRecord]) -> dict[str, Any]:
    n = len(records)
    won = sum(r.won for r in records)
    turns = sum(r.length for r in records)
    invalid = sum(r.num_invalid for r in records)
    scores = [r.score for r in records]
    lengths = [float(r.length) for r in records]
    return {
        "episodes": n,
        "success": won / n, "success_ci": wilson(won, n),
        "score": float(np.mean(scores)), "score_ci": bootstrap_ci(scores),
        "length": float(np.mean(lengths)), "length_ci": bootstrap_ci(lengths),
        "invalid_rate": invalid / turns if turns else 0.0, "invalid_rate_ci": wilson(invalid, turns),
    }


def summarize(records: Sequence[EpisodeRecord]) -> list[dict[str, Any]]:
    """One row per (env, split, task type) and one per (env, split) with task type ``"all"``."""
    groups: dict[tuple[str, str, str], list[EpisodeRecord]] = {}
    for r in records:
        groups.setdefault((r.env_id, r.split, "all"), []).append(r)
        if r.task_type:
            groups.setdefault((r.env_id, r.split, r.task_type), []).append(r)
    return [{"env": e, "split": s, "task_type": t, **_rows(rs)} for (e, s, t), rs in sorted(groups.items())]


def evaluate(agent: Agent, suite: SuiteConfig, envs: Sequence[EnvConfig], out: str | Path, *,
             temperature: float = 0.0, progress: bool = True) -> list[dict[str, Any]]:
    """Play the suite with ``agent`` into the run folder ``out``; write and return the table."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    sampling = SamplingParams.from_config(agent.config, temperature=temperature)
    tasks = [Task(seed=suite.seed + i, options={"task": i}) for i in range(suite.episodes)]
    records: list[EpisodeRecord] = []
    with EpisodeLog(out / "episodes.jsonl") as log:
        for entry, env in zip(suite.envs, envs, strict=True):
            for split in entry.splits:
                spec = EnvSpec(env.id, {**env.kwargs, "split": split, "max_episode_steps": env.max_turns})
                size = min(suite.episodes, max(1, env.num_workers if env.pool != "serial" else 2))
                with make_pool([spec] * size, env.pool, num_workers=env.num_workers,
                               timeout_s=env.step_timeout_s) as pool:
                    collect(pool, agent, tasks, 1, log_to=log, records=records, phase="eval",
                            sampling=sampling, progress=progress)
    table = summarize(records)
    (out / "eval.json").write_text(json.dumps(
        {"suite": {"envs": [{"env": e.env, "splits": e.splits} for e in suite.envs],
                   "episodes": suite.episodes, "seed": suite.seed},
         "agent": records[0].agent if records else "", "temperature": temperature,
         "intervals": "95%: Wilson for success and invalid_rate, percentile bootstrap (1000) for "
                      "score and length",
         "rows": table}, indent=2) + "\n")
    return table

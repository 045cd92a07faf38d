"""Generate, verify and cache household games ahead of time.

Usage::

    python -m agentropy.envs.alfworld.generate --split train --count 50            # 50 seeds x 6 task types
    python -m agentropy.envs.alfworld.generate --split valid_unseen --count 24 --out data/alfworld

Each game is sampled, solved by the scripted oracle and replayed through the real engine
(:meth:`agentropy.envs.alfworld.store.GameStore.get`); games already in the cache are only read. Games are
de-duplicated by problem hash: a key whose problem repeats an earlier one is reported and not
copied to ``--out``. ``--out DIR`` also copies the games to ``DIR/json_2.1.1/<split>/...``, the
official ALFWorld layout (playable with ``source="official", data_path=DIR`` or AlfredTWEnv).
"""

from __future__ import annotations

import argparse
import logging
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from agentropy.envs.alfworld.assets import ALFRED_TASK_TYPES
from agentropy.envs.alfworld.generator import SCENE_SIZES, SPLITS, oracle_walkthrough, sample_scene
from agentropy.envs.alfworld.official import OFFICIAL_DIR
from agentropy.envs.alfworld.store import GameStore

__all__ = ["GenerationReport", "generate", "main"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GenerationReport:
    """What :func:`generate` did. Times are wall-clock seconds summed over games."""

    games: int
    duplicates: int
    sample_seconds: float
    total_seconds: float
    walkthrough_steps: int


def generate(
    split: str,
    seeds: Sequence[int],
    task_types: Sequence[str] = ALFRED_TASK_TYPES,
    scene_size: str = "small",
    cache_dir: str | Path | None = None,
    out: str | Path | None = None,
) -> GenerationReport:
    """Make sure the games ``(split, task type, seed)`` are generated, verified and cached.

    Args:
        split: one of the three splits.
        seeds: the seeds to generate, for every task type.
        task_types: the task types.
        scene_size: a key of :data:`~agentropy.envs.alfworld.generator.SCENE_SIZES`.
        cache_dir: the cache folder (default: the env's default).
        out: if given, also copy the games to ``out/json_2.1.1/<split>/``.
    """
    from agentropy.envs.alfworld.engine import Engine

    store = GameStore(cache_dir, scene_size)
    engine = Engine()
    seen: dict[str, str] = {}
    games = duplicates = steps = 0
    sample_seconds = 0.0
    start = time.perf_counter()
    for task_type in task_types:
        for seed in seeds:
            t0 = time.perf_counter()
            oracle_walkthrough(sample_scene(split, task_type, seed, scene_size))
            sample_seconds += time.perf_counter() - t0
            stored = store.get(split, task_type, seed, engine=engine)
            digest = stored.files.traj_data["generator"]["problem_sha1"]
            if digest in seen:
                duplicates += 1
                log.warning("%s|%s|%d repeats %s", split, task_type, seed, seen[digest])
                continue
            seen[digest] = f"{split}|{task_type}|{seed}"
            games += 1
            steps += len(stored.files.walkthrough or [])
            if out is not None:
                target = Path(out) / OFFICIAL_DIR / split / stored.folder.parent.name / stored.folder.name
                if not target.exists():
                    shutil.copytree(stored.folder, target)
    return GenerationReport(games, duplicates, sample_seconds, time.perf_counter() - start, steps)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m agentropy.envs.alfworld.generate", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--split", choices=SPLITS, default="train")
    parser.add_argument("--count", type=int, default=10, help="seeds 0..count-1 per task type")
    parser.add_argument("--first", type=int, default=0, help="first seed")
    parser.add_argument("--task-types", nargs="+", choices=ALFRED_TASK_TYPES, default=list(ALFRED_TASK_TYPES))
    parser.add_argument("--scene-size", choices=sorted(SCENE_SIZES), default="small")
    parser.add_argument("--cache-dir", default=None)
    parser.add_argument("--out", default=None, help="also copy games here, in the official layout")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    report = generate(args.split, range(args.first, args.first + args.count), args.task_types,
                      args.scene_size, args.cache_dir, args.out)
    n = max(report.games + report.duplicates, 1)
    log.info("%d games (%d duplicates) in %.1f s: sampling + oracle %.1f ms/game, "
             "%.2f s/game with verification and caching, %.1f walkthrough steps/game",
             report.games, report.duplicates, report.total_seconds, 1000 * report.sample_seconds / n,
             report.total_seconds / n, report.walkthrough_steps / max(report.games, 1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

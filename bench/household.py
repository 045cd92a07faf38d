"""Household (ALFWorld) games: generation, engine load/reset, steps/s, admissible counts and the
expert's success, per split and scene size, side by side in one run.

    python bench/household.py --games 30            # small scenes, all three splits
    python bench/household.py --games 12 --sizes small full --splits train

Each game is generated into a fresh temporary cache (so generation and verification are timed),
then played by the expert and by a random admissible policy through ``ALFWorldEnv``. On the first
few games, load+reset and 20 random steps are also timed side by side on the raw textworld
``PddlEnv`` calls (``plain``) and through :class:`Engine` (memoised SAS translation and grammar
parsing), same game, same commands: the ``memo/plain`` ratios.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
from agentropy.envs.alfworld import generator as gen  # noqa: E402
from agentropy.envs.alfworld.assets import ALFRED_TASK_TYPES  # noqa: E402
from agentropy.envs.alfworld.engine import Engine  # noqa: E402
from agentropy.envs.alfworld.env import ALFWorldEnv  # noqa: E402
from agentropy.envs.alfworld.store import GameStore  # noqa: E402

PLAIN_GAMES = 6


def _side_by_side(engine: Engine, game: dict, steps: int = 20) -> tuple[float, float, float, float]:
    """(plain load+reset s, memoised load+reset s, plain steps/s, memoised steps/s)."""
    argv = sys.argv
    out = []
    for load, reset, step in ((engine._env.load, engine._env.reset, lambda c: engine._env.step(c)[0]),
                              (engine.load, engine.reset, engine.step)):
        engine._translations.clear()  # the verification just translated this problem
        t = time.perf_counter()
        load(dict(game))
        state = reset()
        out.append(time.perf_counter() - t)
        t = time.perf_counter()
        for k in range(steps):
            commands = state["admissible_commands"]
            state = step(commands[(7 * k + 3) % len(commands)])
        out.append(steps / (time.perf_counter() - t))
    sys.argv = argv
    return out[0], out[2], out[1], out[3]


def run(split: str, size: str, games: int, random_steps: int) -> dict[str, float]:
    rows: dict[str, list[float]] = {k: [] for k in (
        "gen_ms", "verify_s", "load_reset_s", "plain_s", "memo_s", "plain_steps", "memo_steps",
        "reset_again_s", "steps_per_s",
        "admissible_start", "admissible_step", "expert_len", "won", "receptacles", "objects")}
    with tempfile.TemporaryDirectory() as cache:
        store = GameStore(cache, size)
        engine = Engine()
        for i in range(games):
            task_type, seed = ALFRED_TASK_TYPES[i % 6], i // 6
            t = time.perf_counter()
            scene = gen.sample_scene(split, task_type, seed, size)
            files = gen.game_files(scene, gen.oracle_walkthrough(scene), solvable=False)
            rows["gen_ms"].append(1000 * (time.perf_counter() - t))
            rows["receptacles"].append(len(scene.receptacles))
            rows["objects"].append(len(scene.objects))
            t = time.perf_counter()
            store.get(split, task_type, seed, engine=engine)
            rows["verify_s"].append(time.perf_counter() - t)
            if i < PLAIN_GAMES:
                for key, value in zip(("plain_s", "memo_s", "plain_steps", "memo_steps"),
                                      _side_by_side(engine, files.game), strict=True):
                    rows[key].append(value)

        env = ALFWorldEnv(split=split, scene_size=size, cache_dir=cache)
        rng = np.random.default_rng(0)
        for i in range(games):
            index = 6 * (i // 6) + i % 6
            t = time.perf_counter()
            obs, info = env.reset(options={"task": index})
            rows["load_reset_s"].append(time.perf_counter() - t)
            rows["admissible_start"].append(len(info["admissible_commands"]))
            steps = 0
            while not info["won"] and info["expert_action"] is not None and steps < 50:
                obs, _, _, _, info = env.step(info["expert_action"])
                steps += 1
            rows["won"].append(float(info["won"]))
            rows["expert_len"].append(steps)
            t = time.perf_counter()
            obs, info = env.reset(options={"task": index})
            rows["reset_again_s"].append(time.perf_counter() - t)
            t, n = time.perf_counter(), 0
            for _ in range(random_steps):
                commands = info["admissible_commands"]
                obs, _, terminated, _, info = env.step(commands[int(rng.integers(len(commands)))])
                rows["admissible_step"].append(len(info["admissible_commands"]))
                n += 1
                if terminated:
                    break
            rows["steps_per_s"].append(n / (time.perf_counter() - t))
        env.close()
    return {k: statistics.fmean(v) if v else float("nan") for k, v in rows.items()} | {
        "load_reset_max": max(rows["load_reset_s"]), "games": games,
        "steps_min": min(rows["steps_per_s"]), "steps_max": max(rows["steps_per_s"]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--games", type=int, default=30)
    parser.add_argument("--splits", nargs="+", default=list(gen.SPLITS))
    parser.add_argument("--sizes", nargs="+", default=["small"])
    parser.add_argument("--random-steps", type=int, default=20)
    args = parser.parse_args()
    start = time.perf_counter()
    header = ("| split | size | games | R | O | gen ms | gen+verify s | load+reset s (max) | reset again s | "
              "steps/s (min-max) | load+reset memo/plain | steps/s memo/plain | admissible start / step | "
              "expert won | expert len |")
    print(header)
    print("|" + "---|" * (header.count("|") - 1))
    for size in args.sizes:
        for split in args.splits:
            r = run(split, size, args.games, args.random_steps)
            print(f"| {split} | {size} | {r['games']} | {r['receptacles']:.1f} | {r['objects']:.1f} | "
                  f"{r['gen_ms']:.1f} | {r['verify_s']:.2f} | "
                  f"{r['load_reset_s']:.2f} ({r['load_reset_max']:.2f}) | {r['reset_again_s']:.2f} | "
                  f"{r['steps_per_s']:.1f} ({r['steps_min']:.1f}-{r['steps_max']:.1f}) | "
                  f"{r['memo_s']:.2f}/{r['plain_s']:.2f} | {r['memo_steps']:.1f}/{r['plain_steps']:.1f} | "
                  f"{r['admissible_start']:.1f} / "
                  f"{r['admissible_step']:.1f} | {r['won']:.2f} | {r['expert_len']:.1f} |", flush=True)
    print(f"\nwall time {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()

"""Scaling out: the Ray EnvPool against the subprocess EnvPool, side by side in one run.

Both pools have the same workers and slots and play the same recorded episodes (bench/envs.py's
recordings and its lockstep player); both are open at once, play one untimed round (workers and
engines start, JVMs compile their hot code), then take turns round by round, the order
alternating, so a change in the machine's load hits both. Only ``step`` calls are timed. Target:
the Ray pool at >= 0.8x the subprocess pool's steps/s on this machine kind.

Not measured yet (those parts are not built): seconds per update for 1 vs 2 learner ranks and
weight-sync MB/s to rollout engines on Ray.

Usage (from the repository root)::

    python bench/scale.py                       # TextWorld and ScienceWorld, a few minutes
    python bench/scale.py --rounds 5 --pool-slots 4
"""

from __future__ import annotations

import argparse
import importlib.util
import logging
import os
import platform
import sys
import time
import warnings
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from agentropy.algorithms.cluster import connect  # noqa: E402
from agentropy.configs.schema import ClusterConfig  # noqa: E402
from agentropy.envs.pool import EnvSpec, make_pool  # noqa: E402

_spec = importlib.util.spec_from_file_location("bench_envs", ROOT / "bench" / "envs.py")
bench_envs = sys.modules["bench_envs"] = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench_envs)


def ray_vs_subprocess(name: str, spec: EnvSpec, episodes: Sequence, args: argparse.Namespace):
    specs = [spec] * args.pool_slots
    totals = {"ray": [0, 0.0], "subprocess": [0, 0.0]}
    with make_pool(specs, "ray", num_workers=args.pool_workers, timeout_s=600) as ray_pool, \
            make_pool(specs, "subprocess", num_workers=args.pool_workers, timeout_s=600) as sub_pool:
        pools = [("ray", ray_pool), ("subprocess", sub_pool)]
        for _, pool in pools:
            bench_envs._pool_seconds(pool, args.pool_slots, episodes)
        for r in range(args.rounds):
            for key, pool in pools if r % 2 == 0 else pools[::-1]:
                steps, seconds = bench_envs._pool_seconds(pool, args.pool_slots, episodes)
                totals[key][0] += steps
                totals[key][1] += seconds
    rate = {k: n / s for k, (n, s) in totals.items()}
    return bench_envs.Row(f"EnvPool {name}: ray vs subprocess ({args.pool_workers} workers, "
                          f"{args.pool_slots} slots)", rate["ray"], rate["subprocess"], "steps/s", ">= 0.8x")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--episodes", type=int, default=4, help="recorded TextWorld episodes")
    parser.add_argument("--textworld-game", default="cooking")
    parser.add_argument("--science-tasks", default="find-animal,chemistry-mix,power-component")
    parser.add_argument("--pool-slots", type=int, default=2)
    parser.add_argument("--pool-workers", type=int, default=2)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    warnings.filterwarnings("ignore", message=r"Game '.*' is not fully supported")  # jericho
    logging.getLogger("py4j").setLevel(logging.ERROR)

    start = time.time()
    session = connect(ClusterConfig(backend="ray"))
    try:
        kwargs, episodes = bench_envs._textworld_episodes(args.textworld_game, args.episodes)
        rows = [ray_vs_subprocess("TextWorld", EnvSpec("agentropy/TextWorld-v0", kwargs), episodes, args)]
        print(f"textworld: done ({time.time() - start:.0f} s)", file=sys.stderr)
        kwargs, episodes, _ = bench_envs._science_episodes(args.science_tasks)
        rows.append(ray_vs_subprocess("ScienceWorld", EnvSpec("agentropy/ScienceWorld-v0", kwargs),
                                      episodes, args))
        print(f"science: done ({time.time() - start:.0f} s)", file=sys.stderr)
    finally:
        session.close()
    print(f"python bench/scale.py {' '.join(argv if argv is not None else sys.argv[1:])}")
    print(f"{platform.node()}: {os.cpu_count()} CPUs, load average "
          f"{' '.join(f'{x:.1f}' for x in os.getloadavg())}, wall time {time.time() - start:.0f} s")
    print(bench_envs._table(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Scaling out: the Ray EnvPool against the subprocess EnvPool, side by side in one run.

Both pools have the same workers and slots and play the same recorded episodes (bench/envs.py's
recordings and its lockstep player); both are open at once, play one untimed round (workers and
engines start, JVMs compile their hot code), then take turns round by round, the order
alternating, so a change in the machine's load hits both. Only ``step`` calls are timed. Target:
the Ray pool at >= 0.8x the subprocess pool's steps/s on this machine kind.

Learner ranks (``--parts learner``): seconds per update of the tiny model's learner as two Ray
actors (``cluster.learner_ranks=2``, FSDP2 over gloo, the full weights pulled into the driver
after each update) against one learner in this process, on the same batch (the learner tests'
synthetic trajectories, tests/learner_cases.py) and global batch; the two take turns update by
update. And the weight sync from the ranks to the driver, in MB/s. On the tiny model (under a
million parameters) this measures the overhead of the ranks, not a speed-up; no target.

Not measured yet (not built): weight-sync MB/s to rollout engines on Ray.

Usage (from the repository root)::

    python bench/scale.py                       # TextWorld, ScienceWorld and the learner ranks
    python bench/scale.py --rounds 5 --pool-slots 4
    python bench/scale.py --parts learner --learner-groups 8
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


def learner_ranks(args: argparse.Namespace) -> list[bench_envs.Row]:
    """Seconds per update, 2 learner ranks vs 1 in this process, and the ranks' weight sync."""
    import copy
    import tempfile

    from agentropy.agents.tiny import load_pretrained, make_model
    from agentropy.algorithms.learner import LearnerSpec
    from agentropy.algorithms.ray_learner import RemoteLearner
    from agentropy.configs.compose import load_config

    from tests.learner_cases import make_batch

    with tempfile.TemporaryDirectory() as tmp:
        path = make_model(Path(tmp) / "model")
        model, tokenizer = load_pretrained(path)
        batch = make_batch(tokenizer, groups=args.learner_groups, group_size=4)
        cfg = load_config(["algorithm=grpo", "algorithm.kl.coef=0",
                           f"algorithm.mini_batch_size={batch.batch_size}",
                           f"algorithm.micro_batch_size={args.learner_micro}"]).algorithm
        spec = LearnerSpec(cfg, model_path=str(path), master_dtype="float32", compute_dtype="float32",
                           total_steps=1000, max_new_tokens=64, max_seq_len=512, seed=0)
        one = spec.build(model, tokenizer)
        two = RemoteLearner(spec, copy.deepcopy(model), ClusterConfig(backend="ray", learner_ranks=2))
        try:
            learners = [("one", one.update), ("two", two.update)]
            seconds = {"one": 0.0, "two": 0.0}
            sync = [0.0, 0.0]  # bytes, seconds
            for r in range(args.learner_updates + 1):  # the first round is untimed
                for key, update in learners if r % 2 == 0 else learners[::-1]:
                    t0 = time.perf_counter()
                    metrics = update(batch).metrics
                    if r:
                        seconds[key] += time.perf_counter() - t0
                        if key == "two":
                            sync[0] += metrics["sync/bytes"]
                            sync[1] += metrics["sync/seconds"]
        finally:
            two.close()
    n = args.learner_updates
    return [
        bench_envs.Row(f"learner update: 2 Ray ranks vs 1 in-process ({batch.batch_size} rows, tiny)",
                       seconds["two"] / n, seconds["one"] / n, "s/upd", "-", higher_is_better=False),
        bench_envs.Row("weight sync: 2 ranks -> driver (gather, object store, load)",
                       sync[0] / 2**20 / sync[1], 0.0, "MB/s", "-"),
    ]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--episodes", type=int, default=4, help="recorded TextWorld episodes")
    parser.add_argument("--textworld-game", default="cooking")
    parser.add_argument("--science-tasks", default="find-animal,chemistry-mix,power-component")
    parser.add_argument("--pool-slots", type=int, default=2)
    parser.add_argument("--pool-workers", type=int, default=2)
    parser.add_argument("--parts", nargs="*", default=["pools", "learner"], choices=["pools", "learner"])
    parser.add_argument("--learner-groups", type=int, default=4, help="groups of 4 episodes per update")
    parser.add_argument("--learner-micro", type=int, default=4, help="rows per micro-batch")
    parser.add_argument("--learner-updates", type=int, default=4, help="timed updates of each learner")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    warnings.filterwarnings("ignore", message=r"Game '.*' is not fully supported")  # jericho
    logging.getLogger("py4j").setLevel(logging.ERROR)

    start = time.time()
    # Ray counts CPUs (it does not pin them): 2 env actors x 0.5 and 2 learner ranks x 1 fit in 4
    session = connect(ClusterConfig(backend="ray", num_cpus=max(os.cpu_count() or 1, 4)))
    rows = []
    try:
        if "pools" in args.parts:
            kwargs, episodes = bench_envs._textworld_episodes(args.textworld_game, args.episodes)
            rows.append(ray_vs_subprocess("TextWorld", EnvSpec("agentropy/TextWorld-v0", kwargs),
                                          episodes, args))
            print(f"textworld: done ({time.time() - start:.0f} s)", file=sys.stderr)
            kwargs, episodes, _ = bench_envs._science_episodes(args.science_tasks)
            rows.append(ray_vs_subprocess("ScienceWorld", EnvSpec("agentropy/ScienceWorld-v0", kwargs),
                                          episodes, args))
            print(f"science: done ({time.time() - start:.0f} s)", file=sys.stderr)
        if "learner" in args.parts:
            rows += learner_ranks(args)
            print(f"learner ranks: done ({time.time() - start:.0f} s)", file=sys.stderr)
    finally:
        session.close()
    print(f"python bench/scale.py {' '.join(argv if argv is not None else sys.argv[1:])}")
    print(f"{platform.node()}: {os.cpu_count()} CPUs, load average "
          f"{' '.join(f'{x:.1f}' for x in os.getloadavg())}, wall time {time.time() - start:.0f} s")
    print(bench_envs._table(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

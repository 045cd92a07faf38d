"""Scaling out: the Ray EnvPool against the subprocess EnvPool, side by side in one run.

Both pools have the same workers and slots and play the same recorded episodes (bench/envs.py's
recordings and its lockstep player); both are open at once, play one untimed round (workers and
engines start, JVMs compile their hot code), then take turns round by round, the order
alternating, so a change in the machine's load hits both. Only ``step`` calls are timed. Target:
the Ray pool at >= 0.8x the subprocess pool's steps/s on this machine kind. TextWorld runs with 2
slots (one env per actor call, where the cost of a call shows most) and 8 (four per call; a
training iteration steps many more: the quickstart's 64 envs over 2 workers); ScienceWorld with 2.

Learner ranks (``--parts learner``): seconds per update of the tiny model's learner as two Ray
actors (``cluster.learner_ranks=2``, FSDP2 over gloo, the full weights pulled into the driver
after each update) against one learner in this process, on the same batch (the learner tests'
synthetic trajectories, tests/learner_cases.py) and global batch; the two take turns update by
update. On the tiny model (under a million parameters) this measures the overhead of the ranks
(their updates include pulling the weights into the driver), not a speed-up; no target.

Weight sync (``--parts sync``), for the tiny model and a ~30M-parameter one of the same
architecture, the kinds taking turns round by round: the learner ranks' full weights into the
driver (``RemoteLearner.pull_weights``: gather on the ranks, object store, load); the driver's
weights into rollout engines on Ray (``RayEngines.update_weights``: one put in the object store,
every engine loads it), 2 engines against 1 (the put happens once); and learner rank 0's
broadcast to 2 engines over gloo (``cluster.weight_sync=broadcast``: gather on the ranks,
broadcast, load) against the object store's 2 engines.

Usage (from the repository root)::

    python bench/scale.py                       # TextWorld, ScienceWorld and the learner ranks
    python bench/scale.py --rounds 5 --pool-slots 2 4 16
    python bench/scale.py --parts learner --learner-groups 8
    python bench/scale.py --parts sync --sync-rounds 5
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


def ray_vs_subprocess(name: str, spec: EnvSpec, episodes: Sequence, args: argparse.Namespace, slots: int):
    specs = [spec] * slots
    totals = {"ray": [0, 0.0], "subprocess": [0, 0.0]}
    with make_pool(specs, "ray", num_workers=args.pool_workers, timeout_s=600) as ray_pool, \
            make_pool(specs, "subprocess", num_workers=args.pool_workers, timeout_s=600) as sub_pool:
        pools = [("ray", ray_pool), ("subprocess", sub_pool)]
        for _, pool in pools:
            bench_envs._pool_seconds(pool, slots, episodes)
        for r in range(args.rounds):
            for key, pool in pools if r % 2 == 0 else pools[::-1]:
                steps, seconds = bench_envs._pool_seconds(pool, slots, episodes)
                totals[key][0] += steps
                totals[key][1] += seconds
    rate = {k: n / s for k, (n, s) in totals.items()}
    return bench_envs.Row(f"EnvPool {name}: ray vs subprocess ({args.pool_workers} workers, "
                          f"{slots} slots)", rate["ray"], rate["subprocess"], "steps/s", ">= 0.8x")


def learner_ranks(args: argparse.Namespace) -> list[bench_envs.Row]:
    """Seconds per update, 2 learner ranks vs 1 in this process."""
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
            for r in range(args.learner_updates + 1):  # the first round is untimed
                for key, update in learners if r % 2 == 0 else learners[::-1]:
                    t0 = time.perf_counter()
                    update(batch)
                    if r:
                        seconds[key] += time.perf_counter() - t0
        finally:
            two.close()
    n = args.learner_updates
    return [
        bench_envs.Row(f"learner update: 2 Ray ranks vs 1 in-process ({batch.batch_size} rows, tiny)",
                       seconds["two"] / n, seconds["one"] / n, "s/upd", "-", higher_is_better=False),
    ]


#: the ~30M-parameter model of the sync rows: the tiny model's architecture, wider and deeper
SYNC_30M = {"hidden_size": 512, "num_layers": 8, "num_heads": 8, "num_kv_heads": 4,
            "intermediate_size": 1536}


def weight_sync(args: argparse.Namespace) -> list[bench_envs.Row]:
    """MB/s of the ranks -> driver pull, the driver -> engines push through the object store (2
    engines vs 1) and learner rank 0's broadcast to 2 engines (vs the object store), tiny and ~30M."""
    import tempfile

    from agentropy.agents.backends.ray_engines import RayEngines
    from agentropy.agents.backends.weight_sync import Manifest
    from agentropy.agents.tiny import load_pretrained, make_model
    from agentropy.algorithms.learner import LearnerSpec
    from agentropy.algorithms.ray_learner import RemoteLearner
    from agentropy.configs.compose import load_config
    from agentropy.configs.schema import AgentConfig, TinyModelConfig

    rows = []
    cfg = load_config(["algorithm=grpo", "algorithm.kl.coef=0"]).algorithm
    for sizes in ({}, SYNC_30M):
        with tempfile.TemporaryDirectory() as tmp:
            path = make_model(Path(tmp) / "model", TinyModelConfig(**sizes))
            model, _ = load_pretrained(path)
            state = model.state_dict()
            mb = sum(t.numel() * t.element_size() for t in state.values()) / 2**20
            name = f"{sum(p.numel() for p in model.parameters()) / 1e6:.1f}M params"
            spec = LearnerSpec(cfg, model_path=str(path), master_dtype="float32", compute_dtype="float32",
                               total_steps=1000, max_new_tokens=64, max_seq_len=512, seed=0)
            # Engines reserve a quarter CPU each here: they only load weights.
            engines = {kind: RayEngines(AgentConfig(), path, ClusterConfig(backend="ray", rollout_engines=n,
                                                                           engine_cpus=0.25))
                       for kind, n in (("1", 1), ("2", 2), ("broadcast 2", 2))}
            learner = RemoteLearner(spec, model, ClusterConfig(backend="ray", learner_ranks=2))
            try:
                learner.link_engines(engines["broadcast 2"], Manifest.of(state))
                seconds = {"pull": 0.0, "1": 0.0, "2": 0.0, "broadcast 2": 0.0}
                kinds = list(seconds)
                for r in range(args.sync_rounds + 1):  # the first round is untimed
                    for kind in kinds if r % 2 == 0 else kinds[::-1]:
                        if kind == "pull":
                            took = learner.pull_weights()["sync/seconds"]
                        else:
                            engines[kind].update_weights(state, version=r)
                            took = engines[kind].sync_metrics()["sync/engine_seconds"]
                        if r:
                            seconds[kind] += took
            finally:
                learner.close()
                for pool in engines.values():
                    pool.close()
            rate = {k: mb * args.sync_rounds / v for k, v in seconds.items()}
            rows += [
                bench_envs.Row(f"weight sync: 2 ranks -> driver ({name})", rate["pull"], 0.0, "MB/s", "-"),
                bench_envs.Row(f"weight sync: driver -> 2 engines vs 1, object store ({name})",
                               rate["2"], rate["1"], "MB/s", "-"),
                bench_envs.Row(f"weight sync: rank 0 -> 2 engines, broadcast vs store ({name})",
                               rate["broadcast 2"], rate["2"], "MB/s", "-"),
            ]
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--episodes", type=int, default=4, help="recorded TextWorld episodes")
    parser.add_argument("--textworld-game", default="cooking")
    parser.add_argument("--science-tasks", default="find-animal,chemistry-mix,power-component")
    parser.add_argument("--pool-slots", type=int, nargs="+", default=[2, 8],
                        help="TextWorld rows: envs over the workers (2: one env per actor call)")
    parser.add_argument("--science-slots", type=int, default=2, help="ScienceWorld row: envs (a JVM each)")
    parser.add_argument("--pool-workers", type=int, default=2)
    parser.add_argument("--parts", nargs="*", default=["pools", "learner", "sync"],
                        choices=["pools", "learner", "sync"])
    parser.add_argument("--learner-groups", type=int, default=4, help="groups of 4 episodes per update")
    parser.add_argument("--learner-micro", type=int, default=4, help="rows per micro-batch")
    parser.add_argument("--learner-updates", type=int, default=4, help="timed updates of each learner")
    parser.add_argument("--sync-rounds", type=int, default=5, help="timed weight syncs of each kind")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    warnings.filterwarnings("ignore", message=r"Game '.*' is not fully supported")  # jericho
    logging.getLogger("py4j").setLevel(logging.ERROR)

    start = time.time()
    # Ray counts CPUs (it does not pin them): 2 env actors x 0.5 and 2 learner ranks x 1 fit in 4;
    # the object store holds a ~30M-parameter model's weights (120 MB) a few times over
    session = connect(ClusterConfig(backend="ray", num_cpus=max(os.cpu_count() or 1, 4),
                                    object_store_mb=1024))
    rows = []
    try:
        if "pools" in args.parts:
            kwargs, episodes = bench_envs._textworld_episodes(args.textworld_game, args.episodes)
            for slots in args.pool_slots:
                rows.append(ray_vs_subprocess("TextWorld", EnvSpec("agentropy/TextWorld-v0", kwargs),
                                              episodes, args, slots))
            print(f"textworld: done ({time.time() - start:.0f} s)", file=sys.stderr)
            kwargs, episodes, _ = bench_envs._science_episodes(args.science_tasks)
            rows.append(ray_vs_subprocess("ScienceWorld", EnvSpec("agentropy/ScienceWorld-v0", kwargs),
                                          episodes, args, args.science_slots))
            print(f"science: done ({time.time() - start:.0f} s)", file=sys.stderr)
        if "learner" in args.parts:
            rows += learner_ranks(args)
            print(f"learner ranks: done ({time.time() - start:.0f} s)", file=sys.stderr)
        if "sync" in args.parts:
            rows += weight_sync(args)
            print(f"weight sync: done ({time.time() - start:.0f} s)", file=sys.stderr)
    finally:
        session.close()
    print(f"python bench/scale.py {' '.join(argv if argv is not None else sys.argv[1:])}")
    print(f"{platform.node()}: {os.cpu_count()} CPUs, load average "
          f"{' '.join(f'{x:.1f}' for x in os.getloadavg())}, wall time {time.time() - start:.0f} s")
    print(bench_envs._table(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

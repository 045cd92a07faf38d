"""Environment speed and memory: agentropy's envs against their engines, side by side in one run.

For each family, the same recorded action sequences are replayed through our env (``gym.make``,
wrappers included) and through the engine driven directly with the same information requested;
only ``step`` calls are timed. The printed ratios are
what matters (absolute numbers move with the machine's load). The two sides take turns episode by
episode.

* TWX: ``agentropy/TWX-v0`` vs ``TextWorldExpressEnv.step()`` (target >= 0.9x), and vs the
  bare engine call our env makes (for information); the references drive the engine object
  inside our env, so both sides share one JVM and its JIT state.
* TextWorld: ``agentropy/TextWorld-v0`` vs ``textworld.start`` with the env's ``EnvInfos``
  (target >= 0.9x).
* ScienceWorld: ``agentropy/ScienceWorld-v0`` vs the engine's server calls (step, score,
  completion; plus the valid actions in the admissible-commands mode) on our env's own JVM
  (target >= 0.9x), and vs
  the package's own ``ScienceWorldEnv.step()`` (target >= 2x).
* EnvPool: the subprocess backend against the serial one on the same slots and actions
  (target >= 1.6x with 2 workers), and the resident memory of a ScienceWorld worker (its Python
  process plus its JVM, read from /proc; target <= 600 MB).

Adding a family is one function returning :class:`Row` s in ``FAMILIES``; adding a pool row is
one entry in ``POOLS`` (an env spec and the episodes its slots play).

Usage (from the repository root)::

    python bench/envs.py                                  # everything, about 3 minutes
    python bench/envs.py --families science --no-pool     # one family
    python bench/envs.py --rounds 5 --episodes 10         # longer, steadier numbers
"""

from __future__ import annotations

import argparse
import functools
import json
import logging
import os
import platform
import random
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import gymnasium as gym  # noqa: E402
from agentropy.envs.pool import EnvSpec, SerialPool, SubprocessPool  # noqa: E402

from agentropy import envs  # noqa: E402,F401

BIG = 10**6  # a turn limit that never truncates a benchmark episode


@dataclass(frozen=True)
class Episode:
    """One recorded episode: the task index of our env's split and the actions played."""

    task: int
    actions: tuple[str, ...]


@dataclass(frozen=True)
class Row:
    name: str
    ours: float
    reference: float
    unit: str
    target: str
    higher_is_better: bool = True

    @property
    def ratio(self) -> float:
        return self.ours / self.reference if self.reference else float("nan")


class Runner(Protocol):
    def reset(self, episode: Episode) -> None: ...
    def step(self, action: str) -> None: ...
    def close(self) -> None: ...


# ------------------------------------------------------------------------------ measuring
def _timed_steps(runner: Runner, episodes: Sequence[Episode]) -> tuple[int, float]:
    steps, seconds = 0, 0.0
    for episode in episodes:
        runner.reset(episode)
        for action in episode.actions:
            start = time.perf_counter()
            runner.step(action)
            seconds += time.perf_counter() - start
            steps += 1
    return steps, seconds


def compare(name: str, ours: Runner, reference: Runner, episodes: Sequence[Episode], rounds: int,
            target: str, ref_name: str, warmup: int | None = None) -> Row:
    """Steps/s of both runners on the same episodes. The two sides take turns episode by
    episode (the order alternating too), so a change in the machine's load hits both. First
    both play ``warmup`` episodes (all by default) untimed: JVMs compile hot code as they go."""
    for runner in (ours, reference):
        _timed_steps(runner, episodes[:warmup])
    totals = {"ours": [0, 0.0], "ref": [0, 0.0]}
    turn = 0
    for _ in range(rounds):
        for episode in episodes:
            order = [("ours", ours), ("ref", reference)]
            for key, runner in order if turn % 2 == 0 else order[::-1]:
                steps, seconds = _timed_steps(runner, [episode])
                totals[key][0] += steps
                totals[key][1] += seconds
            turn += 1
    rate = {k: n / s if s else float("nan") for k, (n, s) in totals.items()}
    return Row(f"{name} vs {ref_name}", rate["ours"], rate["ref"], "steps/s", target)


def record(env: gym.Env, tasks: Sequence[int], max_steps: int, policy: str,
           seed: int = 0) -> list[Episode]:
    """Play our env to get action sequences: the expert's, or random admissible commands."""
    rng = random.Random(seed)
    episodes = []
    for task in tasks:
        obs, info = env.reset(options={"task": task})
        actions: list[str] = []
        done = False
        while not done and len(actions) < max_steps:
            action = info["expert_action"] if policy == "expert" else rng.choice(
                info["admissible_commands"])
            if action is None:
                break
            actions.append(action)
            _, _, terminated, truncated, info = env.step(action)
            done = terminated or truncated
        episodes.append(Episode(task, tuple(actions)))
    return episodes


class OurEnv:
    def __init__(self, env_id: str, kwargs: dict[str, Any]) -> None:
        self.env = gym.make(env_id, max_episode_steps=BIG, **kwargs)

    def reset(self, episode: Episode) -> None:
        self.env.reset(options={"task": episode.task})

    def step(self, action: str) -> None:
        self.env.step(action)

    def close(self) -> None:
        self.env.close()


# ------------------------------------------------------------------------------ TWX
class TWXDirect:
    """TextWorldExpress's own env, asked for what TWXEnv asks for (gold path at reset). It is
    the very engine object inside our env, so both sides run on one JVM (same JIT state)."""

    def __init__(self, engine: Any, seeds: Sequence[int]) -> None:
        self.env, self.seeds = engine, seeds

    def reset(self, episode: Episode) -> None:
        self.env.reset(seed=self.seeds[episode.task], gameFold="train", generateGoldPath=True)
        self.env.getGoldActionSequence()

    def step(self, action: str) -> None:
        self.env.step(action)

    def close(self) -> None:
        pass  # our env owns the engine


class TWXServer(TWXDirect):
    """TextWorldExpress's server call with its JSON parsed: the least a step can cost."""

    def step(self, action: str) -> None:
        import orjson

        orjson.loads(self.env.server.stepJSON(action))


def bench_twx(args: argparse.Namespace) -> list[Row]:
    ours = OurEnv("agentropy/TWX-v0", {"game": "coin"})
    episodes = record(ours.env, range(args.episodes), 40, "random")
    unwrapped = ours.env.unwrapped
    direct = TWXDirect(unwrapped._engine, unwrapped._seeds)
    try:
        # TWX steps take about a millisecond: more rounds for a steadier number.
        return [
            compare("TWX coin", ours, direct, episodes, 5 * args.rounds, ">= 0.9x",
                    "TextWorldExpressEnv.step()"),
            compare("TWX coin", ours, TWXServer(unwrapped._engine, unwrapped._seeds), episodes,
                    5 * args.rounds, "(info)", "engine call (stepJSON)"),
        ]
    finally:
        ours.close(), direct.close()


# ------------------------------------------------------------------------------ TextWorld
class TextWorldDirect:
    """``textworld.start`` on the same game files with the same ``EnvInfos``."""

    def __init__(self, paths: Sequence[Path], infos: Any) -> None:
        self.paths, self.infos, self.env, self.path = paths, infos, None, None

    def reset(self, episode: Episode) -> None:
        import textworld

        path = self.paths[episode.task]
        if path != self.path:
            self.close()
            self.env, self.path = textworld.start(str(path), request_infos=self.infos), path
        self.env.reset()

    def step(self, action: str) -> None:
        self.env.step(action)

    def close(self) -> None:
        if self.env is not None:
            self.env.close()
            self.env = None


@functools.cache
def _textworld_episodes(game: str, n: int) -> tuple[dict[str, Any], tuple[Episode, ...]]:
    """Random walks (40 commands at most) on the first ``n`` generated games."""
    kwargs = {"game": game, "num_games": n}
    env = gym.make("agentropy/TextWorld-v0", max_episode_steps=BIG, **kwargs)
    try:
        return kwargs, tuple(record(env, range(n), 40, "random"))
    finally:
        env.close()


def bench_textworld(args: argparse.Namespace) -> list[Row]:
    kwargs, episodes = _textworld_episodes(args.textworld_game, args.episodes)
    ours = OurEnv("agentropy/TextWorld-v0", kwargs)
    unwrapped = ours.env.unwrapped
    direct = TextWorldDirect([unwrapped.game_path(i) for i in range(args.episodes)],
                             unwrapped.request_infos)
    try:
        return [compare(f"TextWorld {args.textworld_game}", ours, direct, episodes, args.rounds,
                        ">= 0.9x", "textworld.start")]
    finally:
        ours.close(), direct.close()


# ------------------------------------------------------------------------------ ScienceWorld
class ScienceDirect:
    """The ScienceWorld engine's server object, asked for what our env asks for. It is the
    engine inside our env, so both sides run on one JVM (same JIT state)."""

    def __init__(self, env: gym.Env, valid_actions: bool) -> None:
        unwrapped = env.unwrapped
        self.engine, self.tasks, self.valid_actions = unwrapped._engine, unwrapped.task_list, valid_actions

    def reset(self, episode: Episode) -> None:
        task, variation = self.tasks[episode.task]
        self.engine.load(task, variation, "", False)
        self.engine.server.step("look around")

    def step(self, action: str) -> None:
        server = self.engine.server
        server.step(action)
        server.getScore()
        server.getCompleted()
        if self.valid_actions:  # into Python, the cheapest way: one JSON answer
            json.loads(server.getValidActionObjectCombinationsJSON())["validActions"]

    def close(self) -> None:
        pass  # our env owns the engine


class SciencePackage:
    """The package's own ``ScienceWorldEnv``: its ``step()`` also fetches the room, the
    inventory, the task text and every valid action."""

    def __init__(self, tasks: Sequence[tuple[str, int]]) -> None:
        from scienceworld import ScienceWorldEnv

        self.env, self.tasks = ScienceWorldEnv("", envStepLimit=BIG), tasks

    def reset(self, episode: Episode) -> None:
        task, variation = self.tasks[episode.task]
        self.env.load(task, variation, "")
        self.env.reset()

    def step(self, action: str) -> None:
        self.env.step(action)

    def close(self) -> None:
        self.env.close()
        self.env._gateway.java_process.wait(timeout=10)


@functools.cache
def _science_episodes(tasks: str) -> tuple[dict[str, Any], tuple[Episode, ...], tuple]:
    """The gold paths of the first train variation of each task."""
    kwargs = {"tasks": tasks.split(","), "variations_per_task": 1}
    env = gym.make("agentropy/ScienceWorld-v0", max_episode_steps=BIG, **kwargs)
    try:
        task_list = tuple(env.unwrapped.task_list)
        episodes = record(env, range(len(task_list)), BIG, "expert")
    finally:
        env.close()
    return kwargs, tuple(episodes), task_list


def _truncate(episodes: Sequence[Episode], steps: int) -> list[Episode]:
    """The first ``steps`` actions of the episodes, spread over all of them."""
    per = max(1, steps // max(len(episodes), 1))
    return [Episode(e.task, e.actions[:per]) for e in episodes]


def bench_science(args: argparse.Namespace) -> list[Row]:
    kwargs, episodes, task_list = _science_episodes(args.science_tasks)
    short = _truncate(episodes, args.admissible_steps)
    rows = []
    ours = OurEnv("agentropy/ScienceWorld-v0", kwargs)
    try:
        rows.append(compare("ScienceWorld", ours, ScienceDirect(ours.env, valid_actions=False),
                            episodes, args.rounds, ">= 0.9x", "engine calls"))
        package = SciencePackage(task_list)
        try:
            rows.append(compare("ScienceWorld", ours, package, short, 2, ">= 2x",
                                "package step()", warmup=1))
        finally:
            package.close()
    finally:
        ours.close()
    ours = OurEnv("agentropy/ScienceWorld-v0", {**kwargs, "admissible_commands": True})
    try:
        rows.append(compare("ScienceWorld admissible", ours,
                            ScienceDirect(ours.env, valid_actions=True), short, 2, ">= 0.9x",
                            "engine calls + valid actions", warmup=1))
    finally:
        ours.close()
    return rows


# ------------------------------------------------------------------------------ EnvPool
def _pool_seconds(pool: Any, slots: int, episodes: Sequence[Episode]) -> tuple[int, float]:
    """Every slot plays every episode (slot s starts at episode s), in lockstep; only step
    calls are timed."""
    steps, seconds = 0, 0.0
    for r in range(len(episodes)):
        plays = [episodes[(r + s) % len(episodes)] for s in range(slots)]
        pool.reset(list(range(slots)), [None] * slots, [{"task": e.task} for e in plays])
        for t in range(max(len(e.actions) for e in plays)):
            active = [s for s in range(slots) if t < len(plays[s].actions)]
            start = time.perf_counter()
            results = pool.step(active, [plays[s].actions[t] for s in active])
            seconds += time.perf_counter() - start
            steps += len(active)
            failed = [r.failure for r in results if r.failure]
            if failed:
                raise RuntimeError(f"pool step failed: {failed[0]}")
    return steps, seconds


def _rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:")) / 1024


def _children(pid: int) -> list[int]:
    out = []
    for child in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{child}/stat") as f:
                if int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                    out.append(int(child))
        except OSError:
            continue
    return out


def pool_rows(name: str, spec: EnvSpec, episodes: Sequence[Episode], args: argparse.Namespace,
              memory_target_mb: float | None = None) -> list[Row]:
    """Serial against subprocess on the same slots and episodes: both pools are open at once,
    play one untimed round (engines start, JVMs compile the hot code), then take turns."""
    specs = [spec] * args.pool_slots
    totals = {"serial": [0, 0.0], "subprocess": [0, 0.0]}
    with SerialPool(specs) as serial, SubprocessPool(
        specs, num_workers=args.pool_workers, timeout_s=600
    ) as pool:
        pools = [("serial", serial), ("subprocess", pool)]
        for _, each in pools:
            _pool_seconds(each, args.pool_slots, episodes)
        for r in range(args.rounds):
            for key, each in pools if r % 2 == 0 else pools[::-1]:
                steps, seconds = _pool_seconds(each, args.pool_slots, episodes)
                totals[key][0] += steps
                totals[key][1] += seconds
        memory = []
        for pid in pool.worker_pids():
            memory.append(_rss_mb(pid) + sum(_rss_mb(c) for c in _children(pid)))
    rate = {k: n / s for k, (n, s) in totals.items()}
    rows = [Row(f"EnvPool {name}: subprocess ({args.pool_workers} workers) vs serial, "
                f"{args.pool_slots} slots", rate["subprocess"], rate["serial"], "steps/s",
                ">= 1.6x")]
    if memory_target_mb is not None:
        per_worker = args.pool_slots / args.pool_workers
        rows.append(Row(f"{name} worker RSS (Python + JVM, {per_worker:g} env/worker), max",
                        max(memory), memory_target_mb, "MB", f"<= {memory_target_mb:g} MB",
                        higher_is_better=False))
    return rows


def pool_science(args: argparse.Namespace) -> list[Row]:
    kwargs, episodes, _ = _science_episodes(args.science_tasks)
    return pool_rows("ScienceWorld", EnvSpec("agentropy/ScienceWorld-v0", kwargs), episodes, args,
                     memory_target_mb=600)


def pool_textworld(args: argparse.Namespace) -> list[Row]:
    kwargs, episodes = _textworld_episodes(args.textworld_game, args.episodes)
    return pool_rows("TextWorld", EnvSpec("agentropy/TextWorld-v0", kwargs), episodes, args)


def pool_household(args: argparse.Namespace) -> list[Row]:
    """ALFWorld: random walks (30 admissible commands) on the first generated training games."""
    kwargs = {"split": "train"}
    env = gym.make("agentropy/ALFWorld-v0", max_episode_steps=BIG, **kwargs)
    try:
        episodes = tuple(record(env, range(args.episodes), 30, "random"))
    finally:
        env.close()
    return pool_rows("ALFWorld", EnvSpec("agentropy/ALFWorld-v0", kwargs), episodes, args)


FAMILIES: dict[str, Callable[[argparse.Namespace], list[Row]]] = {
    "twx": bench_twx,
    "textworld": bench_textworld,
    "science": bench_science,
}
POOLS: dict[str, Callable[[argparse.Namespace], list[Row]]] = {
    "science": pool_science,
    "textworld": pool_textworld,
    "household": pool_household,
}


# ------------------------------------------------------------------------------ main
def _table(rows: Sequence[Row]) -> str:
    lines = [f"| {'comparison':<72} | {'ours':>9} | {'reference':>9} | {'unit':<7} | "
             f"{'ratio':>6} | {'target':<9} |", f"|{'-' * 74}|{'-' * 11}|{'-' * 11}|{'-' * 9}|"
             f"{'-' * 8}|{'-' * 11}|"]
    for row in rows:
        ratio = f"{row.ratio:.2f}x" if row.higher_is_better and row.reference else "-"
        reference = f"{row.reference:>9.1f}" if row.reference else f"{'-':>9}"  # 0: nothing to compare with
        lines.append(f"| {row.name:<72} | {row.ours:>9.1f} | {reference} | "
                     f"{row.unit:<7} | {ratio:>6} | {row.target:<9} |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--families", nargs="*", default=list(FAMILIES), choices=list(FAMILIES))
    parser.add_argument("--pools", nargs="*", default=list(POOLS), choices=list(POOLS))
    parser.add_argument("--no-pool", action="store_true", help="skip the EnvPool rows")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds per comparison")
    parser.add_argument("--episodes", type=int, default=4, help="recorded episodes (TWX, TextWorld)")
    parser.add_argument("--textworld-game", default="cooking")
    parser.add_argument("--science-tasks", default="find-animal,chemistry-mix,power-component",
                        help="comma-separated ScienceWorld tasks (their gold paths are played)")
    parser.add_argument("--admissible-steps", type=int, default=30,
                        help="steps of the comparisons that fetch every valid action (slow)")
    parser.add_argument("--pool-slots", type=int, default=2)
    parser.add_argument("--pool-workers", type=int, default=2)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    warnings.filterwarnings("ignore", message=r"Game '.*' is not fully supported")  # jericho
    logging.getLogger("py4j").setLevel(logging.ERROR)

    start = time.time()
    rows: list[Row] = []
    for family in args.families:
        rows += FAMILIES[family](args)
        print(f"{family}: done ({time.time() - start:.0f} s)", file=sys.stderr)
    if not args.no_pool:
        for name in args.pools:
            rows += POOLS[name](args)
            print(f"pool {name}: done ({time.time() - start:.0f} s)", file=sys.stderr)
    print(f"python bench/envs.py {' '.join(argv if argv is not None else sys.argv[1:])}")
    print(f"{platform.node()}: {os.cpu_count()} CPUs, load average "
          f"{' '.join(f'{x:.1f}' for x in os.getloadavg())}, wall time {time.time() - start:.0f} s")
    print(_table(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

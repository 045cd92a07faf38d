"""agentropy/WebShop-v0: build and load times, search latency, steps/s, baseline success.

Run from the repository root:

    .venv/bin/python bench/shop.py                 # 10,000 and 1,000 products
    .venv/bin/python bench/shop.py --sizes 10000 --episodes 200

Times are wall-clock on whatever else the machine is doing; compare the numbers of one run
with each other (cold build vs cached load, uncached vs cached search), not across runs.
Policies, each over the test split's goals:

* ``oracle``: the env's expert (``info["expert_action"]``);
* ``rule``: WebShop's rule baseline (search the instruction, open the first hit, buy);
* ``random``: a uniformly random admissible command (``agentropy play --agent random``);
* ``search+random``: search the instruction, then random admissible commands.
"""

from __future__ import annotations

import argparse
import random
import statistics
import subprocess
import sys
import tempfile
import time

import gymnasium as gym
from agentropy.envs.webshop import store

from agentropy import envs  # noqa: F401  (registers the ids)


def _timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


_LOAD = """
import sys, time
from agentropy.envs.webshop.store import load_shop
start = time.perf_counter()
load_shop(0, int(sys.argv[1]), sys.argv[2])
print(time.perf_counter() - start)
"""


def build_times(size: int) -> tuple[float, float]:
    """Cold build (generate + index + write) and cached load, each in a fresh process (as a new
    worker would see them), in a fresh cache folder."""
    with tempfile.TemporaryDirectory() as folder:
        times = [
            float(subprocess.run([sys.executable, "-c", _LOAD, str(size), folder], check=True,
                                 capture_output=True, text=True).stdout)
            for _ in range(2)
        ]
    return times[0], times[1]


def search_latency(size: int, queries: int = 500) -> tuple[float, float]:
    """Mean ms per search: first time (BM25 + sort) and repeated (the results cache)."""
    shop = store.load_shop(0, size)
    texts = [g.instruction_text for g in shop.catalog.goals[-queries:]]
    _, first = _timed(lambda: [shop.engine.search(t) for t in texts])
    _, again = _timed(lambda: [shop.engine.search(t) for t in texts])
    return 1000 * first / len(texts), 1000 * again / len(texts)


def _policy(name: str, info: dict, env, rng: random.Random, turn: int) -> str:
    commands = info["admissible_commands"]
    instruction = env.unwrapped.session.goal.instruction_text
    if name == "oracle":
        return info["expert_action"]
    if name == "random":
        return rng.choice(commands)
    if commands and commands[0].startswith("search"):
        return f"search[{instruction}]"
    if name == "rule":
        session = env.unwrapped.session
        if session.page == "results":
            hits = session.page_hits()
            return f"click[{hits[0].asin.lower()}]" if hits else "click[next >]"
        return "click[buy now]"
    return rng.choice(commands)


def play(size: int, policy: str, episodes: int) -> dict[str, float]:
    env = gym.make("agentropy/WebShop-v0", split="test", num_products=size)
    rng = random.Random(0)
    wins, scores, steps = 0, [], 0
    start = time.perf_counter()
    try:
        for task in range(min(episodes, env.unwrapped.num_tasks)):
            obs, info = env.reset(seed=task, options={"task": task})
            terminated = truncated = False
            turn = 0
            while not (terminated or truncated):
                obs, _, terminated, truncated, info = env.step(_policy(policy, info, env, rng, turn))
                turn += 1
            steps += turn
            wins += info["won"]
            scores.append(info["score"])
    finally:
        env.close()
    elapsed = time.perf_counter() - start
    return {"episodes": len(scores), "success": wins / len(scores), "score": statistics.mean(scores),
            "steps_per_s": steps / elapsed, "turns": steps / len(scores)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 1_000])
    parser.add_argument("--episodes", type=int, default=500)
    args = parser.parse_args()
    for size in args.sizes:
        cold, cached = build_times(size)
        first, again = search_latency(size)
        print(f"\n## {size} products")
        print(f"build (generate + index + write): {cold:.2f} s; cached load: {cached:.2f} s "
              f"(ratio {cold / cached:.1f}x)")
        print(f"search: {first:.2f} ms per new query, {again:.3f} ms repeated")
        print(f"{'policy':<15}{'episodes':>9}{'success':>9}{'score':>8}{'turns':>7}{'steps/s':>9}")
        for policy in ("oracle", "rule", "random", "search+random"):
            r = play(size, policy, args.episodes)
            print(f"{policy:<15}{r['episodes']:>9}{r['success']:>9.3f}{r['score']:>8.3f}"
                  f"{r['turns']:>7.1f}{r['steps_per_s']:>9.0f}")


if __name__ == "__main__":
    main()

"""How the inspection tools scale with the size of a run.

Writes a synthetic run of N training episodes (turns with prompts, completions, token entropies
and advantages, GRPO groups of 8) and measures, for N and 4N episodes side by side: indexing
time (first, then from the index cache) and memory, a filtered page, a full-text search,
opening one record, and the size of a capped HTML export. The ratio column (4N / N) shows
whether a cost grows with the run (about 4) or not (about 1).

    .venv/bin/python bench/inspect_scale.py [--episodes 2500] [--turns 30]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
import tracemalloc
from pathlib import Path

from agentropy.inspect.api import episode_page
from agentropy.inspect.html import export_html
from agentropy.inspect.run import RunIndex
from agentropy.records.episodes import EpisodeLog, EpisodeRecord, TurnRecord


def write_run(run: Path, episodes: int, turns: int) -> int:
    run.mkdir(parents=True, exist_ok=True)
    with EpisodeLog(run / "episodes.jsonl") as log:
        for i in range(episodes):
            completion = f"<think>I should look around, step {i}.</think><action>go east</action>"
            tokens = tuple(completion[k: k + 4] for k in range(0, len(completion), 4))
            ts = tuple(
                TurnRecord(
                    observation=f"You are in the kitchen. You see a fridge and a table. ({t})",
                    prompt="<|im_start|>system\nYou play a text game.<|im_end|>\n" + "obs " * 200,
                    completion=completion, action="go east", action_is_valid=t % 7 != 0,
                    reward=0.0, logprob_sum=-3.0, mean_entropy=0.5, advantage=0.1 * (i % 3 - 1),
                    token_entropies=tuple(0.01 * k for k in range(len(tokens))), tokens=tokens)
                for t in range(turns))
            log.append(EpisodeRecord(
                episode_id=f"ep{i:07d}", env_id="agentropy/TWX-v0", env_kwargs={"game": "coin"},
                seed=i // 8, options={}, package_versions={}, policy_version=i // 64,
                agent="model:hf", phase="train", task="Find the coin.",
                task_id=f"twx/coin/train/{i // 8}", won=i % 5 == 0, score=float(i % 5 == 0),
                total_reward=0.0, terminated=True, truncated=False, turns=ts,
                iteration=i // 64, group_id=(i // 8) % 8))
    return (run / "episodes.jsonl").stat().st_size


def measure(run: Path, episodes: int, turns: int) -> dict[str, float]:
    out: dict[str, float] = {"file MB": write_run(run, episodes, turns) / 1e6}
    t = time.perf_counter()
    RunIndex(run)
    out["first index s"] = time.perf_counter() - t
    t = time.perf_counter()
    index = RunIndex(run)
    out["cached index s"] = time.perf_counter() - t
    tracemalloc.start()
    kept = RunIndex(run, cache=False)
    out["index MB (python heap)"] = tracemalloc.get_traced_memory()[0] / 1e6
    tracemalloc.stop()
    del kept
    t = time.perf_counter()
    page = episode_page(index, {"won": "true", "sort": "-line", "offset": "100", "limit": "50"})
    out["filtered page ms"] = (time.perf_counter() - t) * 1e3
    assert page["total"] == len([i for i in range(episodes) if i % 5 == 0])
    t = time.perf_counter()
    index.record(f"ep{episodes // 2:07d}")
    out["open one record ms"] = (time.perf_counter() - t) * 1e3
    t = time.perf_counter()
    episode_page(index, {"text": "step 17.", "iteration": "0"})
    out["text search, one iteration ms"] = (time.perf_counter() - t) * 1e3
    t = time.perf_counter()
    stats = export_html(index, run / "export.html")
    out["export s"] = time.perf_counter() - t
    out["export MB (200 episodes)"] = stats["bytes"] / 1e6
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--episodes", type=int, default=2500)
    parser.add_argument("--turns", type=int, default=30)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["AGENTROPY_CACHE_DIR"] = str(Path(tmp) / "cache")
        small = measure(Path(tmp) / "small", args.episodes, args.turns)
        big = measure(Path(tmp) / "big", 4 * args.episodes, args.turns)
    n = args.episodes
    print(f"| {args.turns} turns/episode | {n} episodes | {4 * n} episodes | ratio |")
    print("|---|---:|---:|---:|")
    for key in small:
        print(f"| {key} | {small[key]:.2f} | {big[key]:.2f} | {big[key] / small[key]:.2f} |")


if __name__ == "__main__":
    main()

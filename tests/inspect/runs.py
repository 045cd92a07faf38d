"""Run folders for the inspection tests, written with the real record classes.

:func:`write_hostile_run` makes a small training run (two iterations of GRPO groups, evaluation
episodes, metrics, SPEAR replay snapshots, a Hydra config) whose recorded texts try every way to
break out of a page or a terminal: script tags, closing tags, attribute injection, rich markup,
terminal escapes, and non-ASCII text.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from agentropy.records.episodes import EpisodeLog, EpisodeRecord, TurnRecord, package_versions

SCRIPT = "<script>window.__pwned = 1</script>"
TEXTAREA = "</textarea><script>window.__pwned = 2</script>"
IMG = '"><img src=x onerror="window.__pwned = 3">'
UNICODE = "café — 漢字 🙂 \u202eevil\u202c"
MARKUP = "[bold red]not markup[/bold red] \x1b[2J\x1b[31m"
CLOSE = "</script><!-- </style>"
HOSTILE_ID = 'ep/"<img src=x onerror=alert(1)>?#1'

#: (iteration, group id) -> the task the group plays.
TASKS = {0: "twx/coin/train/11", 1: "twx/cookingworld/train/7"}


def _turn(t: int, action: str, *, valid: bool = True, reward: float = 0.0,
          advantage: float | None = None, text: str = "") -> TurnRecord:
    thinking = f"step {t}: I consider {text or 'the room'} {SCRIPT}"
    completion = f"<think>{thinking}</think><action>{action}</action>"
    tokens = tuple(completion[i: i + 4] for i in range(0, len(completion), 4))
    return TurnRecord(
        observation=f"You are in room {t}. {TEXTAREA} {IMG} {UNICODE} {CLOSE}",
        prompt=f"<|im_start|>system\nplay well {CLOSE}<|im_end|>\n" + "history " * 20,
        completion=completion,
        action=action,
        action_is_valid=valid,
        invalid_reason="" if valid else "the command is not one of the admissible commands",
        reward=reward,
        logprob_sum=-1.5 * (t + 1),
        mean_entropy=0.2 + 0.1 * t,
        advantage=advantage,
        token_entropies=tuple(0.05 * (i % 30) for i in range(len(tokens))),
        tokens=tokens,
    )


def hostile_records() -> list[EpisodeRecord]:
    """16 training episodes (2 iterations x 2 groups x 4 members), 3 eval, 1 hostile play one."""
    versions = package_versions(["textworld-express"])
    records = []
    for iteration in (0, 1):
        for group in (0, 1):
            task_id = TASKS[group]
            for member in range(4):
                won = member % 2 == 0
                # Members share two turns, then diverge at turn 2.
                actions = ["look", "go north", f"take thing {member}", f"open door {member}"]
                adv = 0.8 if won else -0.8
                turns = [
                    _turn(t, a, valid=not (member == 3 and t == 3),
                          reward=1.0 if (won and t == len(actions) - 1) else 0.0,
                          advantage=adv, text=MARKUP if member == 1 else "")
                    for t, a in enumerate(actions[: 3 + (member % 2)])
                ]
                records.append(EpisodeRecord(
                    episode_id=f"it{iteration}-g{group}-m{member}",
                    env_id="agentropy/TWX-v0",
                    env_kwargs={"game": task_id.split("/")[1], "split": "train"},
                    seed=100 + group,
                    options={},
                    package_versions=versions,
                    policy_version=iteration,
                    agent="model:hf",
                    phase="train",
                    task=f"Find the coin {SCRIPT}",
                    task_id=task_id,
                    won=won,
                    score=1.0 if won else 0.25,
                    total_reward=sum(t.reward for t in turns),
                    terminated=won,
                    truncated=not won,
                    turns=tuple(turns),
                    initial_observation=turns[0].observation,
                    split="train",
                    iteration=iteration,
                    group_id=group,
                ))
    for k in range(3):
        turns = [_turn(t, "look") for t in range(2)]
        records.append(EpisodeRecord(
            episode_id=f"eval-{k}", env_id="agentropy/TWX-v0",
            env_kwargs={"game": "coin", "split": "dev"}, seed=k, options={"task": k},
            package_versions=versions, policy_version=1, agent="model:hf", phase="eval",
            task="Find the coin", task_id=f"twx/coin/dev/{k}", won=k == 0, score=float(k == 0),
            total_reward=float(k == 0), terminated=True, truncated=False, turns=tuple(turns),
            initial_observation=turns[0].observation, split="dev", iteration=1,
        ))
    turns = [_turn(0, f"say {SCRIPT}", valid=False, text=IMG)]
    records.append(EpisodeRecord(
        episode_id=HOSTILE_ID, env_id="agentropy/TWX-v0", env_kwargs={"game": "coin"}, seed=0,
        options={}, package_versions=versions, policy_version=0, agent="random", phase="play",
        task=f"<b>{TEXTAREA}</b> {UNICODE}", task_id="twx/coin/train/0", won=False, score=0.0,
        total_reward=0.0, terminated=False, truncated=True, turns=tuple(turns),
        initial_observation=turns[0].observation, split="train", failure=f"backend died {IMG}",
    ))
    return records


def write_hostile_run(run: Path) -> Path:
    """Write the run folder: episodes, metrics, replay snapshots, config, and a symlink out."""
    run.mkdir(parents=True, exist_ok=True)
    with EpisodeLog(run / "episodes.jsonl") as log:
        for record in hostile_records():
            log.append(record)
    with open(run / "metrics.jsonl", "w") as f:
        for it in (0, 1):
            row = {"iteration": it, "time": 1.7e9 + it, "train/success": 0.25 + 0.25 * it, "train/score": 0.5,
                   "eval/dev/success": 0.1 * it, "eval/dev/success_greedy": 0.2 * it,
                   "actor/entropy": 1.2 - 0.3 * it, "actor/kl": math.nan if it else 0.01,
                   "replay/size": 4 * it, "note": "<script>x</script>"}
            f.write(json.dumps(row) + "\n")
    with open(run / "replay.jsonl", "w") as f:
        for it in (0, 1):
            rows = [{"episode_id": f"it{it}-g0-m0", "turn": 2, "advantage": 0.8, "score": 1.0,
                     "step": it},
                    {"episode_id": f"it{it}-g1-m2", "turn": 1, "advantage": 0.5, "score": 1.0,
                     "step": it},
                    {"episode_id": "forgotten-episode", "turn": 0, "advantage": 0.1, "score": 1.0,
                     "step": 0}]
            f.write(json.dumps({"iteration": it, "rows": rows}) + "\n")
    (run / ".hydra").mkdir(exist_ok=True)
    (run / ".hydra" / "config.yaml").write_text(f"seed: 0\nnote: '{SCRIPT}'\n")
    return run


def outcome_record(episode_id: str, task_id: str, won: bool, *, score: float | None = None,
                   phase: str = "eval", iteration: int | None = None,
                   policy_version: int = 0) -> EpisodeRecord:
    """A one-turn record that only matters for its outcome (for comparisons)."""
    turn = TurnRecord(observation="You see a room.", action="look", action_is_valid=True,
                      reward=float(won))
    return EpisodeRecord(
        episode_id=episode_id, env_id="agentropy/TWX-v0", env_kwargs={}, seed=0, options={},
        package_versions={}, policy_version=policy_version, agent="model:hf", phase=phase,
        task="t", task_id=task_id, won=won, score=float(won) if score is None else score,
        total_reward=float(won), terminated=won, truncated=not won, turns=(turn,),
        iteration=iteration,
    )


def write_records(run: Path, records: list[EpisodeRecord]) -> Path:
    run.mkdir(parents=True, exist_ok=True)
    with EpisodeLog(run / "episodes.jsonl") as log:
        for record in records:
            log.append(record)
    return run

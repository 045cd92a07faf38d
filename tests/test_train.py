"""agentropy train end to end on the tiny model: every algorithm, the run folder, kill -9 + resume."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from agentropy.algorithms.checkpoint import latest_checkpoint
from agentropy.algorithms.metrics import read_metrics

from agentropy.records.episodes import read_episodes

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
ALGORITHMS = sorted(p.stem for p in (CONFIGS / "algorithm").glob("*.yaml"))

#: A run small enough for CI: a few SFT steps, two RL iterations of 2 tasks x 4 episodes.
SMALL = [
    "env.max_turns=4", "sft.episodes=12", "sft.steps=3", "sft.batch_size=8",
    "iterations=2", "tasks_per_iteration=2", "group_size=4", "eval.episodes=3", "eval.every=1",
    "agent.max_new_tokens=12", "algorithm.mini_batch_size=16", "algorithm.micro_batch_size=8",
    "algorithm.lr=1e-3", "progress=false",
]
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": os.getcwd()}


def _train(run: Path, *overrides: str, **popen) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "agentropy.cli", "train", *SMALL, *overrides, f"hydra.run.dir={run}"]
    return subprocess.Popen(cmd, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            **popen)


def _check_run_folder(run: Path, iterations: int, extra_train: int = 0) -> None:
    """``extra_train``: training episodes of the parts' extra rollouts (AEPO-T), over the run."""
    for name in (".hydra/config.yaml", "model/model.safetensors", "episodes.jsonl", "metrics.jsonl",
                 "replay.jsonl", "summary.json", "plots/success.png", "plots/entropy.png"):
        assert (run / name).exists(), name
    assert list((run / "tensorboard").glob("events.out.tfevents.*"))
    metrics = read_metrics(run)
    assert [r["iteration"] for r in metrics] == list(range(iterations + 1))
    for row in metrics[1:]:
        for key in ("train/success", "train/invalid_rate", "train/entropy", "time/rollout_s",
                    "time/update_s", "eval/dev/success", "eval/dev/success_greedy"):
            assert key in row, key
        if "actor/loss_policy" not in row:  # DAPO's filter may drop every group of a tiny run
            assert row["batch/dropped_rows"] == pytest.approx(2 * 4 * row["train/length"]), row
        else:
            assert math.isfinite(row["actor/loss_policy"]) and math.isfinite(row["actor/entropy"])
    records = read_episodes(run / "episodes.jsonl")
    phases = {r.phase for r in records}
    assert phases == {"sft", "train", "eval"}
    train = [r for r in records if r.phase == "train"]
    assert len(train) == iterations * 2 * 4 + extra_train
    trained = any("actor/loss_policy" in row for row in metrics[1:])
    assert any(t.advantage is not None for r in train for t in r.turns) == trained
    assert len({r.episode_id for r in records}) == len(records)
    ckpt = latest_checkpoint(run)
    assert ckpt is not None and ckpt.name == f"iter_{iterations:06d}"
    summary = json.loads((run / "summary.json").read_text())
    assert summary["splits"]["dev"]["end"]["iteration"] == iterations


@pytest.mark.slow
@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_two_rl_iterations_of_every_algorithm(tmp_path, algorithm):
    run = tmp_path / "run"
    proc = _train(run, f"algorithm={algorithm}")
    out, _ = proc.communicate(timeout=900)
    assert proc.returncode == 0, out[-3000:]
    assert "held-out results" in out
    # AEPO-T plays ceil(2 tasks / 4) = 1 task x 4 more episodes per iteration
    _check_run_folder(run, iterations=2, extra_train=2 * 4 if algorithm == "aepo_t" else 0)
    if algorithm == "spear":
        lines = (run / "replay.jsonl").read_text().splitlines()
        assert [json.loads(line)["iteration"] for line in lines] == [1, 2]
    if algorithm == "hapo":  # the second rollout samples at the first update's token temperatures
        first, second = read_metrics(run)[1:3]
        assert "train/temperature" not in first
        assert 0.95 <= second["train/temperature"] <= 1.05 and second["train/temperature"] != 1.0


def test_aepo_a_with_the_branching_rollout(tmp_path):
    """algorithm=aepo_a with algorithm.aepo_a.branching=true: 2 of each group's 4 episodes start
    from the reset, the others are branches (threshold 0: every decision forks while the budget
    lasts); the groups keep 4 members and the branches' shared turns are trained in the parent."""
    run = tmp_path / "run"
    proc = _train(run, "algorithm=aepo_a", "algorithm.aepo_a.branching=true",
                  "algorithm.aepo_a.branch_threshold=0")
    out, _ = proc.communicate(timeout=900)
    assert proc.returncode == 0, out[-3000:]
    _check_run_folder(run, iterations=2)
    train = [r for r in read_episodes(run / "episodes.jsonl") if r.phase == "train"]
    by_id = {r.episode_id: r for r in train}
    branches = [r for r in train if r.parent_id]
    assert branches and sum(row.get("train/branches", 0) for row in read_metrics(run)) == len(branches)
    for r in branches:
        parent = by_id[r.parent_id]
        assert r.group_id == parent.group_id and r.iteration == parent.iteration and r.fork_turn >= 1
        assert [t.action for t in r.turns[:r.fork_turn]] == [t.action for t in parent.turns[:r.fork_turn]]
        assert all(t.advantage is None for t in r.turns[:r.fork_turn])  # trained once, in the parent
    for group in {r.group_id for r in train}:
        members = [r for r in train if r.group_id == group]
        assert len(members) == 4 and sum(not r.parent_id for r in members) >= 2


def test_method_over_another_base(tmp_path):
    """algorithm=epo algorithm.base=gigpo runs (one iteration is enough to see it compose);
    eval.at_start=false evaluates only the end."""
    run = tmp_path / "run"
    proc = _train(run, "algorithm=epo", "algorithm.base=gigpo", "iterations=1", "eval.episodes=1",
                  "eval.at_start=false")
    out, _ = proc.communicate(timeout=900)
    assert proc.returncode == 0, out[-3000:]
    saved = (run / ".hydra" / "config.yaml").read_text()
    assert "advantage: gigpo" in saved and "name: epo" in saved
    start, end = read_metrics(run)
    assert not any(k.startswith("eval/") for k in start) and "eval/dev/success" in end
    summary = json.loads((run / "summary.json").read_text())["splits"]["dev"]
    assert summary["start"]["iteration"] is None and summary["end"]["iteration"] == 1
    table = out[out.index("held-out results"):]
    assert "after SFT" not in table and "after RL (iter 1)" in table


@pytest.mark.slow
def test_aepo_t_plays_its_tempered_rollout(tmp_path):
    """algorithm=aepo_t: each iteration ceil(2 tasks / 4) = 1 task x 4 more episodes at the
    switched temperature. With the threshold at -1000 every tempered episode qualifies: iteration
    1 (H_bar 0, so T = 1.2) trains all 4 with advantage 1 in place of the first 4 main episodes;
    iteration 2 takes its temperature from iteration 1's estimate (T = 0.8 and half as many above
    the target 0.5)."""
    run = tmp_path / "run"
    proc = _train(run, "algorithm=aepo_t", "algorithm.aepo_t.threshold=-1000")
    out, _ = proc.communicate(timeout=900)
    assert proc.returncode == 0, out[-3000:]
    _check_run_folder(run, iterations=2, extra_train=2 * 4)
    first, second = read_metrics(run)[1:]
    assert first["aepo_t/entropy"] == 0.0 and first["aepo_t/temperature"] == 1.2
    assert first["rollout/extra_episodes"] == 4 and first["aepo_t/reinforce_episodes"] == 4
    assert first["aepo_t/reinforce_rows"] >= 4 and first["time/extra_rollout_s"] > 0
    h = first["aepo_t/entropy_estimate"]
    assert h > 0 and second["aepo_t/entropy"] == pytest.approx(h)
    below = h <= 0.5
    assert second["aepo_t/temperature"] == (1.2 if below else 0.8)
    assert second["aepo_t/reinforce_episodes"] == (4 if below else 2)
    train = [r for r in read_episodes(run / "episodes.jsonl") if r.phase == "train" and r.iteration == 1]
    assert len(train) == 12
    reinforce = [r for r in train if all(t.advantage == 1.0 for t in r.turns)]
    assert len(reinforce) >= 4 and sum(len(r.turns) for r in reinforce) >= first["aepo_t/reinforce_rows"]


@pytest.mark.slow
def test_kill_9_mid_run_then_resume(tmp_path):
    """Kill the trainer at some moment after its first checkpoint, resume, and check that the
    iterations continue and the logs hold no duplicate or truncated record."""
    run = tmp_path / "run"
    overrides = ("iterations=4", "checkpoint_every=1")
    proc = _train(run, *overrides, start_new_session=True)
    deadline = time.monotonic() + 900
    while latest_checkpoint(run) is None or latest_checkpoint(run).name < "iter_000001":
        assert proc.poll() is None, proc.stdout.read()[-3000:]
        assert time.monotonic() < deadline
        time.sleep(0.2)
    time.sleep(1.5)  # somewhere inside iteration 2
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    proc.stdout.close()
    before = latest_checkpoint(run).name

    # A different config is refused before anything runs.
    bad = _train(run, *overrides, "seed=1", f"resume={run}")
    out, _ = bad.communicate(timeout=300)
    assert bad.returncode == 2 and "differs" in out, out[-2000:]

    resumed = _train(run, *overrides, f"resume={run}")
    out, _ = resumed.communicate(timeout=900)
    assert resumed.returncode == 0, out[-3000:]
    assert f"from {before}" in out
    _check_run_folder(run, iterations=4)
    # Exactly one set of train episodes per iteration, and one SFT set.
    records = read_episodes(run / "episodes.jsonl")
    per_iteration = {}
    for r in records:
        per_iteration.setdefault((r.phase, r.iteration), []).append(r)
    assert sorted(k for k in per_iteration if k[0] == "train") == [("train", i) for i in range(1, 5)]
    assert all(len(v) == 8 for k, v in per_iteration.items() if k[0] == "train")
    assert len(per_iteration[("sft", 0)]) == 12

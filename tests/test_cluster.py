"""cluster=local and cluster=ray end to end on the tiny model: a local run never imports Ray; the
quickstart at test size on Ray with every role an actor (2 env workers per pool, 1 rollout
engine, 2 FSDP2 learner ranks over gloo) trains, survives an env actor killed with SIGKILL, and
resumes after the driver is killed with nothing lost or recorded twice."""

from __future__ import annotations

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
from tests.conftest import _ray_processes
from tests.test_train import ENV, SMALL, _check_run_folder

#: every role a Ray actor, on a private Ray of 6 CPUs (Ray counts them, it does not pin them):
#: 2 pools x 2 env actors x 0.5 CPU, 1 engine x 1 CPU, 2 learner ranks x 1 CPU
RAY = ["experiment=quickstart", "cluster=ray", "env.num_workers=2", "cluster.rollout_engines=1",
       "cluster.learner_ranks=2", "cluster.num_cpus=6"]


def _train(run: Path, *overrides: str, **popen) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "agentropy.cli", "train", *SMALL, *overrides, f"hydra.run.dir={run}"]
    return subprocess.Popen(cmd, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            **popen)


def _env_actors() -> list[int]:
    out = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if b"_RayEnvWorker" in f.read():
                    out.append(int(pid))
        except OSError:
            continue
    return out


def _wait_ray_gone(before: set[int], timeout_s: float = 60) -> set[int]:
    deadline = time.monotonic() + timeout_s
    while (left := _ray_processes() - before) and time.monotonic() < deadline:
        time.sleep(0.2)
    return left


@pytest.mark.slow
def test_local_run_imports_no_ray(tmp_path):
    code = ("import sys; from agentropy.cli import main; sys.argv = ['agentropy', 'train', *sys.argv[1:]]\n"
            "try:\n    main()\nexcept SystemExit as e:\n    assert not e.code, e.code\n"
            "print('RAY IMPORTED' if 'ray' in sys.modules else 'NO RAY')")
    run = tmp_path / "run"
    out = subprocess.run([sys.executable, "-c", code, *SMALL, "iterations=1", f"hydra.run.dir={run}"],
                         env=ENV, capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip().splitlines()[-1] == "NO RAY"


@pytest.mark.slow
def test_ray_run_survives_a_killed_env_actor(tmp_path):
    """Two RL iterations with env workers as Ray actors (and the engine taking learner rank 0's
    broadcast); one env actor is killed with SIGKILL during the first training iteration: its
    episodes fail with a reason, the run goes on and finishes, and no Ray process outlives it."""
    before = _ray_processes()
    run = tmp_path / "run"
    proc = _train(run, *RAY, "cluster.weight_sync=broadcast", "sft.episodes=24", "env.max_turns=8",
                  "agent.max_new_tokens=24")
    lines = []
    for line in proc.stdout:  # the SFT episodes are played; training starts after this line
        lines.append(line)
        if "SFT:" in line:
            break
    assert proc.poll() is None, "".join(lines)[-3000:]
    placement = "".join(line for line in lines if "placement:" in line)
    assert "weights from learner rank 0 by broadcast" in placement, placement
    assert "env workers: 2 Ray actors" in placement, placement
    assert "rollout: 1 hf engine(s) as Ray actors" in placement, placement
    assert "learner: 2 ranks as Ray actors" in placement, placement
    victims = _env_actors()
    assert len(victims) >= 2
    os.kill(victims[0], signal.SIGKILL)
    out = "".join(lines) + proc.stdout.read()
    assert proc.wait(timeout=900) == 0, out[-3000:]
    _check_run_folder(run, iterations=2)
    rows = read_metrics(run / "metrics.jsonl")
    assert all(r["sync/engine_bytes"] > 0 and r["sync/bytes"] > 0 for r in rows if r["iteration"] > 0)
    records = read_episodes(run / "episodes.jsonl")
    assert len([r for r in records if r.phase == "train"]) == 2 * 2 * 4  # none lost
    failed = [r for r in records if r.failure]
    assert failed and all("died" in r.failure or "reset the slot" in r.failure for r in failed), \
        [r.failure for r in failed]
    assert _wait_ray_gone(before) == set()


@pytest.mark.slow
def test_ray_run_driver_killed_then_resumed(tmp_path):
    """kill -9 of the driver's process group after a checkpoint, then resume= with cluster=ray
    (the engine colocated in learner rank 0's bundle): the iterations continue, no episode is
    lost or recorded twice, and no Ray process is left."""
    before = _ray_processes()
    run = tmp_path / "run"
    overrides = (*RAY, "cluster.colocate=true", "iterations=3", "checkpoint_every=1")
    proc = _train(run, *overrides, start_new_session=True)
    deadline = time.monotonic() + 900
    while latest_checkpoint(run) is None:
        assert proc.poll() is None, proc.stdout.read()[-3000:]
        assert time.monotonic() < deadline
        time.sleep(0.2)
    time.sleep(1.0)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    proc.stdout.close()
    assert _wait_ray_gone(before) == set(), "Ray outlived its killed driver"

    resumed = _train(run, *overrides, f"resume={run}")
    out, _ = resumed.communicate(timeout=900)
    assert resumed.returncode == 0, out[-3000:]
    _check_run_folder(run, iterations=3)
    records = read_episodes(run / "episodes.jsonl")
    train = {}
    for r in records:
        if r.phase == "train":
            train.setdefault(r.iteration, []).append(r)
    assert sorted(train) == [1, 2, 3] and all(len(v) == 8 for v in train.values())
    assert _wait_ray_gone(before) == set()

"""``cluster.learner_ranks=2``: the learner as two Ray actors (FSDP2 over gloo, on CPU) trains the
quickstart's tiny run as the one-rank learner in the driver does, and a checkpoint resumes with
the other number of ranks. agentropy.algorithms.ray_learner says how.

What holds, measured here: every episode (SFT, training, evaluation) plays the same actions in
both runs, so rollout and held-out metrics are equal; the update's metrics agree within a
relative 1e-5 (the ranks sum their gradients in another order), and so do the checkpoints'
optimizer states, which have one format for any number of ranks. After each run no process it
started (its private Ray, env actors, learner ranks) is left."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import torch
from agentropy.algorithms.metrics import read_metrics
from agentropy.configs.compose import load_config
from agentropy.configs.schema import ConfigError

from agentropy.records.episodes import read_episodes
from tests.test_train import ENV, SMALL

#: the quickstart (EPO over GRPO, no KL) at test size, env actors on a private Ray of 4 CPUs
#: (2 env actors per pool x 0.5 CPU, 2 ranks x 1 CPU; Ray counts them, it does not pin them)
RUN = ["experiment=quickstart", *SMALL, "cluster=ray", "env.num_workers=2", "cluster.num_cpus=4"]
#: keys that differ between any two runs
NOISE = ("time", "rollout/tokens_per_s")


def _ours(tag: str) -> set[int]:
    """Pids of processes whose environment carries ``tag``: the run's own Ray processes (GCS,
    raylet, env actors, learner ranks) inherit the driver's environment. Other Ray sessions on
    this shared machine do not count."""
    out = set()
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/environ", "rb") as f:
                if tag.encode() in f.read().split(b"\0"):
                    out.add(int(pid))
        except OSError:
            continue
    return out


def _wait_gone(tag: str) -> None:
    deadline = time.monotonic() + 60
    while (left := _ours(tag)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not left, f"processes of the run outlived it: {left}"


def _start(run: Path, *overrides: str) -> tuple[subprocess.Popen, str]:
    tag = f"AGENTROPY_TEST_RUN={uuid.uuid4().hex}"
    cmd = [sys.executable, "-m", "agentropy.cli", "train", *RUN, *overrides, f"hydra.run.dir={run}"]
    env = {**ENV, tag.split("=")[0]: tag.split("=")[1]}
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True), tag


def _train(run: Path, *overrides: str) -> str:
    """One run to its end; then no process it started may be left (60 s for Ray to go)."""
    proc, tag = _start(run, *overrides)
    out, _ = proc.communicate(timeout=1200)
    assert proc.returncode == 0, out[-3000:]
    _wait_gone(tag)
    return out


def _actions(run: Path) -> list[tuple]:
    return [(r.phase, r.iteration, r.seed, tuple(t.action for t in r.turns))
            for r in read_episodes(run / "episodes.jsonl")]


def _same_metrics(a: dict, b: dict) -> None:
    """Rollout and held-out metrics equal, the update's within a relative 1e-5; sync/* only where
    ranks send weights."""
    keys = {k for k in a.keys() | b.keys() if not k.startswith(NOISE) and not k.startswith("sync/")}
    assert {k for k in keys if k in a} == {k for k in keys if k in b}, a["iteration"]
    for k in sorted(keys):
        if k.startswith(("train/", "eval/", "batch/", "score/")) or None in (a[k], b[k]):  # NaN: null
            assert a[k] == b[k] or (a[k] != a[k] and b[k] != b[k]), (a["iteration"], k, a[k], b[k])
        else:
            assert a[k] == pytest.approx(b[k], rel=1e-5, abs=1e-7, nan_ok=True), (a["iteration"], k)


def _same_checkpoints(run: Path, other: Path, iteration: int = 2) -> None:
    """The policy weights and the optimizer state saved after ``iteration``: the same format (full
    tensors, parameters numbered as one process numbers them), values within a relative 1e-5."""
    from safetensors.torch import load_file

    folder = f"checkpoints/iter_{iteration:06d}"
    w1, w2 = load_file(run / folder / "model.safetensors"), load_file(other / folder / "model.safetensors")
    assert w1.keys() == w2.keys()
    for k, v in w1.items():
        torch.testing.assert_close(w2[k], v, rtol=1e-5, atol=1e-6)
    o1, o2 = (torch.load(r / folder / "state.pt", weights_only=False)["learner"]["optimizer"]
              for r in (run, other))
    assert o1["param_groups"] == o2["param_groups"] and o1["state"].keys() == o2["state"].keys()
    for i, entry in o1["state"].items():
        assert entry.keys() == o2["state"][i].keys()
        for k, v in entry.items():
            assert type(o2["state"][i][k]) is type(v)  # gathered, not a DTensor
            torch.testing.assert_close(o2["state"][i][k], v, rtol=1e-5, atol=1e-8)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The same two-iteration run with one rank (in the driver) and with two (Ray actors)."""
    root = tmp_path_factory.mktemp("ranks")
    _train(root / "one")
    out = _train(root / "two", "cluster.learner_ranks=2")
    assert "placement: learner: 2 ranks as Ray actors" in out
    return root / "one", root / "two"


def test_more_ranks_need_ray():
    with pytest.raises(ConfigError, match="needs cluster=ray"):
        load_config(["cluster.learner_ranks=2"])
    with pytest.raises(ConfigError, match="do not support agent.lora or the KL"):
        load_config(["cluster=ray", "cluster.learner_ranks=2", "algorithm.kl.coef=0.1"])


@pytest.mark.slow
def test_two_ranks_train_as_one(runs):
    one, two = runs
    assert _actions(one) == _actions(two)  # every episode, SFT to the last evaluation
    m1, m2 = read_metrics(one), read_metrics(two)
    assert [r["iteration"] for r in m1] == [r["iteration"] for r in m2] == [0, 1, 2]
    for a, b in zip(m1, m2, strict=True):
        _same_metrics(a, b)
    for row in m2[1:]:  # the full weights came back to the driver after each update
        assert row["sync/bytes"] > 1e6 and row["sync/seconds"] > 0 and "sync/bytes" not in m1[1]
    _same_checkpoints(one, two, iteration=1)
    _same_checkpoints(one, two, iteration=2)


@pytest.mark.slow
@pytest.mark.parametrize("ranks", [1, 2])
def test_resume_with_the_other_number_of_ranks(runs, tmp_path, ranks):
    """The run checkpointed after iteration 1 with the other number of ranks, resumed with
    ``ranks``: its iteration 2 is the uninterrupted run's."""
    one, two = runs
    source, other = (two, one) if ranks == 1 else (one, two)
    run = tmp_path / "run"
    shutil.copytree(source, run)
    shutil.rmtree(run / "checkpoints" / "iter_000002")
    out = _train(run, f"cluster.learner_ranks={ranks}", f"resume={run}")
    assert "from iter_000001" in out
    resumed = read_metrics(run)
    assert [r["iteration"] for r in resumed] == [0, 1, 2]
    for uninterrupted in (read_metrics(source), read_metrics(other)):
        _same_metrics(resumed[2], uninterrupted[2])
    assert _actions(run) == _actions(source)
    _same_checkpoints(run, source)  # the optimizer state carried over the change of ranks
    assert ("sync/bytes" in resumed[2]) == (ranks == 2)


@pytest.mark.slow
def test_a_killed_rank_ends_the_run_and_leaves_nothing(tmp_path):
    """SIGKILL of one learner rank once the ranks are up: the next call to the ranks fails at once
    (the live rank could wait in a collective for the dead one forever), the run exits with an
    error, and the run's ranks, placement group, env actors and private Ray are all gone."""
    proc, tag = _start(tmp_path / "run", "cluster.learner_ranks=2")
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if "placement: learner rank 1 on" in line:  # both ranks are set up
            break
    assert proc.poll() is None, "".join(lines)[-3000:]
    ranks = []
    for pid in _ours(tag):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if f.read().startswith(b"ray::LearnerRank"):
                    ranks.append(pid)
        except OSError:
            continue
    assert len(ranks) == 2, ranks
    os.kill(ranks[0], signal.SIGKILL)
    out = "".join(lines) + proc.stdout.read()
    assert proc.wait(timeout=600) != 0, out[-3000:]
    assert "ActorDiedError" in out or "died" in out, out[-3000:]
    _wait_gone(tag)


def test_a_tied_head_is_refused_before_anything_starts(tmp_path, tiny_model_dir):
    """Sharded ranks cannot split a head tied to the embeddings: the run says so at start-up,
    before SFT or Ray (not after the warm start, from inside a rank)."""
    import json

    tied = tmp_path / "tied"
    shutil.copytree(tiny_model_dir, tied)
    config = json.loads((tied / "config.json").read_text())
    (tied / "config.json").write_text(json.dumps({**config, "tie_word_embeddings": True}))
    cmd = [sys.executable, "-m", "agentropy.cli", "train", *RUN, f"agent.model={tied}",
           "cluster.learner_ranks=2", f"hydra.run.dir={tmp_path / 'run'}"]
    out = subprocess.run(cmd, env=ENV, capture_output=True, text=True, timeout=300)
    assert out.returncode == 2, out.stderr[-2000:]
    last = out.stderr.strip().splitlines()[-1]
    assert last.startswith("agentropy train: invalid config: cluster.learner_ranks=2: ")
    assert "ties its output head to its embeddings" in out.stderr
    assert not (tmp_path / "run" / "episodes.jsonl").exists()


@pytest.mark.slow
def test_a_rank_alone_in_a_collective_fails_after_the_timeout(ray_local, tiny_model_dir):
    """``cluster.collective_timeout_s`` is the ranks' process-group timeout: rank 0 asked alone for
    the full weights (a gather the other rank never joins) fails with the collective's error in
    about that time, instead of waiting forever."""
    import ray
    from agentropy.agents.tiny import load_pretrained
    from agentropy.algorithms.learner import LearnerSpec
    from agentropy.algorithms.ray_learner import RemoteLearner
    from agentropy.configs.schema import ClusterConfig

    model, _ = load_pretrained(tiny_model_dir)
    spec = LearnerSpec(load_config(["algorithm=grpo", "algorithm.kl.coef=0"]).algorithm,
                       model_path=str(tiny_model_dir), master_dtype="float32", compute_dtype="float32",
                       total_steps=1, max_new_tokens=16, max_seq_len=128, seed=0)
    cluster = ClusterConfig(backend="ray", learner_ranks=2, learner_cpus_per_rank=0.5, collective_timeout_s=5)
    learner = RemoteLearner(spec, model, cluster)
    try:
        t0 = time.monotonic()
        with pytest.raises(ray.exceptions.RayTaskError, match="(?i)timed? ?out"):
            ray.get(learner.ranks[0].weights.remote(), timeout=120)
        assert time.monotonic() - t0 < 60
    finally:
        learner.close()

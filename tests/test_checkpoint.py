"""Checkpoints are complete or absent, even when the writer is killed."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import torch
from agentropy.algorithms.checkpoint import (
    capture_rng,
    latest_checkpoint,
    load_checkpoint,
    restore_rng,
    save_checkpoint,
)


def _weights(scale: float) -> dict[str, torch.Tensor]:
    return {"w": torch.full((4, 3), scale), "b": torch.arange(3.0) * scale}


def test_round_trip_and_latest(tmp_path):
    assert latest_checkpoint(tmp_path) is None
    opt = {"step": torch.tensor(5.0), "exp_avg": torch.ones(3)}
    for it in (1, 2, 3):
        save_checkpoint(tmp_path, it, model_state=_weights(it), state={"optimizer": opt, "it": it},
                        meta={"episodes_offset": 100 * it}, keep_last=2)
    latest = latest_checkpoint(tmp_path)
    assert latest.name == "iter_000003"
    ckpt = load_checkpoint(latest)
    assert ckpt.iteration == 3 and ckpt.meta["episodes_offset"] == 300
    assert torch.equal(ckpt.model_state["w"], torch.full((4, 3), 3.0))
    assert torch.equal(ckpt.state["optimizer"]["exp_avg"], torch.ones(3))
    # keep_last=2 pruned iteration 1.
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["iter_000002", "iter_000003"]


def test_incomplete_and_temporary_folders_are_never_loaded(tmp_path):
    save_checkpoint(tmp_path, 1, model_state=_weights(1), state={}, meta={})
    root = tmp_path / "checkpoints"
    (root / ".tmp-iter_000005-123").mkdir()  # a writer killed mid-save
    (root / ".tmp-iter_000005-123" / "model.safetensors").write_bytes(b"partial")
    broken = root / "iter_000004"  # complete-looking name, missing files
    broken.mkdir()
    (broken / "meta.json").write_text('{"iteration": 4}')
    assert latest_checkpoint(tmp_path).name == "iter_000001"
    save_checkpoint(tmp_path, 2, model_state=_weights(2), state={}, meta={})
    assert not list(root.glob(".tmp-*"))


def test_rng_capture_restore():
    state = capture_rng()
    a = (random.random(), np.random.rand(), torch.rand(2))
    restore_rng(state)
    b = (random.random(), np.random.rand(), torch.rand(2))
    assert a[0] == b[0] and a[1] == b[1] and torch.equal(a[2], b[2])


WRITER = textwrap.dedent(
    """
    import sys, torch
    from agentropy.algorithms.checkpoint import save_checkpoint
    run = sys.argv[1]
    it = 0
    while True:
        it += 1
        w = {"w": torch.full((512, 512), float(it))}
        save_checkpoint(run, it, model_state=w, state={"big": torch.full((256, 256), float(it))},
                        meta={"it": it}, keep_last=2)
        print(it, flush=True)
    """
)


def test_kill_9_at_any_moment_leaves_a_loadable_checkpoint(tmp_path):
    rng = random.Random(0)
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    for trial in range(6):
        run = tmp_path / f"run{trial}"
        proc = subprocess.Popen([sys.executable, "-c", WRITER, str(run)], stdout=subprocess.PIPE,
                                env=env)
        assert proc.stdout.readline()  # at least one checkpoint written
        time.sleep(rng.uniform(0.0, 0.4))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc.stdout.close()
        latest = latest_checkpoint(run)
        ckpt = load_checkpoint(latest)
        it = ckpt.meta["it"]
        assert torch.equal(ckpt.model_state["w"], torch.full((512, 512), float(it)))
        assert torch.equal(ckpt.state["big"], torch.full((256, 256), float(it)))


class _Runs:
    """Pickles to a call of Path.touch: loading it with pickle would create ``marker``."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        from pathlib import Path

        return (Path.touch, (Path(self.marker),))


def test_a_state_file_that_would_run_code_is_refused_and_runs_nothing(tmp_path):
    import pytest

    save_checkpoint(tmp_path, 1, model_state=_weights(1), state={"rng": capture_rng()}, meta={})
    ckpt = latest_checkpoint(tmp_path)
    assert set(load_checkpoint(ckpt).state["rng"]) == {"python", "numpy", "torch"}  # plain values only
    marker = tmp_path / "ran"
    torch.save({"learner": _Runs(marker)}, ckpt / "state.pt")
    with pytest.raises(ValueError, match="holds objects other than tensors and plain values"):
        load_checkpoint(ckpt)
    assert not marker.exists()
    torch.load(ckpt / "state.pt", weights_only=False)  # the file is hostile: a pickle load runs it
    assert marker.exists()

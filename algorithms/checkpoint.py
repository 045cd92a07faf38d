"""Checkpoints that are either complete or absent.

A checkpoint is a folder ``RUN/checkpoints/iter_000012/`` holding

* ``model.safetensors``: the policy weights,
* ``state.pt``: everything else the run needs to continue (optimizer, LR schedule, EPO history,
  replay and baseline buffers, KL controller, RNG states), saved with ``torch.save`` as tensors
  and plain Python values only, and read back with ``weights_only=True`` (no code from the file
  runs),
* ``meta.json``: the iteration, the byte sizes of ``episodes.jsonl`` and ``metrics.jsonl`` at
  that moment (a resumed run cuts both back to them, so nothing is lost or recorded twice), and
  free-form facts.

It is written into a hidden temporary folder, every file is fsynced, and the folder is renamed
into place; a rename within one filesystem is atomic, so a process killed at any moment leaves
either the previous checkpoints or the new one, never a half-written one that looks complete.
Leftover temporary folders are ignored and removed by the next save.
"""

from __future__ import annotations

import json
import os
import pickle
import random
import re
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

__all__ = [
    "Checkpoint",
    "capture_rng",
    "latest_checkpoint",
    "load_checkpoint",
    "restore_rng",
    "save_checkpoint",
]

_NAME = re.compile(r"^iter_(\d{6,})$")
_FILES = ("model.safetensors", "state.pt", "meta.json")
_TMP_PREFIX = ".tmp-"


@dataclass(frozen=True)
class Checkpoint:
    """A loaded checkpoint.

    Attributes:
        path: its folder.
        iteration: the last completed iteration.
        model_state: the policy weights.
        state: the training state saved next to them.
        meta: the JSON facts (iteration, log offsets, ...).
    """

    path: Path
    iteration: int
    model_state: dict[str, torch.Tensor]
    state: dict[str, Any]
    meta: dict[str, Any]


def capture_rng() -> dict[str, Any]:
    """The states of Python's, NumPy's and torch's global generators, as tensors and plain
    Python values only (so that ``torch.load(weights_only=True)`` reads them back)."""
    name, keys, pos, has_gauss, cached = np.random.get_state()
    return {
        "python": random.getstate(),
        "numpy": {"name": str(name), "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
        "torch": torch.random.get_rng_state(),
    }


def restore_rng(states: Mapping[str, Any]) -> None:
    random.setstate(states["python"])
    n = states["numpy"]
    np.random.set_state((n["name"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"],
                         n["cached_gaussian"]))
    torch.random.set_rng_state(states["torch"])


def _fsync_file(path: Path) -> None:
    with open(path, "rb") as f:
        os.fsync(f.fileno())


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _checkpoint_dir(run_dir: str | Path) -> Path:
    return Path(run_dir) / "checkpoints"


def save_checkpoint(
    run_dir: str | Path,
    iteration: int,
    *,
    model_state: Mapping[str, torch.Tensor],
    state: Mapping[str, Any],
    meta: Mapping[str, Any],
    keep_last: int = 2,
) -> Path:
    """Write a checkpoint atomically and keep only the newest ``keep_last`` of them.

    Args:
        run_dir: the run folder.
        iteration: the last completed iteration (names the folder).
        model_state: the policy weights (tensors are made contiguous and un-shared).
        state: the rest of the training state, anything ``torch.save`` can write.
        meta: JSON-serialisable facts; ``iteration`` is added.
        keep_last: how many complete checkpoints to keep (>= 1).

    Returns:
        The checkpoint folder.
    """
    if keep_last < 1:
        raise ValueError("keep_last must be >= 1")
    root = _checkpoint_dir(run_dir)
    root.mkdir(parents=True, exist_ok=True)
    for leftover in root.glob(_TMP_PREFIX + "*"):
        shutil.rmtree(leftover, ignore_errors=True)
    final = root / f"iter_{iteration:06d}"
    tmp = root / f"{_TMP_PREFIX}{final.name}-{os.getpid()}"
    tmp.mkdir()
    weights = {k: v.detach().to("cpu").contiguous().clone() for k, v in model_state.items()}
    save_file(weights, tmp / "model.safetensors")
    torch.save(dict(state), tmp / "state.pt")
    (tmp / "meta.json").write_text(json.dumps({**meta, "iteration": iteration}, indent=2) + "\n")
    for f in tmp.iterdir():
        _fsync_file(f)
    _fsync_dir(tmp)
    if final.exists():  # the same iteration saved again (e.g. after a resume): replace it
        shutil.rmtree(final)
    os.rename(tmp, final)
    _fsync_dir(root)
    complete = sorted(p for p in root.iterdir() if _NAME.match(p.name))
    for old in complete[:-keep_last]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def latest_checkpoint(run_dir: str | Path) -> Path | None:
    """The newest complete checkpoint folder of a run, or None."""
    root = _checkpoint_dir(run_dir)
    if not root.is_dir():
        return None
    complete = [
        p for p in root.iterdir() if _NAME.match(p.name) and all((p / f).is_file() for f in _FILES)
    ]
    return max(complete, key=lambda p: int(_NAME.match(p.name).group(1)), default=None)


def load_checkpoint(path: str | Path, *, map_location: str | torch.device = "cpu") -> Checkpoint:
    """Load a checkpoint folder written by :func:`save_checkpoint`."""
    path = Path(path)
    meta = json.loads((path / "meta.json").read_text())
    # The state holds tensors and plain Python containers only, so it is read without running
    # any code from the file (a checkpoint is data from a run folder, not a program).
    try:
        state = torch.load(path / "state.pt", map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        first = str(exc).strip().splitlines()[-1][:200] if str(exc).strip() else type(exc).__name__
        raise ValueError(f"{path / 'state.pt'} holds objects other than tensors and plain values (a "
                         f"checkpoint of an older agentropy, or not ours), which are not loaded: {first}"
                         ) from None
    model_state = load_file(path / "model.safetensors", device=str(map_location))
    return Checkpoint(path=path, iteration=int(meta["iteration"]), model_state=model_state,
                      state=state, meta=meta)

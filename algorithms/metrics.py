"""Per-iteration metrics: ``RUN/metrics.jsonl``, TensorBoard events, optional W&B, PNG plots.

One flat JSON object per line per iteration: ``{"iteration": 3, "time": ..., "train/success":
0.5, "actor/entropy": 1.2, ...}`` with "/"-namespaced numeric keys. Lines are flushed when
written; :meth:`MetricsLog.tell` and :meth:`MetricsLog.truncate` let a resumed run drop the lines
written after its checkpoint, as the episode log does.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from agentropy.records.jsonl import AppendOnlyJsonl, iter_jsonl

__all__ = ["MetricsLog", "plot_metrics", "read_metrics"]

log = logging.getLogger(__name__)


def _clean(value: Any) -> float | int | str | None:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int | str):
        return value
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


class MetricsLog:
    """Writes metrics to ``metrics.jsonl`` and, if asked, to TensorBoard and W&B.

    Args:
        run_dir: the run folder.
        tensorboard: also write TensorBoard events under ``run_dir/tensorboard``.
        wandb_project: a W&B project name to log to as well ("" for none).
        start_iteration: on resume, TensorBoard events from this iteration on are purged.
        config: the run's resolved config, for W&B.
    """

    def __init__(
        self,
        run_dir: str | Path,
        *,
        tensorboard: bool = True,
        wandb_project: str = "",
        start_iteration: int = 0,
        config: Mapping[str, Any] | None = None,
    ) -> None:
        self.path = Path(run_dir) / "metrics.jsonl"
        self._file = AppendOnlyJsonl(self.path)
        self._tb = None
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self._tb = SummaryWriter(
                str(Path(run_dir) / "tensorboard"), purge_step=start_iteration or None
            )
        self._wandb = None
        if wandb_project:
            import wandb

            self._wandb = wandb.init(project=wandb_project, dir=str(run_dir),
                                     config=dict(config or {}), resume="allow")

    def log(self, iteration: int, metrics: Mapping[str, Any]) -> dict[str, Any]:
        """Append one line; non-finite numbers become null; returns what was written."""
        row: dict[str, Any] = {"iteration": iteration, "time": round(time.time(), 3)}
        for key, value in metrics.items():
            row[key] = _clean(value)
        self._file.write_line(json.dumps(row))
        for key, value in row.items():
            if key in ("iteration", "time") or not isinstance(value, int | float):
                continue
            if self._tb is not None:
                self._tb.add_scalar(key, value, iteration)
        if self._tb is not None:
            self._tb.flush()
        if self._wandb is not None:
            self._wandb.log({k: v for k, v in row.items() if isinstance(v, int | float)},
                            step=iteration)
        return row

    def tell(self) -> int:
        return self._file.tell()

    def truncate(self, size: int) -> None:
        self._file.truncate(size)

    def close(self) -> None:
        self._file.close()
        if self._tb is not None:
            self._tb.close()
            self._tb = None
        if self._wandb is not None:
            self._wandb.finish()
            self._wandb = None


def read_metrics(path: str | Path) -> list[dict[str, Any]]:
    """The rows of a metrics file; a truncated last line is skipped with a warning."""
    path = Path(path)
    if path.is_dir():
        path = path / "metrics.jsonl"
    return [row for _, row in iter_jsonl(path, what="a JSON line", stacklevel=3)]


def plot_metrics(
    rows: Sequence[Mapping[str, Any]], out_dir: str | Path, groups: Mapping[str, str] | None = None
) -> list[Path]:
    """Draw one PNG per group of keys over iterations.

    Args:
        rows: metrics rows (each with ``iteration``).
        out_dir: where the PNGs go.
        groups: file stem -> substring; every numeric key containing the substring is drawn
            in that file. Default: ``success`` and ``entropy``.

    Returns:
        The files written (a group with no data is not drawn).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = dict(groups or {"success": "success", "entropy": "entropy"})
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for stem, needle in groups.items():
        keys = sorted({k for r in rows for k, v in r.items()
                       if needle in k and isinstance(v, int | float) and not isinstance(v, bool)})
        if not keys:
            continue
        fig, ax = plt.subplots(figsize=(7, 4), dpi=110)
        for key in keys:
            points = [(r["iteration"], r[key]) for r in rows if isinstance(r.get(key), int | float)]
            if points:
                xs, ys = zip(*points, strict=True)
                ax.plot(xs, ys, marker="o", markersize=3, label=key)
        ax.set_xlabel("iteration")
        ax.set_ylabel(stem)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="best")
        fig.tight_layout()
        path = out / f"{stem}.png"
        fig.savefig(path)
        plt.close(fig)
        written.append(path)
    return written

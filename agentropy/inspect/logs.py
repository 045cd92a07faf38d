"""The other logs of a run folder, read for inspection: metrics, the replay buffer, the config.

* ``metrics.jsonl``: one flat object per training iteration (``{"iteration": 3, "train/success":
  0.25, ...}``);
* ``replay.jsonl`` (SPEAR runs): the replay buffer's rows after each iteration;
* ``.hydra/config.yaml``: the resolved config, for runs made by ``agentropy train``.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from agentropy.records.jsonl import iter_jsonl

__all__ = ["metric_series", "read_config", "read_jsonl_objects", "read_metrics", "read_replay"]

log = logging.getLogger(__name__)

METRICS_FILE = "metrics.jsonl"
REPLAY_FILE = "replay.jsonl"
CONFIG_FILE = ".hydra/config.yaml"


def read_jsonl_objects(path: str | Path) -> list[dict[str, Any]]:
    """The JSON objects of a JSON-lines file; a truncated last line (a live writer) is skipped.

    Raises:
        ValueError: a complete line that is not a JSON object, naming the line.
    """
    path = Path(path)
    if not path.exists():
        return []
    out = []
    for number, data in iter_jsonl(path, stacklevel=3):
        if not isinstance(data, dict):
            raise ValueError(f"{path}:{number}: expected a JSON object, got {type(data).__name__}")
        out.append(data)
    return out


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def read_metrics(run_dir: str | Path) -> list[dict[str, Any]]:
    """``metrics.jsonl`` rows that have an integer ``iteration``, sorted by iteration.

    Lines that are not objects are skipped.
    Only numbers are kept: strings, booleans, nulls, NaN and infinities are dropped (a chart
    cannot place them), and so is the wall-clock ``time`` stamp, which is not a metric.
    """
    path = Path(run_dir) / METRICS_FILE
    if not path.is_file():
        return []
    rows = []
    for _, obj in iter_jsonl(path, stacklevel=3):
        iteration = obj.get("iteration") if isinstance(obj, dict) else None
        if not isinstance(iteration, int) or isinstance(iteration, bool):
            continue
        row: dict[str, Any] = {"iteration": iteration}
        for key, value in obj.items():
            if key not in ("iteration", "time") and (number := _number(value)) is not None:
                row[key] = number
        rows.append(row)
    rows.sort(key=lambda r: r["iteration"])
    return rows


#: What the training view plots first: success and entropy, and the diagnostics that explain a
#: run (the share of groups with any reward variance, invalid turns by kind, won-episode length).
DEFAULT_CURVES = ("success", "entropy", "signal_groups", "invalid_format_rate", "invalid_env_rate",
                  "won_length")


def metric_series(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The metric keys of ``rows`` and which of them a viewer plots by default.

    Returns:
        ``{"keys": all keys sorted, "default_keys": those containing a word of
        :data:`DEFAULT_CURVES`}``.
    """
    keys = sorted({k for r in rows for k in r} - {"iteration"})
    default = [k for k in keys if any(word in k for word in DEFAULT_CURVES)]
    return {"keys": keys, "default_keys": default}


def read_replay(run_dir: str | Path) -> list[dict[str, Any]]:
    """``replay.jsonl``: per iteration, the replay buffer's rows, sorted by iteration.

    Each item is ``{"iteration": int, "rows": [{"episode_id", "turn", "advantage", "score",
    "step"}, ...]}``; rows that lack an episode id or a turn are dropped with a warning.
    """
    out = []
    path = Path(run_dir) / REPLAY_FILE
    for obj in read_jsonl_objects(path):
        iteration = obj.get("iteration")
        rows = obj.get("rows")
        if not isinstance(iteration, int) or not isinstance(rows, list):
            log.warning("%s: skipping a line without an iteration and rows", path)
            continue
        clean = []
        for row in rows:
            if (isinstance(row, dict) and isinstance(row.get("episode_id"), str)
                    and isinstance(row.get("turn"), int)):
                clean.append({
                    "episode_id": row["episode_id"],
                    "turn": row["turn"],
                    "advantage": _number(row.get("advantage")),
                    "score": _number(row.get("score")),
                    "step": row.get("step") if isinstance(row.get("step"), int) else None,
                })
            else:
                log.warning("%s: iteration %d: skipping a malformed row", path, iteration)
        out.append({"iteration": iteration, "rows": clean})
    out.sort(key=lambda r: r["iteration"])
    return out


def read_config(run_dir: str | Path) -> str | None:
    """The resolved config (``.hydra/config.yaml``) as text, if the run has one."""
    path = Path(run_dir) / CONFIG_FILE
    return path.read_text(encoding="utf-8", errors="replace") if path.is_file() else None

"""``agentropy export RUN OUT``: a run's recorded episodes as a Hugging Face dataset (parquet).

Two files are written into ``OUT``:

* ``episodes/episodes.parquet``: one row per episode, every field of
  :class:`agentropy.records.episodes.EpisodeRecord` with its turns as a list of structs;
* ``sft/sft.parquet``: one row per turn, ``prompt`` and ``completion`` text plus the episode's
  ids, the SFT view that ``sft.dataset=OUT`` trains on
  (:func:`agentropy.algorithms.sft_data.load_sft_trajectories`).

Both load with ``datasets.load_dataset("parquet", data_files=...)``. The selection uses the same
:class:`agentropy.inspect.run.EpisodeFilter` as ``agentropy replay``.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from agentropy.inspect.run import EpisodeFilter, RunIndex

__all__ = ["export_run"]


def _episode_row(record: Any) -> dict[str, Any]:
    row = dataclasses.asdict(record)
    for key in ("env_kwargs", "options", "package_versions"):  # free-form maps: keep them as JSON text
        row[key] = json.dumps(row[key], sort_keys=True)
    row["task_type"] = record.task_type
    return row


def export_run(run_dir: str | Path, out: str | Path, flt: EpisodeFilter | None = None,
               text: str | None = None) -> dict[str, int]:
    """Write the episodes of ``run_dir`` matching ``flt`` (and containing ``text``) as parquet under ``out``.

    Returns:
        ``{"episodes": n, "sft_rows": m}``.

    Raises:
        ValueError: no episode matches.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    index = RunIndex(run_dir, cache=False)
    records = list(index.records(index.select(flt, text=text)))
    if not records:
        raise ValueError(f"{run_dir}: no episode matches the filter; nothing to export")
    out = Path(out)
    (out / "episodes").mkdir(parents=True, exist_ok=True)
    (out / "sft").mkdir(parents=True, exist_ok=True)
    episodes = [_episode_row(r) for r in records]
    pq.write_table(pa.Table.from_pylist(episodes), out / "episodes" / "episodes.parquet")
    sft = [
        {
            "episode_id": r.episode_id, "env_id": r.env_id, "task_id": r.task_id, "task_type": r.task_type,
            "split": r.split, "phase": r.phase, "won": r.won, "turn": i,
            "prompt": t.prompt, "completion": t.completion, "action": t.action,
            "action_is_valid": t.action_is_valid, "reward": t.reward,
        }
        for r in records
        for i, t in enumerate(r.turns)
    ]
    pq.write_table(pa.Table.from_pylist(sft), out / "sft" / "sft.parquet")
    return {"episodes": len(episodes), "sft_rows": len(sft)}

"""The JSON the HTML viewer reads, built from a run folder; shared by the server and the export.

Every function returns plain JSON-able data (no NaN or infinity: they become ``null``). The
viewer never receives HTML: it puts every text into the page as text.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import Any

from agentropy.inspect.logs import metric_series, read_config, read_metrics, read_replay
from agentropy.inspect.run import (
    EpisodeFilter,
    EpisodeSummary,
    RunIndex,
    divergence_turn,
    split_completion,
)
from agentropy.records.episodes import EpisodeRecord

__all__ = [
    "SORT_KEYS",
    "episode_page",
    "episode_payload",
    "finite",
    "group_payload",
    "meta_payload",
    "metrics_payload",
    "replay_payload",
    "sort_summaries",
]

#: Orders the episode list offers: summary field, "-" prefix for descending.
SORT_KEYS = ("line", "-line", "score", "-score", "mean_entropy", "-mean_entropy", "length",
             "-length", "iteration", "-iteration")
MAX_PAGE = 500


def finite(value: Any) -> Any:
    """``value`` with every NaN or infinite float replaced by None (JSON has no such numbers)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite(v) for v in value]
    return value


def sort_summaries(summaries: Sequence[EpisodeSummary], key: str) -> list[EpisodeSummary]:
    """Summaries ordered by a :data:`SORT_KEYS` entry; missing values (None) go last."""
    if key not in SORT_KEYS:
        raise ValueError(f"unknown sort {key!r}; known: {', '.join(SORT_KEYS)}")
    name, descending = key.lstrip("-"), key.startswith("-")
    present = [s for s in summaries if getattr(s, name) is not None]
    missing = [s for s in summaries if getattr(s, name) is None]
    present.sort(key=lambda s: getattr(s, name), reverse=descending)
    return present + missing


def meta_payload(index: RunIndex) -> dict[str, Any]:
    """What the viewer shows before anything is chosen: counts, menus, which tabs exist."""
    run = index.run_dir
    return {
        "run_name": run.name,
        "episodes": len(index),
        "facets": index.facets(),
        "has_metrics": (run / "metrics.jsonl").is_file(),
        "has_replay": (run / "replay.jsonl").is_file(),
        "has_config": (run / ".hydra" / "config.yaml").is_file(),
        "sort_keys": list(SORT_KEYS),
    }


def episode_page(index: RunIndex, params: Mapping[str, str]) -> dict[str, Any]:
    """One page of the filtered episode list.

    Args:
        index: the run.
        params: :meth:`EpisodeFilter.from_params` parameters plus ``text`` (search the episodes'
            texts), ``sort`` (a :data:`SORT_KEYS` entry), ``offset`` and ``limit`` (at most
            :data:`MAX_PAGE`).

    Raises:
        ValueError: a parameter that does not parse.
    """
    flt = EpisodeFilter.from_params(params)
    try:
        offset = max(0, int(params.get("offset") or 0))
        limit = min(MAX_PAGE, max(1, int(params.get("limit") or 50)))
    except ValueError:
        raise ValueError("offset and limit must be integers") from None
    chosen = index.select(flt, text=(params.get("text") or "").strip() or None)
    chosen = sort_summaries(chosen, params.get("sort") or "line")
    page = chosen[offset: offset + limit]
    return {
        "total": len(chosen),
        "offset": offset,
        "limit": limit,
        "items": [finite(s.to_dict()) for s in page],
    }


def episode_payload(record: EpisodeRecord, prompt_limit: int | None = None) -> dict[str, Any]:
    """A full record as JSON, with each turn's thinking and answer split out.

    Args:
        record: the episode.
        prompt_limit: if given, prompts longer than this keep their first and last
            ``prompt_limit // 2`` characters, with a note of how much was left out (exports).
    """
    data = dataclasses.asdict(record)
    data["task_type"] = record.task_type
    for turn in data["turns"]:
        turn["thinking"], turn["answer"] = split_completion(turn["completion"])
        prompt = turn["prompt"]
        if prompt_limit is not None and len(prompt) > prompt_limit:
            half = prompt_limit // 2
            cut = len(prompt) - 2 * half
            turn["prompt"] = (f"{prompt[:half]}\n[... {cut} characters left out of this export; "
                              f"the full prompt is in episodes.jsonl ...]\n{prompt[-half:]}")
    return finite(data)


def group_payload(records: Sequence[EpisodeRecord]) -> dict[str, Any]:
    """The members of a GRPO group and the turn where they diverge."""
    return {
        "members": [episode_payload(r) for r in records],
        "divergence": divergence_turn(records),
    }


def metrics_payload(index: RunIndex) -> dict[str, Any]:
    """``metrics.jsonl`` rows with the keys to plot by default (success and entropy keys)."""
    rows = read_metrics(index.run_dir)
    return {"rows": rows, **metric_series(rows)}


def replay_payload(index: RunIndex, iteration: int | None) -> dict[str, Any]:
    """The replay buffer after ``iteration`` (the last one if None), rows linked to episodes.

    Each row gains ``known``: whether its episode is in the run's episode log.
    """
    snapshots = read_replay(index.run_dir)
    iterations = [{"iteration": s["iteration"], "size": len(s["rows"])} for s in snapshots]
    chosen = None
    if snapshots:
        if iteration is None:
            chosen = snapshots[-1]
        else:
            chosen = next((s for s in snapshots if s["iteration"] == iteration), None)
    rows = []
    if chosen is not None:
        for row in chosen["rows"]:
            rows.append({**row, "known": index.summary(row["episode_id"]) is not None})
    return {
        "iterations": iterations,
        "iteration": None if chosen is None else chosen["iteration"],
        "rows": rows,
    }


def config_payload(index: RunIndex) -> dict[str, Any]:
    """The resolved config text (None if the run has none)."""
    return {"text": read_config(index.run_dir)}

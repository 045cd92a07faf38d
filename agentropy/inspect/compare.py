"""Compare two runs (or two checkpoints of one run) per task type: ``agentropy compare``.

Each side is a set of episodes: a run folder's episodes, narrowed by a filter (by default its
evaluation episodes, when it has any). Rows are task types, named ``<family>/<task type>`` from
the task id convention (``twx/coin``); columns give each side's episode count, success rate and
mean score, and the difference B - A.

Comparing success rates is only fair on the same tasks; :class:`Comparison` says how many task
ids the two sides share, and ``common_only`` restricts both sides to those.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from agentropy.inspect.run import EpisodeFilter, EpisodeSummary, RunIndex

__all__ = ["Comparison", "SideStats", "compare", "default_filter", "task_kind"]


def task_kind(summary: EpisodeSummary) -> str:
    """``<family>/<task type>`` of an episode (``twx/coin``), or its task id if it has no type."""
    parts = summary.task_id.split("/")
    return "/".join(parts[:2]) if len(parts) > 1 else summary.task_id or "?"


@dataclass(frozen=True)
class SideStats:
    """One side's numbers for one task type (or all of them).

    Attributes:
        episodes: how many episodes.
        success: fraction won, in [0, 1] (NaN-free: 0 episodes give 0).
        score: mean final score, in [0, 1].
    """

    episodes: int
    success: float
    score: float

    @classmethod
    def of(cls, summaries: Sequence[EpisodeSummary]) -> SideStats:
        n = len(summaries)
        if n == 0:
            return cls(0, 0.0, 0.0)
        return cls(n, sum(s.won for s in summaries) / n, sum(s.score for s in summaries) / n)


@dataclass(frozen=True)
class Comparison:
    """Side-by-side numbers.

    Attributes:
        rows: task kind -> (A's stats, B's stats), sorted by task kind.
        total: (A's stats, B's stats) over all episodes.
        shared_tasks: how many task ids both sides played.
        tasks_a, tasks_b: how many distinct task ids each side played.
        label_a, label_b: what each side is (run folder and filter).
    """

    rows: dict[str, tuple[SideStats, SideStats]]
    total: tuple[SideStats, SideStats]
    shared_tasks: int
    tasks_a: int
    tasks_b: int
    label_a: str
    label_b: str

    def to_dict(self) -> dict:
        def side(s: SideStats) -> dict:
            return {"episodes": s.episodes, "success": s.success, "score": s.score}

        return {
            "a": self.label_a,
            "b": self.label_b,
            "rows": {k: {"a": side(a), "b": side(b)} for k, (a, b) in self.rows.items()},
            "total": {"a": side(self.total[0]), "b": side(self.total[1])},
            "shared_tasks": self.shared_tasks,
            "tasks_a": self.tasks_a,
            "tasks_b": self.tasks_b,
        }


def default_filter(index: RunIndex, flt: EpisodeFilter) -> EpisodeFilter:
    """``flt``, narrowed to evaluation episodes when it names no phase and the run has some."""
    if flt.phase is None and any(s.phase == "eval" for s in index.summaries):
        return dataclasses.replace(flt, phase="eval")
    return flt


def _describe(index: RunIndex, flt: EpisodeFilter) -> str:
    parts = [f"{f.name}={getattr(flt, f.name)}" for f in dataclasses.fields(flt)
             if getattr(flt, f.name) is not None]
    return f"{index.run_dir.name}" + (f" [{', '.join(parts)}]" if parts else "")


def compare(index_a: RunIndex, index_b: RunIndex, filter_a: EpisodeFilter,
            filter_b: EpisodeFilter, *, common_only: bool = False) -> Comparison:
    """Compare the episodes of ``index_a`` matching ``filter_a`` with those of ``index_b``.

    Args:
        index_a, index_b: the two runs (may be the same run, with different filters).
        filter_a, filter_b: which episodes each side holds.
        common_only: keep only the task ids both sides played.
    """
    a = index_a.select(filter_a)
    b = index_b.select(filter_b)
    ids_a, ids_b = {s.task_id for s in a}, {s.task_id for s in b}
    shared = ids_a & ids_b
    if common_only:
        a = [s for s in a if s.task_id in shared]
        b = [s for s in b if s.task_id in shared]
    by_kind: dict[str, tuple[list[EpisodeSummary], list[EpisodeSummary]]] = defaultdict(
        lambda: ([], []))
    for s in a:
        by_kind[task_kind(s)][0].append(s)
    for s in b:
        by_kind[task_kind(s)][1].append(s)
    rows = {k: (SideStats.of(v[0]), SideStats.of(v[1])) for k, v in sorted(by_kind.items())}
    return Comparison(
        rows=rows,
        total=(SideStats.of(a), SideStats.of(b)),
        shared_tasks=len(shared),
        tasks_a=len(ids_a),
        tasks_b=len(ids_b),
        label_a=_describe(index_a, filter_a),
        label_b=_describe(index_b, filter_b),
    )

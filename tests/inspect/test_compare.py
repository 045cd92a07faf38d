"""Comparing two runs, or two checkpoints of one run, per task type."""

from __future__ import annotations

import json

import pytest

from agentropy.cli import main
from agentropy.inspect.compare import SideStats, compare, default_filter
from agentropy.inspect.run import EpisodeFilter, RunIndex
from tests.inspect.runs import outcome_record, write_records


@pytest.fixture()
def two_runs(tmp_path):
    # A: coin 1 of 2 won (scores 1, 0.5), cooking 0 of 2; plus train episodes that the default
    # (eval) filter leaves out.
    a = write_records(tmp_path / "a", [
        outcome_record("a1", "twx/coin/dev/1", True),
        outcome_record("a2", "twx/coin/dev/2", False, score=0.5),
        outcome_record("a3", "twx/cookingworld/dev/1", False),
        outcome_record("a4", "twx/cookingworld/dev/2", False),
        outcome_record("a5", "twx/coin/train/9", True, phase="train"),
    ])
    # B: coin 2 of 2, cooking 1 of 2, and a task A never played (sorting).
    b = write_records(tmp_path / "b", [
        outcome_record("b1", "twx/coin/dev/1", True),
        outcome_record("b2", "twx/coin/dev/2", True),
        outcome_record("b3", "twx/cookingworld/dev/1", True),
        outcome_record("b4", "twx/cookingworld/dev/2", False, score=0.25),
        outcome_record("b5", "twx/sorting/dev/1", False),
    ])
    return a, b


def test_side_by_side_numbers(two_runs):
    a, b = (RunIndex(p) for p in two_runs)
    result = compare(a, b, default_filter(a, EpisodeFilter()), default_filter(b, EpisodeFilter()))
    assert result.rows["twx/coin"] == (SideStats(2, 0.5, 0.75), SideStats(2, 1.0, 1.0))
    assert result.rows["twx/cookingworld"] == (SideStats(2, 0.0, 0.0), SideStats(2, 0.5, 0.625))
    assert result.rows["twx/sorting"] == (SideStats(0, 0.0, 0.0), SideStats(1, 0.0, 0.0))
    # A: 1 won of 4, scores 1 + 0.5 + 0 + 0 -> 0.375. B: 3 of 5, (1 + 1 + 1 + 0.25 + 0) / 5 = 0.65.
    assert result.total == (SideStats(4, 0.25, 0.375), SideStats(5, 0.6, 0.65))
    assert (result.tasks_a, result.tasks_b, result.shared_tasks) == (4, 5, 4)
    common = compare(a, b, default_filter(a, EpisodeFilter()), default_filter(b, EpisodeFilter()),
                     common_only=True)
    assert "twx/sorting" not in common.rows and common.total[1] == SideStats(4, 0.75, 0.8125)


def test_two_checkpoints_of_one_run(tmp_path):
    run = write_records(tmp_path / "run", [
        outcome_record("e1", "twx/coin/dev/1", False, iteration=10, policy_version=10),
        outcome_record("e2", "twx/coin/dev/2", False, iteration=10, policy_version=10),
        outcome_record("e3", "twx/coin/dev/1", True, iteration=50, policy_version=50),
        outcome_record("e4", "twx/coin/dev/2", False, iteration=50, policy_version=50),
    ])
    index = RunIndex(run)
    result = compare(index, index, EpisodeFilter(iteration=10), EpisodeFilter(iteration=50))
    assert result.rows["twx/coin"] == (SideStats(2, 0.0, 0.0), SideStats(2, 0.5, 0.5))


def test_command_line(two_runs, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    a, b = two_runs
    assert main(["compare", str(a), str(b)]) == 0
    out = capsys.readouterr().out
    assert "twx/coin" in out and "+0.500" in out and "phase=eval" in out
    assert "did not play the same tasks" in out
    assert main(["compare", str(a), str(b), "--json", "--phase", "train"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["total"]["a"] == {"episodes": 1, "success": 1.0, "score": 1.0}
    assert data["total"]["b"]["episodes"] == 0
    assert main(["compare", str(a), str(a / "missing")]) == 2

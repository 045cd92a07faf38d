"""metrics.jsonl, TensorBoard events and plots."""

from __future__ import annotations

import json
import math

import pytest
from agentropy.algorithms.metrics import MetricsLog, plot_metrics, read_metrics


def test_log_read_truncate(tmp_path):
    log = MetricsLog(tmp_path)
    log.log(0, {"train/success": 0.25, "actor/entropy": 1.5, "flag": True, "bad": math.nan})
    offset = log.tell()
    log.log(1, {"train/success": 0.5})
    log.truncate(offset)  # a resumed run re-does iteration 1
    log.log(1, {"train/success": 0.75})
    log.close()
    rows = read_metrics(tmp_path)
    assert [r["iteration"] for r in rows] == [0, 1]
    assert rows[0]["flag"] == 1 and rows[0]["bad"] is None
    assert rows[1]["train/success"] == 0.75
    assert list((tmp_path / "tensorboard").glob("events.out.tfevents.*"))


def test_truncated_last_line_is_skipped(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text(json.dumps({"iteration": 0, "a": 1}) + "\n" + '{"iteration": 1, "a"')
    with pytest.warns(UserWarning, match="truncated"):
        assert len(read_metrics(path)) == 1


def test_plots(tmp_path):
    rows = [{"iteration": i, "train/success": i / 10, "eval/dev/success": i / 20,
             "actor/entropy": 2 - i / 10} for i in range(8)]
    files = plot_metrics(rows, tmp_path / "plots")
    assert sorted(p.name for p in files) == ["entropy.png", "success.png"]
    for p in files:
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and p.stat().st_size > 5000


def test_rollout_metrics_split_invalid_turns_and_time_wins():
    from agentropy.algorithms.data import Trajectory, Turn
    from agentropy.algorithms.train import _rollout_metrics

    def turn(valid: bool = True, reason: str = "") -> Turn:
        return Turn((1,), (2,), (-0.1,), 0.0, valid, invalid_reason=reason)

    won = Trajectory("e", 0, 0, 0, turns=(turn(), turn(False, "format: no <action> tags"), turn()), won=True)
    lost = Trajectory("e", 1, 0, 0, turns=(turn(False, "env: Nothing happens."), turn(False, "")), won=False)
    failed = Trajectory("e", 2, 0, 0, turns=(turn(False, "format: x"),), failure="worker died")
    m = _rollout_metrics("train", [won, lost, failed])
    # 5 turns of finished episodes: 3 invalid; a reasonless invalid turn counts as a format failure
    assert m["train/invalid_rate"] == pytest.approx(3 / 5)
    assert m["train/invalid_format_rate"] == pytest.approx(2 / 5)
    assert m["train/invalid_env_rate"] == pytest.approx(1 / 5)
    assert m["train/won_length"] == 3.0
    assert m["train/failures"] == 1.0
    assert math.isnan(_rollout_metrics("eval", [lost])["eval/won_length"])

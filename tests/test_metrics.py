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

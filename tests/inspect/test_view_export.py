"""``agentropy view --export`` on damaged run folders: one-line errors and honest warnings."""

from __future__ import annotations

import shutil

import pytest

from agentropy.cli import main


@pytest.mark.parametrize("name", ["metrics.jsonl", "replay.jsonl"])
def test_a_damaged_log_line_is_one_line_on_stderr(capsys, hostile_run, tmp_path, name):
    run = tmp_path / "run"
    shutil.copytree(hostile_run, run)
    with open(run / name, "a") as f:
        f.write('{"iteration": 1, bad\n{"iteration": 2}\n')
    rc = main(["view", str(run), "--export", str(tmp_path / "out.html")])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1
    assert f"{name}:" in err and "not " in err and "Traceback" not in err
    assert not (tmp_path / "out.html").exists()


def test_a_truncated_last_episode_is_left_out_with_a_warning(capsys, hostile_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(hostile_run, run)
    data = (run / "episodes.jsonl").read_bytes()
    (run / "episodes.jsonl").write_bytes(data[:-30])  # the last record loses its end
    with pytest.warns(UserWarning, match="episodes.jsonl: skipping a truncated last line"):
        rc = main(["view", str(run), "--export", str(tmp_path / "out.html")])
    assert rc == 0
    total = sum(1 for line in data.splitlines() if line.strip())
    assert f"{total - 1} of {total - 1} episodes" in capsys.readouterr().out

"""The command line, run as a user would run it."""

from __future__ import annotations

import filecmp
import os
import subprocess
import sys
from pathlib import Path

from agentropy.records.episodes import read_episodes

AGENTROPY = [sys.executable, "-m", "agentropy.cli"]  # the console script's code
ENV = {**os.environ, "HF_HUB_OFFLINE": "1"}


def _run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([*AGENTROPY, *args], capture_output=True, text=True, env=ENV, cwd=cwd,
                          timeout=300)


def test_help_lists_subcommands():
    out = _run("--help")
    assert out.returncode == 0
    for command in ("train", "make-model", "make-corpus", "play"):
        assert command in out.stdout


def test_make_model_twice_is_identical(tmp_path):
    for name in ("a", "b"):
        assert _run("make-model", str(tmp_path / name)).returncode == 0
    for f in ("model.safetensors", "tokenizer.json", "config.json"):
        assert filecmp.cmp(tmp_path / "a" / f, tmp_path / "b" / f, shallow=False)


def test_play_records_and_summarizes(tmp_path):
    out = _run("play", "--env", "agentropy/TWX-v0", "--agent", "expert", "--episodes", "3",
               "--kwargs", '{"game": "coin"}', "--split", "dev", "--out", str(tmp_path))
    assert out.returncode == 0, out.stderr
    assert "success" in out.stdout and "1.000" in out.stdout
    records = read_episodes(tmp_path / "episodes.jsonl")
    assert len(records) == 3 and all(r.won for r in records)
    assert records[0].env_kwargs == {"game": "coin", "split": "dev"}


def test_train_rejects_a_typo_at_start_up(tmp_path):
    out = _run("train", "agent.temprature=0.5", f"hydra.run.dir={tmp_path}")
    assert out.returncode != 0
    assert "temprature" in out.stderr

"""`agentropy play --agent model`: a model plays an env and its episodes are recorded."""

from __future__ import annotations

import os
import subprocess
import sys

from agentropy.records.episodes import read_episodes

ENV = {**os.environ, "HF_HUB_OFFLINE": "1"}


def test_play_a_model_and_record(tiny_model_dir, tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "agentropy.cli", "play", "--env", "agentropy/TWX-v0", "--kwargs",
         '{"game": "coin"}', "--agent", "model", "--model", str(tiny_model_dir), "--backend", "hf",
         "--episodes", "3", "--max-turns", "2", "--max-new-tokens", "8", "--out", str(tmp_path)],
        capture_output=True, text=True, env=ENV, timeout=600,
    )
    assert out.returncode == 0, out.stderr
    assert "model:hf" in out.stdout
    records = read_episodes(tmp_path / "episodes.jsonl")
    assert len(records) == 3 and {r.agent for r in records} == {"model:hf"}
    assert [r.seed for r in records] == [0, 1, 2] and {r.phase for r in records} == {"play"}
    for record in records:
        assert 1 <= record.length <= 2
        turn = record.turns[0]
        assert turn.prompt.startswith("<|im_start|>system") and turn.observation.strip() in turn.prompt
        assert len(turn.tokens) == len(turn.token_entropies) <= 8
    # An untrained model's completions are malformed: their turns record the format's reason
    # before the env's ("format: ...; env: ..."), and a re-run still reproduces every episode.
    assert any(t.invalid_reason.startswith("format: ") for r in records for t in r.turns)
    rerun = subprocess.run([sys.executable, "-m", "agentropy.cli", "rerun", str(tmp_path), "--all"],
                           capture_output=True, text=True, env=ENV, timeout=600)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert "3 identical, 0 different" in rerun.stdout


def test_play_model_needs_a_model():
    out = subprocess.run(
        [sys.executable, "-m", "agentropy.cli", "play", "--env", "agentropy/TWX-v0", "--agent", "model"],
        capture_output=True, text=True, env=ENV, timeout=120,
    )
    assert out.returncode == 2 and "--model" in out.stderr

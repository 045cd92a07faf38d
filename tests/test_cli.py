"""The command line, run as a user would run it."""

from __future__ import annotations

import filecmp
import os
import subprocess
import sys
from pathlib import Path

import pytest

from agentropy.cli import main
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


# --------------------------------------------------------------------------- config errors
@pytest.mark.parametrize(("override", "message"), [
    ("experiment=nope", "unknown experiment 'nope'; known: "),  # the group is optional
    ("+foo=1", "foo: no such key in the root"),
    ("+env.foo=1", "env.foo: no such key in env"),
    ("env.max_turns=-1", "env.max_turns: must be > 0"),
    ("group_size=0", "group_size: must be > 0"),
    ("agent.temperature=-1", "agent.temperature: must be >= 0"),
    ("env.id=nope", "env.id: 'nope' is not registered"),
    ("env.id=agentropy/TextWorld-v0", "env.eval_splits: 'dev' is not a split of agentropy/TextWorld-v0"),
    ("env.pool=threads", "env.pool: 'threads' is not one of"),
    ("env=nope", "Could not find 'env/nope'"),
    ("agent.temprature=0.5", "agent.temprature"),
    ("agent.temperature=abc", "could not be converted"),
])
def test_every_config_error_is_one_line_and_exit_2(capsys, tmp_path, override, message):
    rc = main(["train", override, f"hydra.run.dir={tmp_path}"])
    err = capsys.readouterr().err
    assert rc == 2
    assert err.count("\n") == 1 and err.startswith("agentropy train: invalid config: "), err
    assert message in err
    assert not any(tmp_path.iterdir())  # nothing ran


@pytest.mark.parametrize("flags", [["--cfg", "job"], ["--cfg", "hydra"], ["--help"], ["--info"]])
def test_printing_the_config_exits_0(capsys, flags):
    assert main(["train", "experiment=quickstart", *flags]) == 0
    assert capsys.readouterr().out


def test_an_added_key_inside_a_free_dict_is_allowed():
    from agentropy.configs.compose import load_config

    assert load_config(["+env.kwargs.split=dev"]).env.kwargs["split"] == "dev"


def test_the_end_of_run_table_keeps_its_headers_when_stdout_is_not_a_terminal(capsys, monkeypatch):
    """Piped into a log, the summary keeps every column header whole (rich's default is 80
    columns, which cut ``invalid/turn (sampled)`` to ``invalid/t…``)."""
    from agentropy.cli import _train_summary_table

    monkeypatch.delenv("COLUMNS", raising=False)
    point = {"iteration": 0, "success": 0.5, "success_greedy": 0.4, "invalid_rate": 0.1,
             "invalid_rate_greedy": 0.2}
    _train_summary_table({"eval_episodes": 100, "run_dir": "runs/x",
                          "splits": {"dev": {"start": point, "end": {**point, "iteration": 3}}}})
    out = capsys.readouterr().out
    for header in ("success (sampled)", "success (greedy)", "invalid/turn (sampled)",
                   "invalid/turn (greedy)"):
        assert header in out
    assert "…" not in out

"""``agentropy replay``: the terminal view of recorded episodes."""

from __future__ import annotations

import pytest

from agentropy.cli import main
from tests.inspect.runs import HOSTILE_ID


@pytest.fixture(autouse=True)
def wide_terminal(monkeypatch):
    monkeypatch.setenv("COLUMNS", "220")


def _replay(capsys, *args: str) -> tuple[int, str]:
    rc = main(["replay", *args])
    return rc, capsys.readouterr().out


def test_list_with_filters(capsys, hostile_run):
    rc, out = _replay(capsys, str(hostile_run))
    assert rc == 0 and "episodes 1-20 of 20" in out
    rc, out = _replay(capsys, str(hostile_run), "--won", "--phase", "train", "--limit", "3")
    assert "episodes 1-3 of 8" in out and "--offset 3 for the next page" in out
    assert "it0-g0-m0" in out and "it0-g0-m1" not in out  # member 1 failed
    rc, out = _replay(capsys, str(hostile_run), "--failed", "--iteration", "1", "--task-type",
                      "cookingworld")
    assert "episodes 1-2 of 2" in out and "it1-g1-m1" in out and "it1-g1-m3" in out
    rc, out = _replay(capsys, str(hostile_run), "--policy-version", "7")
    assert rc == 0 and "no episode" in out


def test_one_episode_turn_by_turn(capsys, hostile_run):
    rc, out = _replay(capsys, str(hostile_run), "--episode", "it0-g0-m3")
    assert rc == 0
    for t in range(4):
        assert f"turn {t}" in out
    assert "take thing 3  valid" in out
    assert "open door 3  invalid: the command is not one of the admissible commands" in out
    assert "advantage -0.800" in out and "entropy 0.500" in out
    assert "thinking" in out and "prompt" not in out
    rc, out = _replay(capsys, str(hostile_run), "--episode", "it0-g0-m3", "--prompt")
    assert "<|im_start|>system" in out


def test_recorded_text_cannot_restyle_or_reorder_the_terminal(capsys, hostile_run):
    rc, out = _replay(capsys, str(hostile_run), "--episode", "it0-g0-m1")
    assert "[bold red]not markup[/bold red]" in out  # shown, not interpreted
    assert "\x1b" not in out and "\\x1b[2J" in out  # no escape reaches the terminal
    assert "\u202e" not in out and "\\u202eevil" in out
    assert "café — 漢字 🙂" in out and "<script>window.__pwned = 2</script>" in out
    rc, out = _replay(capsys, str(hostile_run), "--episode", HOSTILE_ID)
    assert rc == 0 and "failure" in out and "backend died" in out


def test_a_group_side_by_side_where_it_diverges(capsys, hostile_run):
    rc, out = _replay(capsys, str(hostile_run), "--group", "0", "--iteration", "1")
    assert rc == 0
    assert "group 0 (iteration 1): 4 members" in out
    assert "same actions for turns 0-1: look, go north" in out
    assert "observation at turn 2 (all)" in out
    for m in range(4):
        assert f"it1-g0-m{m}" in out and f"take thing {m}" in out
    assert "(ended)" in out  # members 0 and 2 end after turn 2, 1 and 3 go on
    # --group-view with other filters shows every group they select.
    rc, out = _replay(capsys, str(hostile_run), "--group-view", "--task-type", "cookingworld")
    assert out.count("members, task twx/cookingworld/train/7") == 2


def test_errors(capsys, hostile_run, tmp_path):
    assert main(["replay", str(hostile_run), "--episode", "nope"]) == 1
    assert "no episode nope" in capsys.readouterr().err
    assert main(["replay", str(tmp_path / "missing")]) == 2
    assert "not a run folder" in capsys.readouterr().err
    (tmp_path / "episodes.jsonl").write_text("{broken\n{}\n")
    assert main(["replay", str(tmp_path)]) == 2
    assert "episodes.jsonl:1: not a JSON record" in capsys.readouterr().err


def test_help_lists_the_inspection_commands(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for command in ("replay", "view", "rerun", "compare"):
        assert command in out


@pytest.mark.parametrize("command", ["replay", "rerun", "compare"])
def test_the_sft_phase_is_a_phase_like_the_others(capsys, hostile_run, command):
    """The trainer records its warm start's expert episodes with phase "sft"; every command that
    filters by phase accepts it (a refused choice is argparse's exit 2)."""
    args = {"replay": [str(hostile_run)], "rerun": [str(hostile_run), "--all"],
            "compare": [str(hostile_run)] * 2}[command]
    rc = main([command, *args, "--phase", "sft"])
    assert rc != 2, capsys.readouterr().err

"""Re-running recorded episodes: every env family reproduces its own records, and tampering
with a record is reported at the right turn."""

from __future__ import annotations

import dataclasses
import sys

import pytest
from agentropy.envs.webshop import store as webshop_store

from agentropy.cli import main
from agentropy.inspect.rerun import Rerunner, RerunRefused, rerun
from agentropy.play import play
from agentropy.records.episodes import EpisodeLog, read_episodes
from tests.envs.cases import all_cases

CASES = all_cases()
IDS = [f"{env_id.split('/')[1]}-{name}" for env_id, name, _ in CASES]


@pytest.mark.parametrize(("env_id", "name", "kwargs"), CASES, ids=IDS)
def test_every_family_reruns_its_recorded_episodes_identically(tmp_path, env_id, name, kwargs):
    records = play(env_id, agent="random", episodes=2, out_dir=tmp_path, env_kwargs=kwargs,
                   seed=3, max_turns=8)
    records += play(env_id, agent="expert", episodes=1, out_dir=tmp_path, env_kwargs=kwargs,
                    seed=7)
    assert read_episodes(tmp_path / "episodes.jsonl") == records
    reports = list(rerun(read_episodes(tmp_path / "episodes.jsonl")))
    assert [r.describe() for r in reports if not r.identical] == []
    assert [r.turns_replayed for r in reports] == [r.length for r in records]
    assert all(not r.version_changes for r in reports)


@pytest.fixture(scope="module")
def recorded(played_run):
    """The longest expert episode of the played run (the expert wins coin in 2-14 turns)."""
    records = [r for r in read_episodes(played_run / "episodes.jsonl") if r.agent == "expert"]
    record = max(records, key=lambda r: r.length)
    assert record.length >= 5 and record.won
    return record


@pytest.fixture(scope="module")
def runner():
    with Rerunner() as r:
        yield r


def _with_turn(record, t, **changes):
    turns = list(record.turns)
    turns[t] = dataclasses.replace(turns[t], **changes)
    return dataclasses.replace(record, turns=tuple(turns))


def test_the_untouched_record_is_identical(runner, recorded):
    report = runner.rerun(recorded)
    assert report.identical and report.turns_replayed == recorded.length
    assert report.describe() == f"identical ({recorded.length} turns)"


def test_a_changed_observation_is_reported_at_its_turn(runner, recorded):
    tampered = _with_turn(recorded, 3, observation=recorded.turns[3].observation + " (edited)")
    report = runner.rerun(tampered)
    assert not report.identical and report.first_turn == 3
    (diff,) = report.differences
    assert diff.field == "observation" and diff.recorded.endswith("(edited)")
    assert diff.replayed == recorded.turns[3].observation
    assert "turn 3: observation" in report.describe()


def test_a_changed_reward_is_reported_at_its_turn(runner, recorded):
    last = recorded.length - 1  # the winning step gives the reward
    tampered = _with_turn(recorded, last, reward=0.5)
    report = runner.rerun(tampered)
    assert report.first_turn == last
    assert [(d.field, d.recorded, d.replayed) for d in report.differences] == [
        ("reward", 0.5, recorded.turns[last].reward)]
    # A change below the tolerance (1e-9) is not a difference; JSON keeps floats exactly.
    close = _with_turn(recorded, last, reward=recorded.turns[last].reward + 1e-12)
    assert runner.rerun(close).identical


def test_a_changed_validity_and_outcome_are_reported(runner, recorded):
    report = runner.rerun(_with_turn(recorded, 1, action_is_valid=False))
    assert report.first_turn == 1 and report.differences[0].field == "action_is_valid"
    report = runner.rerun(dataclasses.replace(recorded, won=False, score=0.0))
    assert report.first_turn is None
    assert {d.field for d in report.differences} == {"won", "score"}
    assert "outcome: won recorded False, re-run True" in report.describe()


def test_a_record_that_goes_on_after_the_env_ended(runner, recorded):
    extra = dataclasses.replace(recorded.turns[-1], action="look")
    report = runner.rerun(dataclasses.replace(recorded, turns=(*recorded.turns, extra)))
    assert [(d.turn, d.field) for d in report.differences] == [(recorded.length, "length")]


def test_a_changed_package_version_is_reported_as_such(runner, recorded):
    versions = {**recorded.package_versions, "textworld-express": "0.0.1"}
    report = runner.rerun(dataclasses.replace(recorded, package_versions=versions))
    installed = recorded.package_versions["textworld-express"]
    assert report.identical  # the game itself did not change
    assert report.version_changes == {"textworld-express": ("0.0.1", installed)}
    assert f"textworld-express 0.0.1 -> {installed}" in report.describe()


def test_an_env_that_cannot_be_made_is_an_error_not_a_crash(runner, recorded):
    bad = dataclasses.replace(recorded, env_kwargs={**recorded.env_kwargs, "game": "no-such-game"})
    report = runner.rerun(bad)
    assert not report.identical and "cannot make agentropy/TWX-v0" in report.error


def test_an_unknown_env_id_is_refused(runner, recorded):
    with pytest.raises(RerunRefused, match="'agentropy/Gone-v0' is not an agentropy env"):
        runner.rerun(dataclasses.replace(recorded, env_id="agentropy/Gone-v0"))


def test_a_collected_turn_compares_the_envs_part_of_its_reason_whatever_the_agent(runner, recorded):
    # The SFT demonstrations are collected like the model's episodes: the scripted expert's
    # completion can be malformed (cut by max_new_tokens) while the env accepted the command.
    cut = _with_turn(recorded, 1, action_is_valid=False, invalid_reason="format: <action> is not closed")
    report = runner.rerun(dataclasses.replace(cut, agent="scripted:expert", phase="sft"))
    assert report.identical, report.describe()
    # A reason the env gave as it is (agentropy play's agents) is still compared whole.
    assert not runner.rerun(_with_turn(recorded, 1, action_is_valid=False,
                                       invalid_reason="not an env reason")).identical


def test_a_record_cannot_import_a_module_or_pass_any_keyword(runner, recorded, tmp_path):
    # gymnasium.make would import "this" for an id "this:X-v0"; the re-run refuses it first.
    assert "this" not in sys.modules
    with pytest.raises(RerunRefused, match="'this:X-v0' is not an agentropy env"):
        runner.rerun(dataclasses.replace(recorded, env_id="this:X-v0"))
    assert "this" not in sys.modules
    with pytest.raises(RerunRefused, match="keyword 'data_path' is not re-run from a record"):
        runner.rerun(dataclasses.replace(recorded, env_kwargs={**recorded.env_kwargs,
                                                               "data_path": str(tmp_path)}))
    with pytest.raises(RerunRefused, match="max_episode_steps must be an int"):
        runner.rerun(dataclasses.replace(recorded, env_kwargs={"max_episode_steps": "9"}))


def test_a_recorded_cache_dir_is_ignored(tmp_path, monkeypatch):
    # WebShop writes its catalog under cache_dir: where the recording machine kept its caches
    # must not choose where this one writes.
    kwargs = {"split": "test", "num_products": 1000}
    (record,) = play("agentropy/WebShop-v0", agent="random", episodes=1, out_dir=tmp_path / "run",
                     env_kwargs=kwargs, seed=3, max_turns=3)
    monkeypatch.setattr(webshop_store, "_SHOPS", {})  # load the shop again, from a disk cache
    chosen = tmp_path / "chosen"
    crafted = dataclasses.replace(record, env_kwargs={**record.env_kwargs, "cache_dir": str(chosen)})
    with Rerunner() as runner:
        report = runner.rerun(crafted)
    assert report.identical, report.describe()
    assert not chosen.exists()


def test_a_refused_folder_is_one_line_and_exit_2(tmp_path, recorded, capsys):
    with EpisodeLog(tmp_path / "episodes.jsonl") as log:
        log.append(recorded)
        log.append(dataclasses.replace(recorded, episode_id="evil", env_id="this:X-v0"))
    assert main(["rerun", str(tmp_path), "--all"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "episode evil: env id 'this:X-v0' is not an agentropy env" in err
    assert "this" not in sys.modules


def test_the_command_line_exit_code_says_whether_all_reproduced(tmp_path, played_run, recorded,
                                                                capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    assert main(["rerun", str(played_run), "--episode", recorded.episode_id]) == 0
    assert "1 identical, 0 different" in capsys.readouterr().out
    tampered = _with_turn(recorded, 2, observation="<script>x</script>")
    with EpisodeLog(tmp_path / "episodes.jsonl") as log:
        log.append(tampered)
    assert main(["rerun", str(tmp_path), "--all"]) == 1
    out = capsys.readouterr().out
    assert "turn 2: observation recorded '<script>x</script>'" in out
    assert "0 identical, 1 different" in out
    assert main(["rerun", str(tmp_path)]) == 2  # neither --episode nor --all
    assert main(["rerun", str(tmp_path), "--episode", "nope"]) == 1

"""The episode log: round trip, truncated last line, unknown schema version, resume truncation."""

from __future__ import annotations

import json
import warnings

import pytest

from agentropy.records.episodes import (
    SCHEMA_VERSION,
    EpisodeLog,
    EpisodeRecord,
    EpisodeSchemaError,
    TurnRecord,
    package_versions,
    read_episodes,
)


def _record(i: int, text: str = "You see a coin.") -> EpisodeRecord:
    turns = (
        TurnRecord(observation=text, prompt="<|im_start|>user\n" + text, completion=
                   "<think>coin!</think><action>take coin</action>", action="take coin",
                   action_is_valid=True, reward=1.0, logprob_sum=-3.25, mean_entropy=0.5,
                   token_entropies=(0.1, 0.9), tokens=("<think>", "coin")),
        TurnRecord(observation="<script>alert(1)</script> ünï", action="x", action_is_valid=False,
                   invalid_reason="no <action> tag", reward=0.0),
    )
    return EpisodeRecord(
        episode_id=f"ep{i}", env_id="agentropy/TWX-v0", env_kwargs={"game": "coin"}, seed=i,
        options={"task": 3}, package_versions=package_versions(["textworld-express"]),
        policy_version=2, agent="model:hf", phase="train", task="find the coin", task_id="t/3",
        won=True, score=1.0, total_reward=1.0, terminated=True, truncated=False, turns=turns,
        iteration=4, group_id=1,
    )


def test_round_trip(tmp_path):
    path = tmp_path / "episodes.jsonl"
    with EpisodeLog(path) as log:
        for i in range(3):
            log.append(_record(i))
    records = read_episodes(path)
    assert records == [_record(i) for i in range(3)]
    assert records[0].schema_version == SCHEMA_VERSION
    assert records[0].length == 2 and records[0].num_invalid == 1
    assert "textworld-express" in records[0].package_versions
    assert len(path.read_text().splitlines()) == 3


def test_each_append_is_flushed(tmp_path):
    path = tmp_path / "episodes.jsonl"
    log = EpisodeLog(path)
    log.append(_record(0))
    # Another reader sees the record before the log is closed.
    assert [r.episode_id for r in read_episodes(path)] == ["ep0"]
    log.close()


def test_truncated_last_line_is_skipped_with_a_warning(tmp_path):
    path = tmp_path / "episodes.jsonl"
    with EpisodeLog(path) as log:
        log.append(_record(0))
        log.append(_record(1))
    data = path.read_bytes()
    path.write_bytes(data[:-40])  # a writer killed in the middle of record 1
    with pytest.warns(UserWarning, match="truncated last line"):
        records = read_episodes(path)
    assert [r.episode_id for r in records] == ["ep0"]


def test_corrupt_middle_line_is_an_error(tmp_path):
    path = tmp_path / "episodes.jsonl"
    lines = [_record(0).to_json(), "{not json", _record(1).to_json()]
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(EpisodeSchemaError, match=r"episodes.jsonl:2: not a JSON record"):
        read_episodes(path)


def test_unknown_schema_version_is_refused_clearly(tmp_path):
    path = tmp_path / "episodes.jsonl"
    data = json.loads(_record(0).to_json())
    data["schema_version"] = 99
    path.write_text(_record(1).to_json() + "\n" + json.dumps(data) + "\n")
    with pytest.raises(EpisodeSchemaError, match=r":2: .*schema_version 99.*reads \[1\]"):
        read_episodes(path)


def test_writer_repairs_a_partial_line_before_appending(tmp_path):
    path = tmp_path / "episodes.jsonl"
    path.write_text(_record(0).to_json() + "\n" + _record(1).to_json()[:30])
    with pytest.warns(UserWarning, match="dropping a truncated last record"):
        log = EpisodeLog(path)
    log.append(_record(2))
    log.close()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert [r.episode_id for r in read_episodes(path)] == ["ep0", "ep2"]


def test_truncate_to_a_checkpoint_offset(tmp_path):
    path = tmp_path / "episodes.jsonl"
    log = EpisodeLog(path)
    log.append(_record(0))
    offset = log.tell()
    log.append(_record(1))
    log.truncate(offset)  # resume: what came after the checkpoint is played again
    log.append(_record(2))
    log.close()
    assert [r.episode_id for r in read_episodes(path)] == ["ep0", "ep2"]

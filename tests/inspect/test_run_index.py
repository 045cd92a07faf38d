"""The run index: streaming, live refresh, filters, and the small pure helpers."""

from __future__ import annotations

import dataclasses
import json
import shutil

import pytest

from agentropy.inspect.api import episode_page, episode_payload, replay_payload, sort_summaries
from agentropy.inspect.logs import metric_series, read_metrics, read_replay
from agentropy.inspect.run import (
    EpisodeFilter,
    RunIndex,
    divergence_turn,
    split_completion,
)
from agentropy.records.episodes import EpisodeLog, EpisodeSchemaError
from tests.inspect.runs import HOSTILE_ID, SCRIPT, hostile_records


def test_index_reads_every_record_and_reads_them_back(hostile_run):
    index = RunIndex(hostile_run)
    records = hostile_records()
    assert len(index) == len(records) == 20
    assert [s.episode_id for s in index.summaries] == [r.episode_id for r in records]
    assert index.record(HOSTILE_ID) == records[-1]
    assert index.record("nope") is None
    s = index.summary("it0-g0-m1")
    # Turn entropies 0.2, 0.3, 0.4, 0.5 -> mean 0.35.
    assert s.mean_entropy == pytest.approx(0.35) and s.has_training_data and s.length == 4
    assert index.summary("eval-0").has_training_data is False


@pytest.mark.parametrize(("flt", "expected"), [
    (EpisodeFilter(), 20),
    (EpisodeFilter(won=True), 9),  # 2 of 4 members x 4 groups + eval-0
    (EpisodeFilter(won=False, phase="train"), 8),
    (EpisodeFilter(env="twx"), 20),
    (EpisodeFilter(env="agentropy/TWX-v0"), 20),
    (EpisodeFilter(env="alfworld"), 0),
    (EpisodeFilter(task="COOKING"), 8),
    (EpisodeFilter(task_type="coin"), 12),  # 8 train + 3 eval + 1 play
    (EpisodeFilter(iteration=1), 11),
    (EpisodeFilter(iteration=1, group_id=0), 4),
    (EpisodeFilter(policy_version=0), 9),
    (EpisodeFilter(phase="eval"), 3),
    (EpisodeFilter(agent="random"), 1),
    (EpisodeFilter(split="dev"), 3),
    (EpisodeFilter(query="backend died"), 1),  # the failure text
    (EpisodeFilter(query="IT1-G1"), 4),
    (EpisodeFilter(episode_ids=frozenset({"eval-1", "it0-g0-m0", "x"})), 2),
])
def test_filters(hostile_run, flt, expected):
    assert len(RunIndex(hostile_run).select(flt)) == expected


def test_text_search_reads_the_records(hostile_run):
    index = RunIndex(hostile_run)
    assert [s.episode_id for s in index.select(text="say <script>")] == [HOSTILE_ID]
    assert len(index.select(text="take thing 3")) == 4  # member 3 of each of the 4 groups
    assert len(index.select(EpisodeFilter(iteration=0), text="[bold red]not markup")) == 2


def test_filter_from_url_parameters():
    flt = EpisodeFilter.from_params({"won": "false", "iteration": "3", "env": "", "q": " x "})
    assert flt == EpisodeFilter(won=False, iteration=3, query="x")
    with pytest.raises(ValueError, match="iteration must be an integer"):
        EpisodeFilter.from_params({"iteration": "three"})
    with pytest.raises(ValueError, match="won"):
        EpisodeFilter.from_params({"won": "maybe"})


def test_pages_and_sorting(hostile_run):
    index = RunIndex(hostile_run)
    page = episode_page(index, {"phase": "train", "offset": "5", "limit": "4", "sort": "-line"})
    assert page["total"] == 16 and len(page["items"]) == 4
    # Newest first: it1-g1-m3 .. it1-g1-m0 (0-3), it1-g0-m3 (4), then the page from 5.
    assert [i["episode_id"] for i in page["items"]] == ["it1-g0-m2", "it1-g0-m1", "it1-g0-m0",
                                                        "it0-g1-m3"]
    by_entropy = sort_summaries(index.summaries, "-mean_entropy")
    assert by_entropy[0].mean_entropy == pytest.approx(0.35)
    with pytest.raises(ValueError, match="unknown sort"):
        episode_page(index, {"sort": "random()"})


def test_live_run_is_followed_and_partial_lines_wait(tmp_path, hostile_run):
    records = hostile_records()
    path = tmp_path / "episodes.jsonl"
    with EpisodeLog(path) as log:
        log.append(records[0])
    index = RunIndex(tmp_path)
    assert len(index) == 1
    line = (records[1].to_json() + "\n").encode()
    with open(path, "ab") as f:  # a writer half-way through a record
        f.write(line[:50])
    assert index.refresh() == 0 and len(index) == 1
    with open(path, "ab") as f:
        f.write(line[50:])
    assert index.refresh() == 1 and index.record(records[1].episode_id) == records[1]
    # A resumed run truncates the log: the index starts again.
    with EpisodeLog(path) as log:
        log.truncate(0)
        log.append(records[5])
    index.refresh()
    assert [s.episode_id for s in index.summaries] == [records[5].episode_id]


def test_a_bad_line_is_named(tmp_path):
    records = hostile_records()
    with open(tmp_path / "episodes.jsonl", "w") as f:
        f.write(records[0].to_json() + "\n{not json\n" + records[1].to_json() + "\n")
    with pytest.raises(EpisodeSchemaError, match=r"episodes.jsonl:2: not a JSON record"):
        RunIndex(tmp_path)
    data = json.loads(records[0].to_json())
    data["schema_version"] = 99
    (tmp_path / "episodes.jsonl").write_text(json.dumps(data) + "\n")
    with pytest.raises(EpisodeSchemaError, match=r":1: .*schema_version 99"):
        RunIndex(tmp_path)
    with pytest.raises(FileNotFoundError, match="not a run folder"):
        RunIndex(tmp_path / "missing")


def test_an_empty_run_folder_is_fine(tmp_path):
    index = RunIndex(tmp_path)
    assert len(index) == 0 and index.facets()["groups"] == 0
    assert read_metrics(tmp_path) == [] and read_replay(tmp_path) == []


def test_duplicate_ids_show_the_later_record(tmp_path, caplog):
    a, b = hostile_records()[:2]
    b2 = type(b)(**{**b.__dict__, "episode_id": a.episode_id, "score": 0.5})
    with EpisodeLog(tmp_path / "episodes.jsonl") as log:
        log.append(a)
        log.append(b2)
    index = RunIndex(tmp_path)
    assert len(index) == 1 and index.record(a.episode_id).score == 0.5
    assert "already recorded" in caplog.text


@pytest.mark.parametrize(("completion", "expected"), [
    ("<think>go east?</think><action>go east</action>", ("go east?", "go east")),
    ("<think> a\nb </think>\n<action> take coin </action>", ("a\nb", "take coin")),
    ("take coin", ("", "take coin")),
    ("<action>look</action>", ("", "look")),
    ("<think>never closed", ("never closed", "")),
    ("<think>t</think> bare answer", ("t", "bare answer")),
    ("", ("", "")),
])
def test_split_completion(completion, expected):
    assert split_completion(completion) == expected


def test_divergence_turn():
    records = hostile_records()
    group = [r for r in records if r.iteration == 0 and r.group_id == 0]
    assert divergence_turn(group) == 2  # "look", "go north", then "take thing <member>"
    assert divergence_turn(group[:1]) is None
    assert divergence_turn([group[0], group[0]]) is None
    # Same actions, but one stops earlier: they diverge where it stops.
    short = type(group[0])(**{**group[0].__dict__, "turns": group[0].turns[:1]})
    assert divergence_turn([group[0], short]) == 1


def test_metrics_keep_numbers_and_pick_default_keys(hostile_run):
    rows = read_metrics(hostile_run)
    assert [r["iteration"] for r in rows] == [0, 1]
    assert "note" not in rows[0]  # a string
    assert "actor/kl" in rows[0] and "actor/kl" not in rows[1]  # NaN dropped
    series = metric_series(rows)
    assert series["default_keys"] == ["actor/entropy", "eval/dev/success",
                                      "eval/dev/success_greedy", "train/success"]
    assert "time/rollout_s" not in series["keys"] and "replay/size" in series["keys"]
    assert "time" not in series["keys"]  # the wall-clock stamp MetricsLog adds


def test_replay_rows_are_linked_to_episodes(hostile_run, tmp_path):
    index = RunIndex(hostile_run)
    last = replay_payload(index, None)
    assert last["iteration"] == 1 and [i["iteration"] for i in last["iterations"]] == [0, 1]
    assert [r["known"] for r in last["rows"]] == [True, True, False]
    assert replay_payload(index, 0)["rows"][0]["episode_id"] == "it0-g0-m0"
    assert replay_payload(index, 7)["rows"] == []
    # A malformed row is dropped, a truncated last line skipped.
    run = tmp_path / "r"
    shutil.copytree(hostile_run, run)
    with open(run / "replay.jsonl", "a") as f:
        f.write(json.dumps({"iteration": 2, "rows": [{"turn": 1}, {"episode_id": "a", "turn": 0}]})
                + "\n" + '{"iteration": 3, "ro')
    snaps = read_replay(run)
    assert [s["iteration"] for s in snaps] == [0, 1, 2] and len(snaps[2]["rows"]) == 1


def test_episode_payload_splits_thinking_and_shortens_prompts_on_request():
    record = hostile_records()[0]
    full = episode_payload(record)
    assert full["turns"][0]["thinking"].endswith(SCRIPT) and full["turns"][0]["answer"] == "look"
    assert full["turns"][0]["prompt"] == record.turns[0].prompt and full["task_type"] == "coin"
    short = episode_payload(record, prompt_limit=40)
    prompt = short["turns"][0]["prompt"]
    assert prompt.startswith(record.turns[0].prompt[:20]) and "left out of this export" in prompt
    assert prompt.endswith(record.turns[0].prompt[-20:])


def test_the_index_is_cached_and_the_cache_checked(tmp_path, monkeypatch, index_cache):
    from agentropy.inspect import run as run_module

    monkeypatch.setattr(run_module, "_CACHE_MIN_BYTES", 0)
    monkeypatch.setenv("AGENTROPY_CACHE", str(tmp_path / "cache"))
    records = hostile_records()
    folder = tmp_path / "run"
    write = EpisodeLog(folder / "episodes.jsonl")
    for r in records[:10]:
        write.append(r)
    write.close()
    first = RunIndex(folder)
    assert len(list((tmp_path / "cache" / "index").glob("*.jsonl"))) == 1

    parsed = []
    real = run_module._summarize
    monkeypatch.setattr(run_module, "_summarize", lambda raw, *a: parsed.append(1) or real(raw, *a))
    again = RunIndex(folder)  # from the cache: no line parsed
    assert parsed == [] and again.summaries == first.summaries
    with EpisodeLog(folder / "episodes.jsonl") as log:
        log.append(records[10])
    assert RunIndex(folder).summary(records[10].episode_id) is not None and parsed == [1]
    # The file rewritten with other records of the same size: the cache no longer applies.
    other = [dataclasses.replace(r, episode_id=r.episode_id.replace("it", "IT")) for r in records[:11]]
    with EpisodeLog(folder / "episodes.jsonl") as log:
        log.truncate(0)
        for r in other:
            log.append(r)
    assert [s.episode_id for s in RunIndex(folder).summaries] == [r.episode_id for r in other]
    assert RunIndex(folder, cache=False).summaries == RunIndex(folder).summaries

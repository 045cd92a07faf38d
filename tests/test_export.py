"""agentropy export -> parquet -> sft.dataset: same rows and same SFT losses as the expert episodes."""

from __future__ import annotations

import copy

import pytest
import torch
from agentropy.agents.agent import Agent
from agentropy.agents.backends.scripted import ScriptedBackend
from agentropy.algorithms.rollout import Task, collect
from agentropy.algorithms.sft import sft_train
from agentropy.algorithms.sft_data import load_sft_trajectories
from agentropy.configs.schema import AgentConfig, SFTConfig
from agentropy.envs.pool import EnvSpec, SerialPool

from agentropy.inspect.export import export_run
from agentropy.inspect.run import EpisodeFilter
from agentropy.records.episodes import EpisodeLog

COIN = EnvSpec("agentropy/TWX-v0", {"game": "coin", "max_episode_steps": 30})


@pytest.fixture(scope="module")
def expert_run(tiny_model, tmp_path_factory):
    _, tokenizer = tiny_model
    run = tmp_path_factory.mktemp("expert_run")
    agent = Agent(ScriptedBackend(tokenizer, policy="expert"), tokenizer, AgentConfig(backend="scripted"))
    with SerialPool([COIN] * 2) as pool, EpisodeLog(run / "episodes.jsonl") as log:
        trajectories = collect(pool, agent, [Task(i, {"task": i}) for i in range(3)], 1, log_to=log,
                               phase="sft", progress=False)
    return run, trajectories


def test_export_loads_with_datasets(expert_run, tmp_path):
    datasets = pytest.importorskip("datasets")
    run, trajectories = expert_run
    stats = export_run(run, tmp_path / "out", EpisodeFilter(won=True, phase="sft"))
    assert stats == {"episodes": 3, "sft_rows": sum(t.length for t in trajectories)}
    eps = datasets.load_dataset("parquet", data_files=str(tmp_path / "out/episodes/*.parquet"), split="train")
    sft = datasets.load_dataset("parquet", data_files=str(tmp_path / "out/sft/*.parquet"), split="train")
    assert len(eps) == 3 and len(sft) == stats["sft_rows"]
    by_id = {t.episode_id: t for t in trajectories}
    assert {e["episode_id"]: len(e["turns"]) for e in eps} == {k: t.length for k, t in by_id.items()}
    assert sft[0]["prompt"] == by_id[sft[0]["episode_id"]].turns[0].prompt_text
    with pytest.raises(ValueError, match="no episode matches"):
        export_run(run, tmp_path / "none", EpisodeFilter(phase="train"))


def test_sft_from_export_reproduces_expert_rows_and_losses(expert_run, tiny_model, tmp_path):
    model, tokenizer = tiny_model
    run, trajectories = expert_run
    export_run(run, tmp_path / "out", EpisodeFilter(won=True))
    loaded = load_sft_trajectories(tmp_path / "out", tokenizer)
    by_id = {t.episode_id: t for t in trajectories}
    assert sorted(by_id) == sorted(t.episode_id for t in loaded)
    trajectories = [by_id[t.episode_id] for t in loaded]  # the same episodes in the same order
    for a, b in zip(trajectories, loaded, strict=True):
        assert [t.prompt_ids for t in a.turns] == [t.prompt_ids for t in b.turns]
        assert [t.completion_ids for t in a.turns] == [t.completion_ids for t in b.turns]
    cfg = SFTConfig(steps=4, batch_size=8)
    losses: dict[str, list[float]] = {}
    for name, data in (("expert", trajectories), ("dataset", loaded)):
        torch.manual_seed(0)
        m = copy.deepcopy(model)
        losses[name] = out = []
        sft_train(m, data, cfg, pad_token_id=tokenizer.pad_token_id, seed=0,
                  on_step=lambda _, loss, out=out: out.append(loss))
    assert len(losses["expert"]) == 4
    assert losses["expert"] == pytest.approx(losses["dataset"], rel=1e-6, abs=1e-7)


def test_missing_dataset_is_a_clear_error(tmp_path, tiny_model):
    with pytest.raises(FileNotFoundError, match="no parquet file"):
        load_sft_trajectories(tmp_path, tiny_model[1])


def test_cli_export(expert_run, tmp_path, capsys):
    from agentropy.cli import main

    run, _ = expert_run
    assert main(["export", str(run), str(tmp_path / "o"), "--won", "--phase", "sft"]) == 0
    assert "3 episodes" in capsys.readouterr().out
    assert (tmp_path / "o/sft/sft.parquet").exists()
    assert main(["export", str(run), str(tmp_path / "p"), "--failed"]) == 1

"""agentropy eval: intervals, suites, and a tiny run's model vs the scripted expert on two families."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import pytest
import torch
from agentropy.algorithms.evaluate import bootstrap_ci, load_suite, wilson
from agentropy.configs.schema import ConfigError

from agentropy.cli import main

ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": os.getcwd()}


def test_wilson_known_values():
    lo, hi = wilson(8, 10)  # textbook: 0.490 .. 0.943
    assert lo == pytest.approx(0.4902, abs=1e-3) and hi == pytest.approx(0.9433, abs=1e-3)
    assert wilson(0, 5)[0] == 0.0 and wilson(5, 5)[1] == 1.0
    assert all(math.isnan(v) for v in wilson(0, 0))


def test_bootstrap_brackets_the_mean_and_is_seeded():
    values = [0.0, 1.0, 1.0, 0.5, 0.25, 0.75]
    lo, hi = bootstrap_ci(values)
    assert lo < sum(values) / len(values) < hi
    assert bootstrap_ci(values) == (lo, hi)
    assert bootstrap_ci([2.0, 2.0]) == (2.0, 2.0)


def test_suites_load_and_typos_fail():
    suite, envs = load_suite("alfworld")
    assert [e.splits for e in suite.envs] == [["valid_seen", "valid_unseen"]]
    assert envs[0].id == "agentropy/ALFWorld-v0"
    assert load_suite("all")[0].episodes > 0
    with pytest.raises(ConfigError, match="no such suite"):
        load_suite("nope")
    with pytest.raises(ConfigError):
        load_suite("twx_coin", {"episode": 3})


def _two_families(tmp_path):
    suite = tmp_path / "two.yaml"
    suite.write_text("envs:\n  - env: twx_coin\n    splits: [dev]\n"
                     "  - env: alfworld\n    splits: [valid_seen]\nepisodes: 2\nseed: 1000\n")
    return suite


@pytest.mark.slow
def test_eval_tiny_run_and_expert_then_compare(tmp_path, capsys):
    run = tmp_path / "run"
    train = [sys.executable, "-m", "agentropy.cli", "train", "env.max_turns=4", "sft.episodes=4",
             "sft.steps=1", "sft.batch_size=4", "iterations=0", "eval.episodes=1", "eval.greedy=false",
             "progress=false",
             f"hydra.run.dir={run}"]
    done = subprocess.run(train, env=ENV, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    suite = _two_families(tmp_path)
    for policy, out, extra in ((str(run), tmp_path / "model", ["agent.max_new_tokens=12"]),
                               ("expert", tmp_path / "expert", [])):
        argv = ["eval", f"suite={suite}", f"policy={policy}", f"out={out}", "progress=false", *extra]
        assert main(argv) == 0
        table = json.loads((out / "eval.json").read_text())["rows"]
        overall = {(r["env"], r["split"]) for r in table if r["task_type"] == "all"}
        assert overall == {("agentropy/TWX-v0", "dev"), ("agentropy/ALFWorld-v0", "valid_seen")}
        assert all(r["episodes"] == 2 for r in table if r["task_type"] == "all")
    expert = json.loads((tmp_path / "expert/eval.json").read_text())["rows"]
    assert all(r["success"] == 1.0 and r["invalid_rate"] == 0.0 for r in expert)
    capsys.readouterr()
    assert main(["compare", str(tmp_path / "model"), str(tmp_path / "expert"), "--json"]) == 0
    compared = json.dumps(json.loads(capsys.readouterr().out))
    assert "twx/coin" in compared and "household/" in compared and "\"shared_tasks\": 4" in compared

    # the run's policy as a plain model folder that transformers loads: the checkpoint's weights
    from agentropy.algorithms.checkpoint import latest_checkpoint
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM, AutoTokenizer

    assert main(["export-model", str(run), str(tmp_path / "exported"), "--dtype", "bfloat16"]) == 0
    exported = AutoModelForCausalLM.from_pretrained(tmp_path / "exported")
    assert exported.dtype == torch.bfloat16 and AutoTokenizer.from_pretrained(tmp_path / "exported")
    saved = load_file(latest_checkpoint(run) / "model.safetensors")
    mine = exported.state_dict()
    assert all(torch.equal(mine[k], v.to(torch.bfloat16)) for k, v in saved.items())
    assert main(["export-model", str(run), str(tmp_path / "exported")]) == 2  # not empty
    assert main(["export-model", "/no/such/run", str(tmp_path / "other")]) == 2


def test_eval_cli_errors(capsys):
    assert main(["eval", "--help"]) == 0 and "policy=expert" in capsys.readouterr().out
    assert main(["eval", "suite=twx_coin"]) == 2
    assert main(["eval", "suite=nope", "policy=expert"]) == 2
    assert main(["eval", "suite=twx_coin", "policy=/no/such/run", "out=/tmp/x"]) == 2

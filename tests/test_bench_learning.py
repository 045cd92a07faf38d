"""bench/learning.py's pairing of held-out episodes (the runs themselves are the benchmark)."""

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def learning():
    spec = importlib.util.spec_from_file_location("bench_learning", ROOT / "bench" / "learning.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_paired_difference_pairs_the_same_episode_of_the_same_seed(learning):
    # seed A: episodes 0, 1, 2 in both runs -> differences 1, 0, 0; episode 3 has no partner.
    # seed B: episode 0 -> difference -1. Mean over the 4 pairs: 0.
    a = [{0: 1.0, 1: 1.0, 2: 0.0}, {0: 0.0}]
    b = [{0: 0.0, 1: 1.0, 2: 0.0, 3: 1.0}, {0: 1.0}]
    mean, lo, hi = learning.paired_difference(a, b)
    assert mean == 0.0
    assert -1.0 <= lo <= 0.0 <= hi <= 1.0


def test_a_constant_difference_has_a_point_interval(learning):
    mean, lo, hi = learning.paired_difference([{0: 1.0, 1: 1.0}], [{0: 0.0, 1: 0.0}])
    assert (mean, lo, hi) == (1.0, 1.0, 1.0)
    assert learning._verdict(mean, lo, hi) == "beats it beyond the interval"


def test_every_setting_composes(learning):
    from agentropy.configs.compose import load_config

    for overrides in learning.SETTINGS.values():
        load_config(["experiment=quickstart", *overrides])


def test_versus_must_be_one_of_the_learners(learning, tmp_path, capsys):
    with pytest.raises(SystemExit) as stop:
        learning.main(["--learners", "epo", "--versus", "grpo", "--report", "--out", str(tmp_path)])
    assert stop.value.code == 2 and "--versus grpo: not one of --learners" in capsys.readouterr().err


def test_a_learner_without_a_run_has_no_outcomes(learning, tmp_path):
    assert learning.final_outcomes(tmp_path / "siren_seed0") == {}

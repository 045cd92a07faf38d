"""scripts/gpu_check.sh: its argument handling, and a dry run of the whole check on the CPU with
the tiny model (the GPU run itself needs CUDA and vLLM; nobody here can run it)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _module():
    spec = importlib.util.spec_from_file_location("gpu_check", ROOT / "scripts" / "gpu_check.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_arguments():
    gc = _module()
    args = gc.parse_args(["--dry-run"])
    assert args.dry_run and args.model == gc.DEFAULT_MODEL and args.overrides == []
    args = gc.parse_args(["/models/qwen", "algorithm.lr=2e-6", "--dry-run"])
    assert args.model == "/models/qwen" and args.overrides == ["algorithm.lr=2e-6"]
    args = gc.parse_args(["algorithm.lr=2e-6", "--dry-run"])  # overrides only: default model
    assert args.model == gc.DEFAULT_MODEL and args.overrides == ["algorithm.lr=2e-6"]
    with pytest.raises(SystemExit):
        gc.parse_args(["/models/qwen", "not-an-override", "--dry-run"])
    with pytest.raises(SystemExit):
        gc.parse_args(["--no-such-flag"])
    gpu = gc.overrides_for(gc.parse_args(["Qwen/Qwen2.5-1.5B-Instruct", "--dry-run"]))
    assert "experiment=quickstart" in gpu  # a dry run never asks for CUDA
    args.dry_run = False
    args.model = "Qwen/Qwen2.5-1.5B-Instruct"
    real = gc.overrides_for(args)
    assert real[0] == "experiment=alfworld_gigpo" and "agent.model=Qwen/Qwen2.5-1.5B-Instruct" in real
    assert "device=cuda" in real and real[-1] == "algorithm.lr=2e-6"
    # Both override lists compose into valid configs (typos would fail here).
    from agentropy.configs.compose import load_config

    cfg = load_config(real)
    assert cfg.algorithm.advantage == "gigpo" and cfg.iterations == 1 and cfg.agent.backend == "vllm"
    assert load_config(gc.overrides_for(gc.parse_args(["--dry-run"]))).agent.dtype == "bfloat16"


def test_report_flags_a_failed_update(capsys):
    gc = _module()
    phases = [{"phase": p, "seconds": 1.0, "torch_peak_gib": 1.0, "gpu_used_gib": 2.0}
              for p in ("rollout (train)", "update", "weight sync")]
    base = {"model": "m", "backend": "vllm", "dtype": "bfloat16", "phases": phases, "optimizer_steps": 1.0}
    assert gc.report({**base, "fraction_weights_changed": 0.999}) == []
    failed = gc.report({**base, "fraction_weights_changed": 0.02})
    assert failed and "changed" in failed[0]
    assert "CHECK FAILED" in capsys.readouterr().out
    assert gc.report({**base, "phases": phases[:1], "fraction_weights_changed": 1.0})


@pytest.mark.slow
def test_dry_run_on_the_tiny_model(tmp_path):
    out = tmp_path / "check.json"
    done = subprocess.run([str(ROOT / "scripts" / "gpu_check.sh"), "--dry-run", "--json", str(out)],
                          capture_output=True, text=True, timeout=600, check=False,
                          env={"PYTHON": sys.executable, "PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1"})
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "CHECK PASSED" in done.stdout
    result = json.loads(out.read_text())
    assert result["fraction_weights_changed"] > 0.9 and result["engine_matches_master"] is True
    assert {"rollout (train)", "update", "weight sync"} <= {p["phase"] for p in result["phases"]}

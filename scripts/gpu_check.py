"""One short iteration of the ALFWorld GiGPO recipe on one GPU, measured phase by phase.

Run through ``scripts/gpu_check.sh`` (see there and the README). It composes
``experiment=alfworld_gigpo`` with a Qwen2.5 model (a hub name or a local folder), shrinks the
batch (2 tasks x 4 rollouts, 15 turns, 4 evaluation episodes), runs one RL iteration with the
trainer and prints, per phase (rollout, engine sleep, update, weight sync, evaluation rollout):
seconds, peak memory allocated by torch in this process, and GPU memory in use at the end of the
phase (device-wide: includes vLLM's share); then the fraction of the master weights the update
changed. Checkpoints are not written (they would dominate the time).

It exits 1 with ``CHECK FAILED: ...`` lines when the update changed less than 90% of the
weights, made no optimizer step, or a phase did not run.

``--dry-run`` runs the same code path on the CPU with the local tiny model, the HF backend and
the TextWorldExpress coin game (seconds): what the test suite checks.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import resource
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import torch

DEFAULT_MODEL = "Qwen/Qwen2.5-0.5B-Instruct"
GPU_OVERRIDES = [
    "experiment=alfworld_gigpo", "iterations=1", "tasks_per_iteration=2", "group_size=4",
    "env.max_turns=15", "env.num_workers=4", "eval.episodes=4", "eval.at_start=false", "eval.every=1",
    "device=cuda", "progress=false", "tensorboard=false",
]
DRY_OVERRIDES = [
    "experiment=quickstart", "agent=tiny", "agent.backend=hf", "agent.dtype=bfloat16", "env=twx_coin",
    "iterations=1", "tasks_per_iteration=2", "group_size=2", "env.max_turns=3", "env.num_workers=1",
    "agent.max_new_tokens=24", "eval.episodes=2", "eval.at_start=false", "eval.every=1", "device=cpu",
    "progress=false", "tensorboard=false", "sft.enabled=false", "algorithm.activation_checkpointing=true",
    "algorithm.max_tokens_per_micro_batch=2048", "algorithm.kl.coef=0.01",
]


class Phases:
    """Times phases and records their memory: torch's peak allocation (CUDA; the process's peak
    resident set on CPU) and the GPU memory in use at the phase's end."""

    def __init__(self, cuda: bool) -> None:
        self.cuda = cuda
        self.rows: list[dict[str, float | str]] = []

    @contextlib.contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        if self.cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        start = time.perf_counter()
        try:
            yield
        finally:
            if self.cuda:
                torch.cuda.synchronize()
            row: dict[str, float | str] = {"phase": name, "seconds": time.perf_counter() - start}
            if self.cuda:
                free, total = torch.cuda.mem_get_info()
                row["torch_peak_gib"] = torch.cuda.max_memory_allocated() / 2**30
                row["gpu_used_gib"] = (total - free) / 2**30
            else:
                row["process_peak_rss_gib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
            self.rows.append(row)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="scripts/gpu_check.sh",
        description="One short ALFWorld GiGPO iteration on one GPU: memory and seconds per phase, "
                    "weight-sync time, fraction of weights changed.")
    parser.add_argument("model", nargs="?", default=DEFAULT_MODEL,
                        help=f"hub name or local folder of a Qwen2.5 model (default {DEFAULT_MODEL})")
    parser.add_argument("overrides", nargs="*", help="extra config overrides, key=value")
    parser.add_argument("--dry-run", action="store_true",
                        help="CPU, local tiny model, HF backend, TWX coin game: checks the script itself")
    parser.add_argument("--run-dir", help="where the run goes (a temporary folder by default)")
    parser.add_argument("--json", help="also write the measurements to this file")
    args = parser.parse_args(argv)
    if args.model and "=" in args.model:  # only overrides given: keep the default model
        args.overrides.insert(0, args.model)
        args.model = DEFAULT_MODEL
    bad = [o for o in args.overrides if "=" not in o or o.startswith("=")]
    if bad:
        parser.error(f"overrides must be key=value, got {bad}")
    if not args.dry_run and not torch.cuda.is_available():
        parser.error("no CUDA device here; run on a GPU machine, or pass --dry-run")
    return args


def overrides_for(args: argparse.Namespace) -> list[str]:
    if args.dry_run:
        return [*DRY_OVERRIDES, *args.overrides]
    return [*GPU_OVERRIDES, f"agent.model={args.model}", *args.overrides]


def run(args: argparse.Namespace) -> dict:
    from agentropy.algorithms import train as train_module
    from agentropy.algorithms.learner import Learner
    from agentropy.configs.compose import load_config

    cfg = load_config(overrides_for(args))
    cuda = cfg.device == "cuda"
    phases = Phases(cuda)
    result: dict = {"model": cfg.agent.model, "backend": cfg.agent.backend, "dtype": cfg.agent.dtype}

    collect = train_module.collect

    def timed_collect(*a, **kw):
        with phases(f"rollout ({kw.get('phase', '?')})"):
            return collect(*a, **kw)

    update = Learner.update

    def timed_update(learner, batch, **kwargs):
        before = [p.detach().to("cpu", copy=True) for p in learner.model.parameters() if p.requires_grad]
        with phases("update"):
            out = update(learner, batch, **kwargs)
        metrics = out.metrics
        changed = total = 0
        after = [p for p in learner.model.parameters() if p.requires_grad]
        for old, new in zip(before, after, strict=True):
            changed += int((new.detach().cpu() != old).sum())
            total += old.numel()
        result["fraction_weights_changed"] = changed / total
        result["optimizer_steps"] = metrics.get("actor/optimizer_steps", 0.0)
        result["rows"] = metrics.get("batch/rows", 0.0)
        result["tokens"] = metrics.get("batch/tokens", 0.0)
        return out

    train_module.collect = timed_collect
    Learner.update = timed_update
    try:
        with tempfile.TemporaryDirectory() as tmp:
            trainer = train_module.Trainer(cfg, args.run_dir or Path(tmp) / "run")
            trainer._checkpoint = lambda iteration: None  # checkpoints would dominate the time
            sync = trainer._sync_weights

            def timed_sync(version: int) -> dict[str, float]:
                with phases("weight sync"):
                    metrics = sync(version)
                if cfg.agent.backend == "hf":  # the engine holds exactly the master in its dtype
                    engine = trainer.agent.backend.model
                    pushed = dict(engine.named_parameters())
                    result["engine_matches_master"] = all(
                        torch.equal(pushed[n], p.detach().to(pushed[n].dtype))
                        for n, p in trainer.model.named_parameters())
                return metrics

            trainer._sync_weights = timed_sync
            sleep = getattr(trainer.agent.backend, "sleep", None)
            if sleep is not None:
                def timed_sleep() -> None:
                    with phases("engine sleep"):
                        sleep()
                trainer.agent.backend.sleep = timed_sleep
            try:
                trainer.run()
            finally:
                trainer.close()
    finally:
        train_module.collect = collect
        Learner.update = update
    result["phases"] = phases.rows
    return result


def report(result: dict) -> list[str]:
    """Print the table; return the failed checks."""
    print(f"\nmodel {result['model']} ({result['backend']}, {result['dtype']})")
    keys = [k for k in ("torch_peak_gib", "gpu_used_gib", "process_peak_rss_gib") if k in result["phases"][0]]
    print(f"{'phase':24s} {'seconds':>8s} " + " ".join(f"{k:>20s}" for k in keys))
    for row in result["phases"]:
        print(f"{row['phase']:24s} {row['seconds']:8.2f} " + " ".join(f"{row[k]:20.2f}" for k in keys))
    syncs = [r["seconds"] for r in result["phases"] if r["phase"] == "weight sync"]
    print(f"weight sync: {', '.join(f'{s:.2f} s' for s in syncs) or 'none'}")
    print(f"fraction of weights changed by the update: {result.get('fraction_weights_changed', 0.0):.4f} "
          f"({result.get('rows', 0):.0f} rows, {result.get('tokens', 0):.0f} completion tokens)")
    if "engine_matches_master" in result:
        print(f"engine weights == master cast to {result['dtype']}: {result['engine_matches_master']}")
    failed = []
    names = {r["phase"] for r in result["phases"]}
    for phase in ("rollout (train)", "update", "weight sync"):
        if phase not in names:
            failed.append(f"phase {phase!r} did not run")
    if result.get("optimizer_steps", 0) < 1:
        failed.append("the update made no optimizer step")
    if result.get("fraction_weights_changed", 0.0) < 0.9:
        failed.append(f"the update changed {result.get('fraction_weights_changed', 0.0):.2%} of the weights")
    if result.get("engine_matches_master") is False:
        failed.append("the engine's weights are not the master's")
    for line in failed:
        print(f"CHECK FAILED: {line}")
    if not failed:
        print("CHECK PASSED")
    return failed


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    result = run(args)
    failed = report(result)
    if args.json:
        Path(args.json).write_text(json.dumps({**result, "failed": failed}, indent=2) + "\n")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

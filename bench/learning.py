"""Learning benchmark: held-out success after SFT and after the same RL budget, per learner.

One CPU-sized setup (the quickstart's: TextWorldExpress coin, the local tiny model, the settings
of ``configs/experiment/quickstart.yaml``). For each seed, one SFT warm start is trained and
evaluated (``iterations=0``); every learner then starts from that same SFT model and gets the
same RL budget (iterations x tasks x group size), and is evaluated on the same fixed held-out
tasks, sampled and greedy. Only ``algorithm=`` differs between the runs of a seed, so each
learner keeps its own recipe (aggregation, estimator, entropy terms, replay) over the
quickstart's shared RL settings (learning rate, KL, batch sizes, invalid-action penalty).

Every run is an ordinary ``agentropy train`` run folder under ``--out``; a run whose
``summary.json`` exists is not repeated, so an interrupted benchmark continues where it stopped
and ``--report`` redraws the table and the curves from what is there.

Outputs: a markdown table (mean +- sample std over seeds of held-out success at the SFT start, at
the end, and of the gain) and ``learning_entropy.png`` (the sampling policy's mean token entropy
per iteration, mean over seeds, min-max band) plus ``learning_success.png`` (train success).

    python bench/learning.py                      # 5 learners x 3 seeds, about 1.5-2 h on 2 cores
    python bench/learning.py --report             # table and curves from the runs on disk
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from agentropy.algorithms.metrics import read_metrics  # noqa: E402

LEARNERS = ("grpo", "gigpo", "epo", "empg", "spear")
SPLIT = "dev"


def train(run: Path, overrides: list[str], log_path: Path) -> None:
    """One ``agentropy train`` subprocess; raises with the log's tail when it fails."""
    cmd = [sys.executable, "-m", "agentropy.cli", "train", *overrides, "progress=false",
           f"hydra.run.dir={run}"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with open(log_path, "w") as log:
        code = subprocess.call(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    if code != 0:
        tail = log_path.read_text()[-3000:]
        raise RuntimeError(f"{' '.join(cmd)} exited {code}:\n{tail}")


def export_sft_model(run: Path, out: Path) -> Path:
    """The SFT run's weights (checkpoint 0) as a model folder ``agent.model=`` can load."""
    import torch
    from agentropy.agents.tiny import load_pretrained
    from agentropy.algorithms.checkpoint import latest_checkpoint, load_checkpoint

    if (out / "config.json").exists():
        return out
    ckpt = latest_checkpoint(run)
    if ckpt is None:
        raise RuntimeError(f"{run}: no checkpoint to export")
    model, tokenizer = load_pretrained(run / "model")
    model.load_state_dict(load_checkpoint(ckpt, map_location=torch.device("cpu")).model_state)
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    tmp.rename(out)
    return out


def run_all(args: argparse.Namespace) -> float:
    """Runs what is missing; returns the wall time spent."""
    start = time.perf_counter()
    base = ["experiment=quickstart", *args.overrides]
    for seed in args.seeds:
        sft_run = args.out / f"sft_seed{seed}"
        if not (sft_run / "summary.json").exists():
            print(f"[learning] SFT, seed {seed}", flush=True)
            train(sft_run, [*base, f"seed={seed}", "iterations=0"], args.out / f"sft_seed{seed}.log")
        model = export_sft_model(sft_run, args.out / f"sft_model_seed{seed}")
        for learner in args.learners:
            run = args.out / f"{learner}_seed{seed}"
            if (run / "summary.json").exists():
                continue
            print(f"[learning] {learner}, seed {seed}", flush=True)
            t0 = time.perf_counter()
            train(run, [*base, f"algorithm={learner}", f"seed={seed}", f"agent.model={model}",
                        "sft.enabled=false", f"iterations={args.iterations}", "eval.every=0",
                        "eval.at_start=false"],
                  args.out / f"{learner}_seed{seed}.log")
            print(f"[learning]   {time.perf_counter() - t0:.0f} s", flush=True)
    return time.perf_counter() - start


def _summary(run: Path) -> dict[str, Any] | None:
    path = run / "summary.json"
    return json.loads(path.read_text())["splits"][SPLIT] if path.exists() else None


def _mean_sd(values: list[float]) -> str:
    if not values:
        return "-"
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.fmean(values):.3f} +- {sd:.3f}"


def report(args: argparse.Namespace, wall_s: float | None) -> str:
    rows, verdicts = [], []
    grpo_end: dict[str, float] = {}
    for learner in args.learners:
        got = {}
        for s in args.seeds:  # the start: the seed's SFT run; the end: this learner's run
            start, end = _summary(args.out / f"sft_seed{s}"), _summary(args.out / f"{learner}_seed{s}")
            if start is not None and end is not None:
                got[s] = {"start": start["start"], "end": end["end"]}
        if not got:
            continue
        cells = [learner, str(len(got))]
        for mode in ("success", "success_greedy"):
            start = [v["start"][mode] for v in got.values()]
            end = [v["end"][mode] for v in got.values()]
            gain = [e - s for s, e in zip(start, end, strict=True)]
            cells += [_mean_sd(start), _mean_sd(end), _mean_sd(gain)]
            if mode == "success":
                spread = statistics.stdev(gain) if len(gain) > 1 else math.inf
                mean_gain = statistics.fmean(gain)
                if learner == "grpo":
                    grpo_end = {"sampled": statistics.fmean(end)}
                verdicts.append((learner, mean_gain, spread, statistics.fmean(end)))
        inv_s = [v["start"]["invalid_rate"] for v in got.values()]
        inv_e = [v["end"]["invalid_rate"] for v in got.values()]
        cells.append(f"{statistics.fmean(inv_s):.3f} -> {statistics.fmean(inv_e):.3f}")
        rows.append(cells)

    head = ["learner", "seeds", "sampled: SFT", "sampled: after RL", "sampled: gain",
            "greedy: SFT", "greedy: after RL", "greedy: gain", "invalid/turn (sampled)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    lines.append("")
    for learner, gain, spread, end in verdicts:
        beats_sft = "beats" if gain > spread else "does not beat"
        versus = ""
        if learner != "grpo" and grpo_end:
            versus = f"; end {end:.3f} vs GRPO {grpo_end['sampled']:.3f}"
        lines.append(f"- {learner}: mean sampled gain {gain:+.3f}, seed spread (sd) {spread:.3f}: "
                     f"{beats_sft} the SFT start by more than the spread{versus}")
    if wall_s is not None:
        lines.append(f"\nWall time of this invocation: {wall_s / 60:.1f} min.")
    plot(args)
    return "\n".join(lines)


def plot(args: argparse.Namespace) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    for key, stem, label in (("train/entropy", "learning_entropy", "sampling entropy (nats/token)"),
                             ("train/success", "learning_success", "train success")):
        fig, ax = plt.subplots(figsize=(7, 4), dpi=110)
        for learner in args.learners:
            curves = []
            for seed in args.seeds:
                path = args.out / f"{learner}_seed{seed}" / "metrics.jsonl"
                if path.exists():
                    curves.append({r["iteration"]: r[key] for r in read_metrics(path)
                                   if isinstance(r.get(key), int | float)})
            if not curves:
                continue
            its = sorted(set.intersection(*(set(c) for c in curves)))
            if not its:
                continue
            values = [[c[i] for c in curves] for i in its]
            ax.plot(its, [statistics.fmean(v) for v in values], marker="o", markersize=3, label=learner)
            ax.fill_between(its, [min(v) for v in values], [max(v) for v in values], alpha=0.15)
        ax.set_xlabel("RL iteration")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(args.results / f"{stem}.png")
        plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--learners", nargs="+", default=list(LEARNERS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--iterations", type=int, default=10, help="RL iterations per run")
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "bench-learning")
    parser.add_argument("--results", type=Path, default=ROOT / "bench" / "results")
    parser.add_argument("--report", action="store_true", help="only redraw from the runs on disk")
    parser.add_argument("overrides", nargs="*", help="extra key=value overrides for every run")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    args.results.mkdir(parents=True, exist_ok=True)
    wall = None if args.report else run_all(args)
    text = report(args, wall)
    cmd = "python bench/learning.py " + " ".join(sys.argv[1:] if argv is None else argv)
    header = (f"# Learning benchmark (bench/learning.py)\n\nCommand: `{cmd.strip()}`\n"
              f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}.\n"
              f"Setup: experiment=quickstart {' '.join(args.overrides)}; {args.iterations} RL iterations "
              f"per run; held-out split `{SPLIT}`, fixed tasks.\n\n")
    (args.results / "learning.md").write_text(header + text + "\n")
    print(header + text)


if __name__ == "__main__":
    main()

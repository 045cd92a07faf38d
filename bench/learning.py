"""Learning benchmark: does RL beat more supervised training on the same demonstrations?

One CPU-sized setup at a time (``--setting``): the quickstart's (TextWorldExpress coin, the local
tiny model, ``configs/experiment/quickstart.yaml``) or a variant of it. For each seed:

1. **SFT start**: one warm start on the expert's demonstrations (``iterations=0``), evaluated.
2. **SFT+RL**: every learner starts from that SFT model with the same RL budget (iterations x
   tasks x group size); only ``algorithm=`` differs between a seed's RL runs.
3. **Matched SFT**: supervised training on the same demonstrations (same seed, same expert
   episodes) continued from the SFT model for as many optimizer steps as fit in the mean wall time
   of the seed's RL runs (rollouts and updates), at the SFT start's measured steps per second.
   This is the baseline an RL gain has to beat: RL that only adds compute is not RL that pays.

All three are evaluated on the same fixed held-out tasks (episode ``i`` is task ``i`` with seed
``eval.seed + i``), sampled and greedy, so each held-out episode of an RL run has a partner in the
matched baseline's evaluation of the same seed. The table gives mean +- sample std over seeds, and
for each learner the paired difference to the matched baseline (and to the SFT start) with a 95%
percentile bootstrap interval over the pooled (seed, episode) pairs.

Every run is an ordinary ``agentropy train`` run folder under ``--out``; a run whose
``summary.json`` exists is not repeated, so an interrupted benchmark continues where it stopped
and ``--report`` redraws the table and the curves from what is there.

Outputs (``--results``, default ``bench/results/``), named ``learning_`` + the setting (``--stem``
changes it): the markdown table with per-learner diagnostics (share of GRPO groups with any reward
variance, invalid turns split into format failures and env refusals, length of won episodes), and
the ``_entropy.png`` (sampling entropy per iteration, mean over seeds, min-max band) and
``_success.png`` (train success) curves. ``bench/results/learning.md`` is the written summary of
every setting.

    python bench/learning.py                                   # quickstart setting, 5 learners x 3 seeds
    python bench/learning.py --setting scarce --learners grpo epo
    python bench/learning.py --report                          # table and curves from the runs on disk
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

from agentropy.algorithms.evaluate import bootstrap_ci  # noqa: E402
from agentropy.algorithms.metrics import read_metrics  # noqa: E402

LEARNERS = ("grpo", "gigpo", "epo", "empg", "spear")
SPLIT = "dev"

#: ``--setting`` -> overrides on top of ``experiment=quickstart``, chosen before any run.
SETTINGS: dict[str, tuple[str, ...]] = {
    "coin": (),
    # (a) scarce demonstrations: 16 expert episodes (the expert wins them all on coin).
    "scarce": ("sft.episodes=16",),
    # (b) a suboptimal demonstrator scored within a tight turn limit: the expert takes a random
    # admissible command at 40% of its turns (its won episodes, detours included, are the SFT
    # data) and an episode has 6 turns (the expert alone wins 77% of training games within 6, 100%
    # within 8; with the detours 55%; measured on the train split only).
    "suboptimal": ("sft.detour=0.4", "env.max_turns=6"),
}


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


def _rl_wall_s(run: Path) -> float:
    """Seconds the run spent in RL rollouts and updates (evaluations excluded)."""
    rows = read_metrics(run / "metrics.jsonl")
    return sum(r.get("time/rollout_s", 0.0) + r.get("time/update_s", 0.0) for r in rows)


def _sft_steps_per_s(run: Path, steps: int) -> float:
    """The SFT run's optimizer steps per second (its ``time/sft_s`` includes collecting the
    demonstrations, so this slightly favours RL in the matching)."""
    rows = [r for r in read_metrics(run / "metrics.jsonl") if "time/sft_s" in r]
    if not rows or not rows[0]["time/sft_s"]:
        raise RuntimeError(f"{run}: no time/sft_s in metrics.jsonl")
    return steps / rows[0]["time/sft_s"]


def run_all(args: argparse.Namespace) -> float:
    """Runs what is missing; returns the wall time spent."""
    start = time.perf_counter()
    base = ["experiment=quickstart", *SETTINGS[args.setting], *args.overrides]
    for seed in args.seeds:
        sft_run = args.out / f"sft_seed{seed}"
        if not (sft_run / "summary.json").exists():
            print(f"[learning] SFT, seed {seed} (log: {args.out / f'sft_seed{seed}.log'})", flush=True)
            train(sft_run, [*base, f"seed={seed}", "iterations=0"], args.out / f"sft_seed{seed}.log")
        model = export_sft_model(sft_run, args.out / f"sft_model_seed{seed}")
        for learner in args.learners:
            run = args.out / f"{learner}_seed{seed}"
            if (run / "summary.json").exists():
                continue
            print(f"[learning] {learner}, seed {seed} (log: {args.out / f'{learner}_seed{seed}.log'})",
                  flush=True)
            t0 = time.perf_counter()
            train(run, [*base, f"algorithm={learner}", f"seed={seed}", f"agent.model={model}",
                        "sft.enabled=false", f"iterations={args.iterations}", "eval.every=0",
                        "eval.at_start=false"],
                  args.out / f"{learner}_seed{seed}.log")
            print(f"[learning]   {time.perf_counter() - t0:.0f} s", flush=True)
        matched = args.out / f"matched_seed{seed}"
        if args.no_matched or (matched / "summary.json").exists():
            continue
        walls = [_rl_wall_s(args.out / f"{learner}_seed{seed}") for learner in args.learners]
        sft_steps = int(_config(sft_run)["sft"]["steps"])
        steps = max(1, round(statistics.fmean(walls) * _sft_steps_per_s(sft_run, sft_steps)))
        print(f"[learning] matched SFT, seed {seed}: {steps} more steps "
              f"(RL wall {statistics.fmean(walls):.0f} s)", flush=True)
        train(matched, [*base, f"seed={seed}", f"agent.model={model}", "iterations=0",
                        f"sft.steps={steps}"],
              args.out / f"matched_seed{seed}.log")
    return time.perf_counter() - start


def _config(run: Path) -> dict[str, Any]:
    from omegaconf import OmegaConf

    return OmegaConf.to_container(OmegaConf.load(run / ".hydra" / "config.yaml"))  # type: ignore[return-value]


def _summary(run: Path) -> dict[str, Any] | None:
    path = run / "summary.json"
    return json.loads(path.read_text())["splits"][SPLIT] if path.exists() else None


def final_outcomes(run: Path) -> dict[str, dict[int, float]]:
    """Won (1.0/0.0) per held-out episode seed of the run's last evaluation: ``{"sampled": {seed:
    won}, "greedy": {...}}``. The trainer evaluates sampled, then greedy, each mode's episodes
    written before the next mode starts, so the first half of the last evaluation's records (in
    file order) are the sampled ones."""
    from agentropy.records.episodes import iter_episodes

    if not (run / "episodes.jsonl").exists():
        return {}
    evals = [r for r in iter_episodes(run / "episodes.jsonl") if r.phase == "eval" and r.split == SPLIT]
    if not evals:
        return {}
    last = max(r.iteration or 0 for r in evals)
    evals = [r for r in evals if (r.iteration or 0) == last]
    cfg = _config(run)
    n = int(cfg["eval"]["episodes"])
    modes = ["sampled", "greedy"] if cfg["eval"].get("greedy", True) else ["sampled"]
    if len(evals) != n * len(modes):
        raise RuntimeError(f"{run}: {len(evals)} final eval episodes, expected {n} x {len(modes)}")
    return {mode: {r.seed: float(r.won) for r in evals[i * n:(i + 1) * n]} for i, mode in enumerate(modes)}


def paired_difference(a: list[dict[int, float]], b: list[dict[int, float]]) -> tuple[float, float, float]:
    """Mean of a - b over the (seed, episode) pairs both have, with its 95% bootstrap interval.

    Args:
        a, b: per training seed, won per held-out episode seed (same length, same order).
    """
    diffs = [x[k] - y[k] for x, y in zip(a, b, strict=True) for k in sorted(x.keys() & y.keys())]
    lo, hi = bootstrap_ci(diffs)
    return (statistics.fmean(diffs) if diffs else math.nan), lo, hi


def _mean_sd(values: list[float]) -> str:
    if not values:
        return "-"
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.fmean(values):.3f} +- {sd:.3f}"


def _diagnostics(runs: list[Path]) -> str:
    """Means over the runs' iterations of the signal and validity diagnostics."""
    keys = (("batch/signal_groups", "signal groups"), ("train/invalid_format_rate", "format-invalid/turn"),
            ("train/invalid_env_rate", "env-invalid/turn"), ("train/won_length", "won length"),
            ("actor/entropy", "entropy"))
    rows = [r for run in runs if (run / "metrics.jsonl").exists()
            for r in read_metrics(run / "metrics.jsonl")]
    parts = []
    for key, label in keys:
        values = [r[key] for r in rows if isinstance(r.get(key), int | float) and math.isfinite(r[key])]
        if values:
            parts.append(f"{label} {statistics.fmean(values):.3f}")
    return ", ".join(parts)


def _verdict(mean: float, lo: float, hi: float) -> str:
    if lo > 0:
        return "beats it beyond the interval"
    if hi < 0:
        return "is worse beyond the interval"
    return "no difference beyond the interval"


def report(args: argparse.Namespace, wall_s: float | None) -> str:
    seeds = [s for s in args.seeds if _summary(args.out / f"sft_seed{s}") is not None]
    outcomes = {name: [final_outcomes(args.out / f"{name}_seed{s}") for s in seeds]
                for name in ("sft", "matched", *args.learners)}
    refs = [("sampled", "matched"), ("greedy", "matched"), ("sampled", "sft")]
    if args.versus:
        refs += [("sampled", args.versus), ("greedy", args.versus)]
    names = {"sft": "SFT start", "matched": "matched SFT"}
    head = ["policy", "seeds", "sampled", "greedy", "invalid/turn (sampled)",
            *(f"{mode}: vs {names.get(ref, ref)}" for mode, ref in refs)]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    notes = []
    for name in ("sft", "matched", *args.learners):
        label = names.get(name, f"SFT + {name}")
        ends = [_summary(args.out / f"{name}_seed{s}") for s in seeds]
        have = [i for i, e in enumerate(ends) if e is not None]
        if not have:
            continue
        key = "start" if name in ("sft", "matched") else "end"
        cells = [label, str(len(have))]
        for mode in ("success", "success_greedy", "invalid_rate"):
            cells.append(_mean_sd([ends[i][key][mode] for i in have]))
        for mode, ref in refs:
            pairs = [i for i in have if outcomes[name][i] and outcomes[ref][i]]
            if name in (ref, "sft") or (ref == args.versus and name == "matched") or not pairs:
                cells.append("-")
                continue
            mean, lo, hi = paired_difference([outcomes[name][i][mode] for i in pairs],
                                             [outcomes[ref][i][mode] for i in pairs])
            cells.append(f"{mean:+.3f} [{lo:+.3f}, {hi:+.3f}]")
            if ref in ("matched", args.versus):
                notes.append(f"- {label}, {mode}: {mean:+.3f} against {names.get(ref, ref)}, 95% interval "
                             f"[{lo:+.3f}, {hi:+.3f}] over the paired episodes of {len(pairs)} seed(s): "
                             f"{_verdict(mean, lo, hi)}")
        lines.append("| " + " | ".join(cells) + " |")
        if name not in ("sft", "matched"):
            diag = _diagnostics([args.out / f"{name}_seed{s}" for s in seeds])
            if diag:
                notes.append(f"- {label}, diagnostics (mean over iterations and seeds): {diag}")
    lines += ["", *notes]
    if wall_s is not None:
        lines.append(f"\nWall time of this invocation: {wall_s / 60:.1f} min.")
    plot(args)
    return "\n".join(lines)


def plot(args: argparse.Namespace) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    for key, name, label in (("train/entropy", "entropy", "sampling entropy (nats/token)"),
                             ("train/success", "success", "train success")):
        stem = f"{args.stem}_{name}"
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
    parser.add_argument("--setting", choices=sorted(SETTINGS), default="coin")
    parser.add_argument("--iterations", type=int, default=10, help="RL iterations per run")
    parser.add_argument("--no-matched", action="store_true", help="skip the matched SFT baseline")
    parser.add_argument("--out", type=Path, default=None,
                        help="runs folder (default runs/bench-learning[-SETTING])")
    parser.add_argument("--results", type=Path, default=ROOT / "bench" / "results")
    parser.add_argument("--report", action="store_true", help="only redraw from the runs on disk")
    parser.add_argument("--versus", default=None,
                        help="also pair every learner with this one (e.g. grpo, for a methods comparison)")
    parser.add_argument("--stem", default=None,
                        help="results file name (default learning_ + the setting)")
    parser.add_argument("overrides", nargs="*", help="extra key=value overrides for every run")
    args = parser.parse_args(argv)
    if args.versus and args.versus not in args.learners:
        parser.error(f"--versus {args.versus}: not one of --learners")
    suffix = "" if args.setting == "coin" else f"_{args.setting}"
    args.out = args.out or ROOT / "runs" / f"bench-learning{suffix.replace('_', '-')}"
    args.stem = args.stem or f"learning_{args.setting}"
    args.out.mkdir(parents=True, exist_ok=True)
    args.results.mkdir(parents=True, exist_ok=True)
    wall = None if args.report else run_all(args)
    text = report(args, wall)
    cmd = "python bench/learning.py " + " ".join(sys.argv[1:] if argv is None else argv)
    header = (f"# Learning benchmark (bench/learning.py)\n\nCommand: `{cmd.strip()}`\n"
              f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}.\n"
              f"Setup: experiment=quickstart {' '.join([*SETTINGS[args.setting], *args.overrides])}; "
              f"{args.iterations} RL iterations "
              f"per run; held-out split `{SPLIT}`, fixed tasks.\n\n")
    (args.results / f"{args.stem}.md").write_text(header + text + "\n")
    print(header + text)


if __name__ == "__main__":
    main()

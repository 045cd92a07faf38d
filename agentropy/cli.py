"""The ``agentropy`` command line.

Each subcommand is a small function that parses its arguments and calls library code; the
heavy imports happen inside the commands, so ``agentropy --help`` is instant.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

__all__ = ["main"]

log = logging.getLogger("agentropy")

#: The phases episodes are recorded with (the trainer's ``sft``, ``train`` and ``eval``; ``play``).
PHASES = ("sft", "train", "eval", "play")


def _setup_logging(verbose: bool = False) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    # py4j (ScienceWorld, TextWorldExpress) logs shutdown tracebacks at INFO.
    logging.getLogger("py4j").setLevel(logging.WARNING)
    # bm25s (the shop's search engine) sets its own logger to DEBUG.
    logging.getLogger("bm25s").setLevel(logging.WARNING)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
    except ImportError:  # pragma: no cover
        pass


def _console(**kwargs):
    """A rich console; when stdout is not a terminal (a log file, a pipe) it is wide enough for
    any table, so column headers are never cut to fit rich's 80-column default."""
    from rich.console import Console

    if not sys.stdout.isatty() and "COLUMNS" not in os.environ:
        kwargs.setdefault("width", 240)
    return Console(**kwargs)


def _summary_table(title: str, rows: dict[str, dict[str, float]]) -> None:
    from rich.table import Table

    table = Table(title=title)
    for column in ("", "episodes", "success", "score", "length", "invalid/turn"):
        table.add_column(column, justify="right" if column else "left")
    for name, s in rows.items():
        table.add_row(
            name,
            str(int(s["episodes"])),
            f"{s['success']:.3f}",
            f"{s['score']:.3f}",
            f"{s['length']:.1f}",
            f"{s['invalid_rate']:.3f}",
        )
    _console().print(table)


# --------------------------------------------------------------------------- commands
def cmd_make_model(args: argparse.Namespace) -> int:
    from agentropy.agents.tiny import make_model
    from agentropy.configs.schema import TinyModelConfig

    config = TinyModelConfig(
        vocab_size=args.vocab_size,
        hidden_size=args.hidden_size,
        num_layers=args.num_layers,
        intermediate_size=args.intermediate_size,
        seed=args.seed,
    )
    out = make_model(args.out, config, corpus=args.corpus)
    print(out)
    return 0


def cmd_make_corpus(args: argparse.Namespace) -> int:
    from agentropy.agents.corpus import build_corpus

    n = build_corpus(args.out, seed=args.seed)
    print(f"{args.out}: {n} texts")
    return 0


def cmd_play(args: argparse.Namespace) -> int:
    from agentropy.play import play, play_model, summarize

    kwargs = json.loads(args.kwargs) if args.kwargs else {}
    if args.split:
        kwargs["split"] = args.split
    if args.agent == "model":
        from agentropy.configs.schema import AgentConfig, ConfigError

        if not args.model:
            print("agentropy play: --agent model needs --model PATH", file=sys.stderr)
            return 2
        # Only what was given on the command line; AgentConfig holds the defaults.
        given = {
            key: getattr(args, key)
            for key in ("backend", "dtype", "temperature", "max_new_tokens", "history_length", "prompt_mode")
            if getattr(args, key) is not None
        }
        try:
            if args.base_url:
                from agentropy.configs.schema import OpenAIConfig

                given["openai"] = OpenAIConfig(base_url=args.base_url)
            config = AgentConfig(model=args.model, **given)
        except ConfigError as exc:
            print(f"agentropy play: {exc}", file=sys.stderr)
            return 2
        records = play_model(
            args.env,
            model=args.model,
            agent_config=config,
            episodes=args.episodes,
            out_dir=args.out,
            env_kwargs=kwargs,
            seed=args.seed,
            max_turns=args.max_turns,
        )
        name = f"model:{config.backend}"
    else:
        records = play(
            args.env,
            agent=args.agent,
            episodes=args.episodes,
            out_dir=args.out,
            env_kwargs=kwargs,
            seed=args.seed,
            max_turns=args.max_turns,
        )
        name = args.agent
    _summary_table(f"{args.env} {kwargs or ''}", {name: summarize(records)})
    if args.out:
        print(f"episodes recorded in {os.path.join(args.out, 'episodes.jsonl')}")
    return 0


def cmd_shop(args: argparse.Namespace) -> int:
    """Serve the web shop on 127.0.0.1 for shopping by hand, until interrupted."""
    import time

    from agentropy.envs.webshop.web import ShopServer

    kwargs = {"num_products": args.num_products, "catalog_seed": args.catalog_seed}
    server = ShopServer(kwargs, port=args.port)
    try:
        url = server.new_session_url(split=args.split, goal=args.goal, seed=args.seed)
        server.start()
        print(url, flush=True)
        print(f"start page: {server.url}/ (Ctrl-C stops the server)", flush=True)
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        return 0
    except ValueError as exc:
        print(f"agentropy shop: {exc}", file=sys.stderr)
        return 2
    finally:
        server.close()


def _train_summary_table(summary: dict) -> None:
    """Held-out success after the warm start and after RL, per split, sampled and greedy."""
    from rich.table import Table

    def fmt(value: object) -> str:
        return "-" if value is None else f"{float(value):.3f}"

    table = Table(title=f"held-out results ({summary['eval_episodes']} episodes per split and mode)")
    for column in ("split", "policy", "success (sampled)", "success (greedy)",
                   "invalid/turn (sampled)", "invalid/turn (greedy)"):
        left = column in ("split", "policy")
        table.add_column(column, justify="left" if left else "right", no_wrap=left)
    for split, entry in summary["splits"].items():
        for label, name in (("start", "after SFT"), ("end", "after RL")):
            r = entry[label]
            if r["iteration"] is None:  # not evaluated (eval.at_start=false, or iterations=0)
                continue
            table.add_row(split, f"{name} (iter {r['iteration']})", fmt(r["success"]),
                          fmt(r["success_greedy"]), fmt(r["invalid_rate"]), fmt(r["invalid_rate_greedy"]))
    _console().print(table)
    print(f"run folder: {summary['run_dir']}")


#: cluster keys a resumed run may change: a checkpoint has one format for any number of learner
#: ranks (agentropy.algorithms.ray_learner)
_RESUME_MAY_CHANGE = ("learner_ranks", "learner_cpus_per_rank", "learner_gpus_per_rank", "learner_placement")


def _check_resume(overrides: Sequence[str]) -> list[str]:
    """For ``resume=RUN``: run in that folder, and refuse a config that differs from its own."""
    from omegaconf import OmegaConf

    from agentropy.configs.compose import compose_config
    from agentropy.configs.schema import ConfigError
    resume = next((o.split("=", 1)[1] for o in overrides if o.startswith("resume=")), "")
    if not resume:
        return list(overrides)
    saved_path = Path(resume) / ".hydra" / "config.yaml"
    if not saved_path.is_file():
        raise ConfigError(f"resume: {resume} is not a run folder of agentropy train (no {saved_path})")
    rest = [o for o in overrides if not o.startswith(("resume=", "hydra."))]
    saved = OmegaConf.to_container(OmegaConf.load(saved_path))
    now = OmegaConf.to_container(compose_config(rest))
    for tree in (saved, now):
        tree.pop("resume", None)
        for key in _RESUME_MAY_CHANGE:  # how many learner ranks, not what they compute
            tree["cluster"].pop(key, None)
    if saved != now:
        diff = sorted(_diff_keys(saved, now))
        raise ConfigError(
            f"resume: the config differs from the one {resume} was started with at "
            f"{', '.join(diff[:8])}; pass the same experiment and overrides"
        )
    return [*overrides, f"hydra.run.dir={resume}"]


def _diff_keys(a: object, b: object, prefix: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        return [k for key in set(a) | set(b)
                for k in _diff_keys(a.get(key), b.get(key), f"{prefix}{key}.")]
    return [] if a == b else [prefix.rstrip(".") or "<root>"]


def _config_overrides(argv: Sequence[str]) -> list[str]:
    """The overrides among ``agentropy train``'s arguments (not Hydra's flags and their values)."""
    return [a for a in argv if not a.startswith("-") and ("=" in a or a.startswith("~"))
            and not a.startswith("hydra.")]


def cmd_train(overrides: Sequence[str]) -> int:
    """Check the config, then hand the overrides to Hydra, which makes the run folder and calls
    the trainer (or only prints, for ``--cfg``, ``--help``, ``--info``).

    Every config error, Hydra's or the schema's, is one line on stderr and exit code 2.
    """
    import hydra
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import DictConfig

    from agentropy.configs.compose import load_config, rewrite_overrides, to_typed
    from agentropy.configs.schema import ConfigError
    result: dict[str, int] = {}

    @hydra.main(config_path="pkg://agentropy.configs", config_name="train", version_base="1.3")
    def _run(cfg: DictConfig) -> None:
        from agentropy.algorithms.train import train

        typed = to_typed(cfg)
        run_dir = HydraConfig.get().runtime.output_dir
        try:
            summary = train(typed, run_dir)
        except ConfigError as exc:  # found by the trainer (the model's, the run folder's facts)
            print(f"agentropy train: invalid config: {exc}", file=sys.stderr)
            result["rc"] = 2
            return
        _train_summary_table(summary)
        result["rc"] = 0

    argv = sys.argv
    try:
        overrides = _check_resume(rewrite_overrides(overrides))
        # The whole config is composed and checked here first, so that a bad one stops with
        # one line (Hydra would print a traceback, or drop an unknown optional experiment).
        load_config(_config_overrides(overrides))
        sys.argv = ["agentropy train", *overrides]
        _run()
    except ConfigError as exc:
        print(f"agentropy train: invalid config: {exc}", file=sys.stderr)
        return 2
    except SystemExit as exc:  # Hydra's --help exits 0; a failed run exits 1
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    finally:
        sys.argv = argv
    # Hydra returns without calling _run when it only prints (--cfg, --help, --info); a failed
    # run ends in sys.exit(1) inside hydra.main.
    return result.get("rc", 0)


# --------------------------------------------------------------------------- inspection
def _add_filters(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("filters (all optional; they combine)")
    g.add_argument("--env", default=None, help="env id, or a part of it (e.g. twx)")
    g.add_argument("--task", default=None, help="a part of the task id or task text")
    g.add_argument("--task-type", default=None, help="task type, exact (e.g. coin)")
    won = g.add_mutually_exclusive_group()
    won.add_argument("--won", dest="won", action="store_const", const=True, default=None,
                     help="only successful episodes")
    won.add_argument("--failed", dest="won", action="store_const", const=False,
                     help="only failed episodes")
    g.add_argument("--iteration", type=int, default=None, help="training iteration")
    g.add_argument("--policy-version", type=int, default=None)
    g.add_argument("--group", type=int, default=None, help="GRPO group id")
    g.add_argument("--phase", default=None, choices=PHASES)
    g.add_argument("--agent", default=None, help='e.g. "random", "expert", "model:hf"')
    g.add_argument("--split", default=None)
    g.add_argument("-q", "--query", default=None,
                   help="a part of the episode id, env id, task, agent or failure")
    g.add_argument("--text", default=None,
                   help="a part of any observation, completion or action (reads the records)")


def _filter(args: argparse.Namespace):
    from agentropy.inspect.run import EpisodeFilter

    return EpisodeFilter(
        env=args.env, task=args.task, task_type=args.task_type, won=args.won,
        iteration=args.iteration, policy_version=args.policy_version, group_id=args.group,
        phase=args.phase, agent=args.agent, split=args.split,
        episode_ids=frozenset(args.episode) if getattr(args, "episode", None) else None,
        query=args.query,
    )


def _open_run(path: str):
    from agentropy.inspect.run import RunIndex
    from agentropy.records.episodes import EpisodeSchemaError

    try:
        return RunIndex(path)
    except (FileNotFoundError, EpisodeSchemaError) as exc:
        print(f"agentropy: {exc}", file=sys.stderr)
        return None


def cmd_replay(args: argparse.Namespace) -> int:
    from rich.console import Console

    from agentropy.inspect import terminal
    from agentropy.inspect.api import sort_summaries

    index = _open_run(args.run)
    if index is None:
        return 2
    console = Console(highlight=False)
    chosen = sort_summaries(index.select(_filter(args), text=args.text), args.sort)
    if args.episode:
        missing = set(args.episode) - {s.episode_id for s in chosen}
        if missing:
            print(f"agentropy replay: no episode {', '.join(sorted(missing))} in {args.run} "
                  "(or the filters exclude it)", file=sys.stderr)
            return 1
    if not chosen:
        console.print(f"no episode in {args.run} matches")
        return 0
    if args.group is not None or args.group_view:
        keys = list(dict.fromkeys(s.group_key for s in chosen if s.group_key is not None))
        if not keys:
            console.print("the matching episodes belong to no GRPO group")
            return 0
        for iteration, group_id in keys[args.offset: args.offset + args.limit]:
            console.print(terminal.group_view(index.group(iteration, group_id),
                                              context=args.context))
        return 0
    page = chosen[args.offset: args.offset + args.limit]
    if args.episode or args.show or len(chosen) == 1:
        for record in index.records(page):
            console.print(terminal.episode_view(record, show_prompt=args.prompt))
        return 0
    console.print(terminal.episode_table(page, total=len(chosen), offset=args.offset))
    if args.offset + len(page) < len(chosen):
        console.print(f"[dim]--offset {args.offset + len(page)} for the next page; --show to read "
                      "them turn by turn, --episode ID for one[/dim]")
    return 0


def cmd_view(args: argparse.Namespace) -> int:
    if args.export:
        from agentropy.inspect.html import export_html
        from agentropy.inspect.run import EpisodeFilter

        index = _open_run(args.run)
        if index is None:
            return 2
        flt = _filter(args)
        try:
            stats = export_html(index, args.export, flt=flt if flt != EpisodeFilter() else None,
                                max_episodes=args.max_episodes)
        except ValueError as exc:  # a damaged line of metrics.jsonl or replay.jsonl, named
            print(f"agentropy view: {exc}", file=sys.stderr)
            return 2
        print(f"{args.export}: {stats['episodes']} of {stats['matching']} episodes, "
              f"{stats['bytes'] / 1e6:.1f} MB")
        return 0

    from agentropy.inspect.server import ViewerServer
    from agentropy.records.episodes import EpisodeSchemaError

    try:
        server = ViewerServer(args.run, port=args.port)
    except (FileNotFoundError, EpisodeSchemaError) as exc:
        print(f"agentropy: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"agentropy view: cannot listen on 127.0.0.1:{args.port} ({exc}); "
              "try --port 0 for any free port", file=sys.stderr)
        return 2
    print(f"serving {args.run} ({len(server.index)} episodes) at {server.url} ; Ctrl-C stops",
          flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.close()
    return 0


def cmd_rerun(args: argparse.Namespace) -> int:
    from rich.table import Table

    from agentropy.inspect.rerun import RerunRefused, make_kwargs, rerun
    from agentropy.inspect.terminal import safe_text

    index = _open_run(args.run)
    if index is None:
        return 2
    if not args.episode and not args.all:
        print("agentropy rerun: name episodes with --episode ID, or use --all (with filters)",
              file=sys.stderr)
        return 2
    chosen = index.select(_filter(args), text=args.text)
    if args.episode:
        missing = set(args.episode) - {s.episode_id for s in chosen}
        if missing:
            print(f"agentropy rerun: no episode {', '.join(sorted(missing))} in {args.run}",
                  file=sys.stderr)
            return 1
    chosen = chosen[: args.limit]
    records = list(index.records(chosen))
    try:
        for record in records:  # refuse the whole folder before any env is made
            make_kwargs(record)
    except RerunRefused as exc:
        print(f"agentropy rerun: {exc}", file=sys.stderr)
        return 2
    table = Table(title=f"re-run of {len(chosen)} episodes of {args.run}", title_justify="left")
    table.add_column("episode")
    table.add_column("turns", justify="right")
    table.add_column("result")
    differing = 0
    for report in rerun(records):
        differing += not report.identical
        style = "green" if report.identical else "bold red"
        table.add_row(report.episode_id, str(report.turns_replayed),
                      safe_text(report.describe(), style))
    console = _console(highlight=False)
    console.print(table)
    console.print(f"{len(chosen) - differing} identical, {differing} different")
    return 1 if differing else 0


def cmd_export(args: argparse.Namespace) -> int:
    from agentropy.inspect.export import export_run

    if _open_run(args.run) is None:
        return 2
    try:
        stats = export_run(args.run, args.out, _filter(args), text=args.text)
    except ValueError as exc:
        print(f"agentropy export: {exc}", file=sys.stderr)
        return 1
    print(f"{args.out}: {stats['episodes']} episodes (episodes/), {stats['sft_rows']} SFT rows (sft/); "
          f"load with datasets.load_dataset('parquet', data_files='{args.out}/sft/*.parquet'); "
          f"train on them with `agentropy train sft.dataset={args.out}`")
    return 0


EVAL_HELP = """\
agentropy eval suite=NAME policy=POLICY [key=value ...]

Evaluate a policy on a suite (configs/suite/NAME.yaml: env configs, splits, episodes, seed) and
write a run folder that `agentropy replay`, `view` and `compare` read, with eval.json (success,
score, length, invalid-action rate per env, split and task type, 95% intervals: Wilson for rates,
percentile bootstrap for means).

  policy=expert | random     the scripted expert or random baseline (agents/backends/scripted.py)
  policy=runs/X              a finished run (its model/ folder) or a checkpoint/model folder
  policy=ORG/NAME            a hub model name (same path as a local model)
  out=DIR                    the run folder (default runs/eval/<suite>-<time>)
  episodes=N seed=S          override the suite's counts (results then compare only to the same N, S)
  temperature=T              decoding temperature (default 0: greedy)
  agent.KEY=VALUE            any agent config field, e.g. agent.backend=vllm

Examples:
  agentropy eval suite=twx_coin policy=expert
  agentropy eval suite=alfworld policy=runs/2026-12-03/10-00-00 episodes=20
  agentropy compare runs/eval/A runs/eval/B
"""


def _eval_agent(policy: str, agent_overrides: dict[str, str], out: Path):
    from omegaconf import OmegaConf

    from agentropy.agents.agent import make_agent
    from agentropy.configs.schema import AgentConfig

    base: dict = {}
    model_path: str | Path = policy
    checkpoint: Path | None = None
    if policy in ("expert", "random"):
        from agentropy.agents.tiny import make_model

        base = {"backend": "scripted", "scripted_policy": policy}
        if "model" in agent_overrides:  # another model's tokenizer
            model_path = agent_overrides.pop("model")
        else:  # scripted agents only need a tokenizer: the tiny model's
            model_path = out / "tokenizer"
            if not (model_path / "config.json").exists():
                make_model(model_path)
    elif Path(policy).exists():
        model_path, checkpoint, base = _resolve_policy(policy)
    merged = OmegaConf.merge(OmegaConf.structured(AgentConfig), base, agent_overrides)
    config: AgentConfig = OmegaConf.to_object(merged)  # type: ignore[assignment]
    agent = make_agent(config, model_path)
    if checkpoint is not None:
        log.info("eval: weights of %s", checkpoint)
        agent.backend.model.load_state_dict(_checkpoint_weights(checkpoint, model_path, base))
    return agent


def _resolve_policy(policy: str) -> tuple[str | Path, Path | None, dict]:
    """``(model folder or hub name, checkpoint or None, the run's agent settings)`` of a policy
    folder: a checkpoint (``runs/X/checkpoints/iter_N``), a run folder (its latest checkpoint)
    or a plain model folder. Reads only JSON and YAML from the run (no pickles)."""
    from omegaconf import OmegaConf

    from agentropy.configs.schema import AgentConfig

    p = Path(policy)
    if (p / "model.safetensors").exists() and (p / "meta.json").exists():  # runs/X/checkpoints/iter_N
        checkpoint, p = p, p.parent.parent
    else:  # a run folder: its latest checkpoint (the trained weights); a plain model folder: itself
        from agentropy.algorithms.checkpoint import latest_checkpoint

        checkpoint = latest_checkpoint(p) if (p / "checkpoints").is_dir() else None
    base: dict = {}
    hydra = p / ".hydra" / "config.yaml"
    if hydra.exists():
        base = {k: v for k, v in OmegaConf.to_container(OmegaConf.load(hydra)).get("agent", {}).items()
                if k in AgentConfig.__dataclass_fields__}
    model_path: str | Path = p / "model" if (p / "model" / "config.json").exists() else p
    if not (p / "model").exists() and base.get("model", "tiny") != "tiny":  # a run of a hub model
        model_path = base["model"]
    elif not (Path(model_path) / "config.json").exists():
        raise FileNotFoundError(f"policy={policy}: no model/ folder or config.json there")
    return model_path, checkpoint, base


def _checkpoint_weights(checkpoint: Path, model_path: str | Path, base: dict) -> dict:
    """The full policy weights of ``checkpoint``: its ``model.safetensors``, or, for a LoRA run
    (adapters only), the base model's weights with the adapters merged in."""
    from safetensors.torch import load_file

    state = load_file(checkpoint / "model.safetensors")
    if not json.loads((checkpoint / "meta.json").read_text()).get("lora"):
        return state
    from omegaconf import OmegaConf

    from agentropy.agents.lora import apply_lora, load_adapter_state_dict, merged_state_dict
    from agentropy.agents.tiny import load_pretrained
    from agentropy.configs.schema import LoRAConfig

    lora: LoRAConfig = OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(LoRAConfig),
                                                            base.get("lora") or {}))  # type: ignore[assignment]
    model = apply_lora(load_pretrained(model_path)[0], lora)
    load_adapter_state_dict(model, state)
    return merged_state_dict(model)


def cmd_export_model(args: argparse.Namespace) -> int:
    import torch

    from agentropy.agents.tiny import load_pretrained

    out = Path(args.out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        print(f"agentropy export-model: {out} exists and is not an empty folder", file=sys.stderr)
        return 2
    try:
        model_path, checkpoint, base = _resolve_policy(args.policy)
    except (FileNotFoundError, OSError) as exc:
        print(f"agentropy export-model: {exc}", file=sys.stderr)
        return 2
    if checkpoint is None and (Path(args.policy) / "checkpoints").is_dir():
        print(f"agentropy export-model: {args.policy} has no complete checkpoint", file=sys.stderr)
        return 2
    model, tokenizer = load_pretrained(model_path, dtype="float32")
    if checkpoint is not None:
        model.load_state_dict(_checkpoint_weights(checkpoint, model_path, base))
    model.to(getattr(torch, args.dtype)).save_pretrained(out)
    tokenizer.save_pretrained(out)
    print(f"{out}: the weights of {checkpoint or model_path} in {args.dtype}, with config and tokenizer "
          "(transformers' from_pretrained and vLLM load it)")
    return 0


def _ci_cell(row: dict, key: str, fmt: str = ".2f") -> str:
    lo, hi = row[key + "_ci"]
    return f"{row[key]:{fmt}} [{lo:{fmt}},{hi:{fmt}}]"


def cmd_eval(overrides: Sequence[str]) -> int:
    import time

    from agentropy.algorithms.evaluate import evaluate, load_suite
    from agentropy.configs.schema import ConfigError

    if not overrides or any(a in ("-h", "--help") for a in overrides):
        print(EVAL_HELP)
        return 0
    args: dict[str, str] = {}
    for item in overrides:
        if "=" not in item:
            print(f"agentropy eval: expected key=value, got {item!r} (see agentropy eval --help)",
                  file=sys.stderr)
            return 2
        key, value = item.split("=", 1)
        args[key] = value
    agent_overrides = {k[len("agent."):]: v for k, v in args.items() if k.startswith("agent.")}
    args = {k: v for k, v in args.items() if not k.startswith("agent.")}
    unknown = set(args) - {"suite", "policy", "out", "episodes", "seed", "temperature", "progress"}
    if unknown or "suite" not in args or "policy" not in args:
        print(f"agentropy eval: need suite= and policy=; unknown keys {sorted(unknown)} "
              "(see agentropy eval --help)", file=sys.stderr)
        return 2
    try:
        suite, envs = load_suite(args["suite"], {k: int(args[k]) for k in ("episodes", "seed") if k in args})
    except (ConfigError, ValueError) as exc:
        print(f"agentropy eval: {exc}", file=sys.stderr)
        return 2
    out = Path(args.get("out") or f"runs/eval/{Path(args['suite']).stem}-{time.strftime('%Y%m%d-%H%M%S')}")
    try:
        agent = _eval_agent(args["policy"], agent_overrides, out)
    except (FileNotFoundError, OSError, ValueError) as exc:
        print(f"agentropy eval: {exc}", file=sys.stderr)
        return 2
    table = evaluate(agent, suite, envs, out, temperature=float(args.get("temperature", 0.0)),
                     progress=args.get("progress", "true").lower() != "false")
    print(f"{'env':<26} {'split':<13} {'task type':<24} {'n':>4}  {'success [95%]':<20} "
          f"{'score [95%]':<20} {'length [95%]':<22} invalid [95%]")
    for r in table:
        print(f"{r['env']:<26} {r['split']:<13} {r['task_type']:<24} {r['episodes']:>4}  "
              f"{_ci_cell(r, 'success'):<20} {_ci_cell(r, 'score'):<20} {_ci_cell(r, 'length', '.1f'):<22} "
              f"{_ci_cell(r, 'invalid_rate')}")
    print(f"{out}: episodes.jsonl, eval.json (agentropy replay/view/compare {out})")
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    import dataclasses

    from agentropy.inspect.compare import compare, default_filter
    from agentropy.inspect.run import EpisodeFilter
    from agentropy.inspect.terminal import comparison_table

    index_a, index_b = _open_run(args.run_a), _open_run(args.run_b)
    if index_a is None or index_b is None:
        return 2
    common = EpisodeFilter(env=args.env, task_type=args.task_type, phase=args.phase,
                           split=args.split)
    flt_a = default_filter(index_a, dataclasses.replace(
        common, iteration=args.iteration_a, policy_version=args.policy_version_a))
    flt_b = default_filter(index_b, dataclasses.replace(
        common, iteration=args.iteration_b, policy_version=args.policy_version_b))
    result = compare(index_a, index_b, flt_a, flt_b, common_only=args.common)
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
    else:
        _console(highlight=False).print(comparison_table(result))
    return 0


# --------------------------------------------------------------------------- parser
def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="agentropy",
        description="Entropy-controlling RL for LLM agents on long multi-turn text tasks.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser(
        "train", add_help=False,
        help="train from a Hydra config: agentropy train experiment=NAME key=value ...",
    )
    p.set_defaults(func=None)

    p = sub.add_parser("make-model", help="build the local tiny model and tokenizer into OUT")
    p.add_argument("out", help="output folder")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--vocab-size", type=int, default=2048)
    p.add_argument("--hidden-size", type=int, default=128)
    p.add_argument("--num-layers", type=int, default=2)
    p.add_argument("--intermediate-size", type=int, default=384)
    p.add_argument("--corpus", default=None, help="corpus file (default: the shipped one)")
    p.set_defaults(func=cmd_make_model)

    p = sub.add_parser("make-corpus", help="play the environments and write the tokenizer corpus")
    p.add_argument("out", help="output .txt.gz file")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_make_corpus)

    p = sub.add_parser("play", help="play episodes with a scripted agent or a model and record them")
    p.add_argument("--env", required=True, help="env id, e.g. agentropy/TWX-v0")
    p.add_argument("--agent", default="random", choices=["random", "expert", "model"])
    p.add_argument("--model", default=None, help="--agent model: a model folder (or a hub name)")
    # --agent model settings; unset ones keep the defaults of agentropy.configs.schema.AgentConfig.
    p.add_argument("--backend", default=None, choices=["hf", "vllm", "openai"],
                   help="generation backend (hf)")
    p.add_argument("--base-url", default=None,
                   help="--backend openai: the server's API root (agent.openai.base_url); --model names "
                        "the tokenizer folder and the served model")
    p.add_argument("--dtype", default=None, choices=["float32", "bfloat16", "float16"])
    p.add_argument("--temperature", type=float, default=None, help="sampling temperature; 0 is greedy")
    p.add_argument("--max-new-tokens", type=int, default=None)
    p.add_argument("--history-length", type=int, default=None)
    p.add_argument("--prompt-mode", default=None, choices=["step", "conversation"])
    p.add_argument("--episodes", type=int, default=10)
    p.add_argument("--out", default=None, help="run folder for episodes.jsonl")
    p.add_argument("--kwargs", default=None, help='env kwargs as JSON, e.g. \'{"game": "coin"}\'')
    p.add_argument("--split", default=None, help="task split (an env kwarg)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-turns", type=int, default=None)
    p.set_defaults(func=cmd_play)

    p = sub.add_parser("shop", help="serve the web shop (agentropy/WebShop-v0) as HTML pages on 127.0.0.1")
    p.add_argument("--port", type=int, default=0, help="TCP port (0: any free port)")
    p.add_argument("--split", default="test", choices=["train", "test", "dev"])
    p.add_argument("--goal", type=int, default=None, help="task number in the split (default: seeded draw)")
    p.add_argument("--seed", type=int, default=0, help="reset seed when --goal is not given")
    p.add_argument("--num-products", type=int, default=10_000)
    p.add_argument("--catalog-seed", type=int, default=0)
    p.set_defaults(func=cmd_shop)

    p = sub.add_parser("replay", help="read recorded episodes in the terminal (filters, groups)")
    p.add_argument("run", help="run folder (with episodes.jsonl)")
    p.add_argument("--episode", action="append", default=None, metavar="ID",
                   help="show this episode turn by turn (repeatable)")
    _add_filters(p)
    p.add_argument("--show", action="store_true", help="show the matching episodes turn by turn")
    p.add_argument("--group-view", action="store_true",
                   help="show GRPO groups side by side at the turn where they diverge "
                        "(implied by --group)")
    p.add_argument("--context", type=int, default=2, help="group view: turns after the divergence")
    p.add_argument("--prompt", action="store_true", help="also show each turn's full prompt")
    p.add_argument("--sort", default="line", help="line, -line, score, -score, mean_entropy, "
                   "-mean_entropy, length, -length, iteration, -iteration")
    p.add_argument("--offset", type=int, default=0)
    p.add_argument("--limit", type=int, default=20)
    p.set_defaults(func=cmd_replay)

    p = sub.add_parser("view", help="browse a run in the HTML viewer (127.0.0.1), or --export it")
    p.add_argument("run", help="run folder (with episodes.jsonl)")
    p.add_argument("--port", type=int, default=8765, help="0 picks a free port")
    p.add_argument("--export", default=None, metavar="FILE.html",
                   help="write one self-contained HTML file instead of serving")
    p.add_argument("--max-episodes", type=int, default=200,
                   help="--export: embed at most this many episodes (picked evenly)")
    _add_filters(p)
    p.set_defaults(func=cmd_view)

    p = sub.add_parser("rerun", help="re-run recorded episodes and report the first difference")
    p.add_argument("run", help="run folder (with episodes.jsonl)")
    p.add_argument("--episode", action="append", default=None, metavar="ID",
                   help="the episode to re-run (repeatable)")
    p.add_argument("--all", action="store_true", help="re-run every episode the filters match")
    p.add_argument("--limit", type=int, default=1000)
    _add_filters(p)
    p.set_defaults(func=cmd_rerun)

    sub.add_parser("eval", help="evaluate a policy on a suite: agentropy eval suite=NAME policy=P (--help)")

    p = sub.add_parser("export", help="write a run's episodes as a Hugging Face dataset (parquet)")
    p.add_argument("run", help="run folder (with episodes.jsonl)")
    p.add_argument("out", help="output folder: episodes/ (one row per episode), sft/ (one per turn)")
    _add_filters(p)
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("export-model", help="write a run's or checkpoint's policy as a plain model folder")
    p.add_argument("policy", help="a run folder (its latest checkpoint) or runs/X/checkpoints/iter_N")
    p.add_argument("out", help="output folder (new or empty): config.json, model.safetensors, tokenizer")
    p.add_argument("--dtype", default="bfloat16", choices=["float32", "bfloat16", "float16"])
    p.set_defaults(func=cmd_export_model)

    p = sub.add_parser("compare", help="success and score per task type of two runs or checkpoints")
    p.add_argument("run_a", help="run folder A")
    p.add_argument("run_b", help="run folder B (may be A, with --iteration-a/-b)")
    p.add_argument("--env", default=None)
    p.add_argument("--task-type", default=None)
    p.add_argument("--phase", default=None, choices=PHASES,
                   help="default: eval episodes when a run has them, else all")
    p.add_argument("--split", default=None)
    p.add_argument("--iteration-a", type=int, default=None)
    p.add_argument("--iteration-b", type=int, default=None)
    p.add_argument("--policy-version-a", type=int, default=None)
    p.add_argument("--policy-version-b", type=int, default=None)
    p.add_argument("--common", action="store_true", help="only the task ids both sides played")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=cmd_compare)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = _parser()
    # `train` forwards everything after it to Hydra untouched.
    command = next((i for i, a in enumerate(argv) if not a.startswith("-")), None)
    if command is not None and argv[command] == "train":
        head = argv[:command]
        if all(a in ("-v", "--verbose") for a in head):
            _setup_logging(bool(head))
            return cmd_train(argv[command + 1 :])
    if command is not None and argv[command] == "eval":
        _setup_logging(bool(argv[:command]))
        return cmd_eval(argv[command + 1 :])
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    _setup_logging(args.verbose)
    func: Callable[[argparse.Namespace], int] = args.func
    return func(args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

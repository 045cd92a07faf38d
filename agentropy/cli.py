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

__all__ = ["main"]

log = logging.getLogger("agentropy")


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


def _summary_table(title: str, rows: dict[str, dict[str, float]]) -> None:
    from rich.console import Console
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
    Console().print(table)


# --------------------------------------------------------------------------- commands
def cmd_make_model(args: argparse.Namespace) -> int:
    from agents.tiny import make_model
    from configs.schema import TinyModelConfig

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
    from agents.corpus import build_corpus

    n = build_corpus(args.out, seed=args.seed)
    print(f"{args.out}: {n} texts")
    return 0


def cmd_play(args: argparse.Namespace) -> int:
    from agentropy.play import play, summarize

    kwargs = json.loads(args.kwargs) if args.kwargs else {}
    if args.split:
        kwargs["split"] = args.split
    records = play(
        args.env,
        agent=args.agent,
        episodes=args.episodes,
        out_dir=args.out,
        env_kwargs=kwargs,
        seed=args.seed,
        max_turns=args.max_turns,
    )
    _summary_table(f"{args.env} {kwargs or ''}", {args.agent: summarize(records)})
    if args.out:
        print(f"episodes recorded in {os.path.join(args.out, 'episodes.jsonl')}")
    return 0


def cmd_shop(args: argparse.Namespace) -> int:
    """Serve the web shop on 127.0.0.1 for shopping by hand, until interrupted."""
    import time

    from envs.shop.web import ShopServer

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


def cmd_train(overrides: Sequence[str]) -> int:
    """Hand the overrides to Hydra, which makes the run folder and calls the trainer."""
    import hydra
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import DictConfig

    from configs.schema import ConfigError, rewrite_overrides, to_typed

    result: dict[str, int] = {}

    @hydra.main(config_path="pkg://configs", config_name="train", version_base="1.3")
    def _run(cfg: DictConfig) -> None:
        from algorithms.train import train

        typed = to_typed(cfg)
        run_dir = HydraConfig.get().runtime.output_dir
        summary = train(typed, run_dir)
        _summary_table(f"agentropy train -> {run_dir}", {"episodes": summary})
        result["rc"] = 0

    argv = sys.argv
    sys.argv = ["agentropy train", *rewrite_overrides(overrides)]
    try:
        _run()
    except ConfigError as exc:
        print(f"agentropy train: invalid config: {exc}", file=sys.stderr)
        return 2
    finally:
        sys.argv = argv
    return result.get("rc", 1)


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

    p = sub.add_parser("play", help="play episodes with a scripted agent and record them")
    p.add_argument("--env", required=True, help="env id, e.g. agentropy/TWX-v0")
    p.add_argument("--agent", default="random", choices=["random", "expert"])
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
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    _setup_logging(args.verbose)
    func: Callable[[argparse.Namespace], int] = args.func
    return func(args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

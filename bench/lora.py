"""LoRA against full fine-tuning of the same ~30M-parameter model: trainable parameters, optimizer
state, checkpoint size and the learner's update time, measured side by side in one run.

Three learners update copies of one model built by agents/tiny.py's builder at a bigger size
(bench/learner.py's ``30m``: hidden 512, 8 layers, MLP 1536), on the same synthetic batch of turn
rows, with the GRPO recipe as configured (recomputed old log-probs, a reference model for the
KL term): ``full`` trains every weight, ``lora r=8`` and ``lora r=32`` train adapters on every
attention and MLP projection (agents/lora.py). ``--lean`` adds the same three without the two
passes that need no gradient (the sampler's log-probs, no KL term). The runs take turns, a
warm-up round first, and the median of the timed rounds is reported; the ratios are what
matters on a shared machine.

Usage (from the repository root)::

    .venv/bin/python bench/lora.py --threads 1 --lean --repeats 5    # about 10 minutes on 2 cores
    .venv/bin/python bench/lora.py --repeats 1 --rows 8      # a quick look
"""

from __future__ import annotations

import argparse
import copy
import os
import platform
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
from agentropy.agents.corpus import read_corpus  # noqa: E402
from agentropy.agents.lora import adapter_state_dict, apply_lora, trainable_parameters  # noqa: E402
from agentropy.agents.tiny import build_model, train_tokenizer  # noqa: E402
from agentropy.algorithms.learner import Learner  # noqa: E402
from agentropy.configs.compose import load_config  # noqa: E402
from agentropy.configs.schema import LoRAConfig, TinyModelConfig  # noqa: E402

from bench.learner import MODELS, synthetic_batch  # noqa: E402


def _bytes(tensors) -> int:
    return sum(t.numel() * t.element_size() for t in tensors)


def _optimizer_bytes(learner: Learner) -> int:
    return _bytes(v for state in learner.optimizer.state.values() for v in state.values()
                  if isinstance(v, torch.Tensor) and v.dim() > 0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="30m", choices=sorted(MODELS))
    parser.add_argument("--rows", type=int, default=16, help="turn rows per update")
    parser.add_argument("--prompt", type=int, default=256, help="prompt tokens per row (+-10%%)")
    parser.add_argument("--completion", type=int, default=32, help="completion tokens per row (+-10%%)")
    parser.add_argument("--micro", type=int, default=8, help="rows per forward pass")
    parser.add_argument("--ranks", default="8,32", help="LoRA ranks, comma-separated")
    parser.add_argument("--repeats", type=int, default=3, help="timed rounds after a warm-up round")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--lean", action="store_true",
                        help="also time the update without the old-policy and reference passes "
                             "(sampler's log-probs, no KL): only the trained forward/backward and the step")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} cores, "
          f"{platform.processor() or platform.machine()}, load average {os.getloadavg()[0]:.1f}; {started}")

    tokenizer = train_tokenizer(read_corpus(None), TinyModelConfig().vocab_size)
    base = build_model(tokenizer, MODELS[args.model])
    batch = synthetic_batch(base.config.vocab_size, rows=args.rows, prompt=args.prompt,
                            completion=args.completion)
    common = ["algorithm=grpo", f"algorithm.mini_batch_size={args.rows}",
              f"algorithm.micro_batch_size={args.micro}", "algorithm.lr=1e-5"]
    variants = {"": load_config(common).algorithm}
    if args.lean:
        variants[" lean"] = load_config([*common, "algorithm.old_logprobs=rollout",
                                          "algorithm.kl.coef=0"]).algorithm

    models = {"full": copy.deepcopy(base)}
    for r in (int(x) for x in args.ranks.split(",")):
        models[f"lora r={r}"] = apply_lora(copy.deepcopy(base), LoRAConfig(rank=r, alpha=2.0 * r))
    learners = {name + suffix: Learner(m.train(), cfg, total_steps=100, max_new_tokens=args.completion * 2)
                for suffix, cfg in variants.items() for name, m in models.items()}

    times: dict[str, list[float]] = {k: [] for k in learners}
    for _ in range(args.repeats + 1):  # the first round warms up
        for name, learner in learners.items():
            start = time.perf_counter()
            learner.update(batch)
            times[name].append(time.perf_counter() - start)

    tokens = int(batch.attention_mask.sum())
    n_all = sum(p.numel() for p in base.parameters())
    print(f"\n## {args.model}: {n_all / 1e6:.1f}M parameters; batch {batch.batch_size} rows, {tokens} tokens "
          f"({int(batch.loss_mask.sum())} completion), micro-batch {args.micro}, "
          f"median of {args.repeats} timed rounds")
    print("| run | trainable parameters | % of model | optimizer state | checkpoint weights "
          "| s / update | x full time |")
    print("|---|---|---|---|---|---|---|")
    for name, learner in learners.items():
        model = models[name.removesuffix(" lean")]
        full_t = statistics.median(times["full lean" if name.endswith(" lean") else "full"][1:])
        n_train, _ = trainable_parameters(model)
        weights = model.state_dict() if name.startswith("full") else adapter_state_dict(model)
        t = statistics.median(times[name][1:])
        print(f"| {name} | {n_train:,} | {100 * n_train / n_all:.2f}% "
              f"| {_optimizer_bytes(learner) / 2**20:,.1f} MiB | {_bytes(weights.values()) / 2**20:,.1f} MiB "
              f"| {t:.2f} | {t / full_t:.2f} |")
    print("\nper-round times (s, warm-up first): " + "; ".join(
        f"{k}: {', '.join(f'{x:.2f}' for x in v)}" for k, v in times.items()))


if __name__ == "__main__":
    main()

"""Peak memory and seconds of one learner update, each memory/precision setting on and off.

A ~30M-parameter local model (``agentropy.agents.tiny.build_model`` at hidden 384, 10 layers, with
its embedding resized to a 16,384-token vocabulary so that the logits weigh what they do in a
real model: V / H = 43, Qwen2.5-1.5B has 99) takes one update on 4 rows of 2,000 tokens (1,500
prompt + 500 completion, one GRPO group with two wins). Settings, each in its own process so that
peak resident memory is that setting's alone:

- ``plain fp32 fwd+bwd``: the model's own forward (full fp32 logits), log-softmax, mean NLL of the
  completion tokens, backward; no learner (the floor of any update without the settings);
- ``learner, all off``: ``Learner.update`` (GRPO, sampler's log-probs, no KL) with full logits,
  4 rows per micro-batch, no checkpointing, fp32;
- then one setting on at a time, and all of them together.

Peak memory is the process's peak resident set (``ru_maxrss``) minus its resident set just
before the update (model, optimizer-free baseline and batch already in memory), after a
warm-up update on a small batch. CPU only; GPU figures are arithmetic in
``bench/results/memory.md``.

Usage (from the repository root; about 3-5 minutes on 2 cores)::

    .venv/bin/python bench/memory.py
    .venv/bin/python bench/memory.py --rows 2 --prompt 500 --completion 200   # quicker
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch  # noqa: E402
from agentropy.algorithms import functional as fn  # noqa: E402
from agentropy.algorithms.data import TokenBatch  # noqa: E402

SETTINGS = {
    "plain fp32 fwd+bwd": None,
    "learner, all off": [],
    "+ LM head in chunks": ["algorithm.logit_chunk_tokens=1024"],
    "+ token budget 2000": ["algorithm.max_tokens_per_micro_batch=2000"],
    "+ activation checkpointing": ["algorithm.activation_checkpointing=true"],
    "+ bf16 autocast (fp32 master)": ["compute=bfloat16"],
    "all on": ["algorithm.logit_chunk_tokens=1024", "algorithm.max_tokens_per_micro_batch=2000",
               "algorithm.activation_checkpointing=true", "compute=bfloat16"],
}
OFF = ["algorithm=grpo", "algorithm.kl.coef=0", "algorithm.old_logprobs=rollout",
       "algorithm.logit_chunk_tokens=0", "algorithm.mini_batch_size=64", "algorithm.micro_batch_size=64"]


def rss_bytes() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


def make_batch(rows: int, prompt: int, completion: int, vocab: int, seed: int = 0) -> TokenBatch:
    g = torch.Generator().manual_seed(seed)
    width = prompt + completion
    ids = torch.randint(3, vocab, (rows, width), generator=g)
    loss = torch.zeros(rows, width, dtype=torch.bool)
    loss[:, prompt:] = True
    logprobs = -torch.rand(rows, width, generator=g) * loss

    def col(values, dtype):
        return torch.tensor(values, dtype=dtype)

    won = [float(r % 2 == 0) for r in range(rows)]
    return TokenBatch(
        input_ids=ids, attention_mask=torch.ones(rows, width, dtype=torch.long), loss_mask=loss,
        rollout_logprobs=logprobs, group_index=col([0] * rows, torch.long),
        traj_index=col(list(range(rows)), torch.long), turn_index=col([0] * rows, torch.long),
        num_turns=col([1] * rows, torch.long), anchor_index=col(list(range(rows)), torch.long),
        prompt_length=col([prompt] * rows, torch.long),
        completion_length=col([completion] * rows, torch.long),
        rewards=col(won, torch.float32), episode_return=col(won, torch.float32),
        success=col(won, torch.float32), action_is_valid=torch.ones(rows, dtype=torch.bool),
        completion_truncated=torch.zeros(rows, dtype=torch.bool),
    )


def build(model_dir: Path, vocab: int) -> None:
    from agentropy.agents.corpus import read_corpus
    from agentropy.agents.tiny import build_model, train_tokenizer
    from agentropy.configs.schema import TinyModelConfig

    tokenizer = train_tokenizer(read_corpus(None), TinyModelConfig().vocab_size)
    config = TinyModelConfig(hidden_size=384, num_layers=10, num_heads=6, num_kv_heads=2,
                             intermediate_size=1152)
    model = build_model(tokenizer, config)
    model.resize_token_embeddings(vocab, mean_resizing=False)
    model.save_pretrained(model_dir)
    tokenizer.save_pretrained(model_dir)


def one(setting: str, model_dir: Path, rows: int, prompt: int, completion: int) -> dict[str, float]:
    from agentropy.agents.tiny import load_pretrained
    from agentropy.algorithms.learner import Learner
    from agentropy.configs.compose import load_config

    logging.disable(logging.WARNING)
    torch.manual_seed(0)
    model, _ = load_pretrained(model_dir)
    vocab = model.config.vocab_size
    overrides = SETTINGS[setting]
    warm = make_batch(2, 48, 16, vocab, seed=1)
    batch = make_batch(rows, prompt, completion, vocab)

    if overrides is None:
        def update(b: TokenBatch) -> None:
            model.zero_grad(set_to_none=True)
            logits = model(input_ids=b.input_ids, attention_mask=b.attention_mask, use_cache=False).logits
            logp = fn.token_logprobs(logits.float(), b.input_ids)
            (-(logp * b.loss_mask).sum() / b.loss_mask.sum()).backward()
    else:
        compute = "bfloat16" if "compute=bfloat16" in overrides else None
        cfg = load_config([*OFF, *[o for o in overrides if not o.startswith("compute=")]]).algorithm
        learner = Learner(model, cfg, total_steps=4, max_new_tokens=completion, compute_dtype=compute)

        def update(b: TokenBatch) -> None:
            learner.update(b)

    update(warm)
    base = rss_bytes()
    start = time.perf_counter()
    update(batch)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return {"peak_extra_mib": (peak - base) / 2**20, "seconds": seconds,
            "params_m": sum(p.numel() for p in model.parameters()) / 1e6, "vocab": vocab}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=4)
    parser.add_argument("--prompt", type=int, default=1500)
    parser.add_argument("--completion", type=int, default=500)
    parser.add_argument("--vocab", type=int, default=16384)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--one", help=argparse.SUPPRESS)
    parser.add_argument("--model-dir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.one:
        out = one(args.one, Path(args.model_dir), args.rows, args.prompt, args.completion)
        print(json.dumps(out))
        return

    print(f"torch {torch.__version__}, {args.threads} threads, load average {os.getloadavg()[0]:.1f}")
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = Path(tmp) / "model"
        build(model_dir, args.vocab)
        results = {}
        for setting in SETTINGS:
            cmd = [sys.executable, __file__, "--one", setting, "--model-dir", str(model_dir),
                   "--rows", str(args.rows), "--prompt", str(args.prompt),
                   "--completion", str(args.completion), "--threads", str(args.threads)]
            done = subprocess.run(cmd, capture_output=True, text=True, check=False)
            if done.returncode:
                print(f"{setting}: failed\n{done.stderr[-2000:]}")
                continue
            results[setting] = json.loads(done.stdout.strip().splitlines()[-1])
            r = results[setting]
            print(f"{setting:32s} peak +{r['peak_extra_mib']:8.0f} MiB  {r['seconds']:6.1f} s", flush=True)
    first = next(iter(results.values()))
    tokens = args.rows * (args.prompt + args.completion)
    logits_mib = tokens * first["vocab"] * 4 / 2**20
    print(f"\nmodel {first['params_m']:.1f}M parameters, vocabulary {first['vocab']}; {args.rows} rows x "
          f"{args.prompt + args.completion} tokens ({args.completion} completion); one fp32 "
          f"rows x seq x vocab tensor = {logits_mib:.0f} MiB; load average {os.getloadavg()[0]:.1f}")
    plain = results.get("plain fp32 fwd+bwd")
    print("\n| setting | peak extra memory (MiB) | vs plain | seconds per update | vs plain |")
    print("|---|---:|---:|---:|---:|")
    for setting, r in results.items():
        mem = f"{r['peak_extra_mib'] / plain['peak_extra_mib']:.2f}x" if plain else ""
        sec = f"{r['seconds'] / plain['seconds']:.2f}x" if plain else ""
        print(f"| {setting} | {r['peak_extra_mib']:.0f} | {mem} | {r['seconds']:.1f} | {sec} |")


if __name__ == "__main__":
    main()

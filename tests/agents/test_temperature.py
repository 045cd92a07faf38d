"""HAPO's token-aware sampling temperature (arXiv 2509.16591) on the sampler's side: the rule's
golden numbers (sign-correct and as released; docs/algorithms.md section 14.5), the HF sampler
applying it (neutral at tau 0, each token at its own T_t otherwise, log-probabilities of the
distribution drawn from), and the backends that cannot apply it refusing it."""

from __future__ import annotations

import math

import pytest
import torch
from agentropy.agents.backends.base import SamplingParams
from agentropy.agents.backends.hf import HFBackend, _TokenTemperatureWarper
from agentropy.agents.temperature import HapoEntropyStats, TokenTemperature

from tests.agents.helpers import chat_prompts

#: section 7.4: six tokens' entropies; the pivot is the 0.8 "nearest" quantile of log H (log 1.2).
H = torch.tensor([0.05, 0.3, 1.2, 2.0, 0.8, 0.02], dtype=torch.float64)


def _worked_stats() -> HapoEntropyStats:
    # c = log 1.2; s = RMS of (log H - c); max h = (log 2.0 - c) / s; min h = (log 0.02 - c) / s
    c = math.log(1.2)
    s = math.sqrt(sum((math.log(x) - c) ** 2 for x in H.tolist()) / 6)
    return HapoEntropyStats(c, s, (math.log(2.0) - c) / s, (math.log(0.02) - c) / s)


@pytest.mark.parametrize(("legacy_sign", "want"), [
    (False, [0.9612, 0.9831, 1.0, 1.05, 0.995, 0.95]),   # sign-correct T_t row
    (True, [1.0388, 1.0169, 1.0, 1.05, 1.005, 1.05]),    # as released: low entropy heats up too
])
def test_worked_example_temperatures(legacy_sign, want):
    stats = _worked_stats()
    # h = (-1.4403, -0.6283, 0, 0.2315, -0.1838, -1.8556) as in the spec
    h = (torch.log(H) - stats.pivot) / stats.scale
    assert torch.allclose(h, torch.tensor([-1.4403, -0.6283, 0, 0.2315, -0.1838, -1.8556], dtype=h.dtype),
                          atol=1e-4)
    rule = TokenTemperature(stats, tau=0.05, legacy_sign=legacy_sign)
    got = rule.temperatures(H, 1.0)
    assert torch.allclose(got, torch.tensor(want, dtype=got.dtype), atol=1e-4)
    assert torch.allclose(rule.temperatures(H, 0.5), 0.5 * got)  # T_t is proportional to T0
    assert (TokenTemperature(stats, tau=0.0).temperatures(H, 0.7) == 0.7).all()  # neutral


def test_the_warper_on_logits_with_known_entropies():
    # rows uniform over 8, 4 and 2 of 8 entries: entropies log 8, log 4, log 2 at any T0
    scores = torch.full((3, 8), -1e9)
    scores[0], scores[1, :4], scores[2, :2] = 0.5, 1.5, -2.0
    # pivot log(log 4), s = 1: h = log 1.5, 0, log 0.5; so h^ = 1, 0, -1
    stats = HapoEntropyStats(math.log(math.log(4)), 1.0, math.log(1.5), math.log(0.5))
    for t0 in (1.0, 2.0):
        warper = _TokenTemperatureWarper(TokenTemperature(stats, tau=0.2), t0)
        out = warper(torch.zeros(3, 1, dtype=torch.long), scores)
        want = torch.tensor([1.2, 1.0, 0.8]) * t0
        assert torch.allclose(warper.temperatures[0], want)
        assert torch.allclose(out, scores / want[:, None])


def _stats_of(values: list[float]) -> HapoEntropyStats:
    from agentropy.algorithms.entropy_methods import hapo_entropy_stats

    e = torch.tensor(values)
    return hapo_entropy_stats(e, torch.ones_like(e), pivot=0.5)


@pytest.mark.parametrize(("temperature", "top_p"), [(1.0, 1.0), (0.7, 1.0), (1.3, 0.6)])
def test_hf_neutral_rule_samples_exactly_as_today(tiny_model, temperature, top_p):
    model, tokenizer = tiny_model
    hf = HFBackend(model, tokenizer, batch_size=3)
    prompts = chat_prompts(tokenizer)
    plain = SamplingParams(24, temperature, top_p, seed=5)
    today = hf.generate(prompts, plain)
    rule = TokenTemperature(_stats_of([0.5, 1.0, 2.0, 4.0]), tau=0.0)
    ruled = hf.generate(prompts, SamplingParams(24, temperature, top_p, seed=5, token_temperature=rule))
    for a, b in zip(today, ruled, strict=True):
        assert a.token_ids == b.token_ids and a.logprobs == b.logprobs and a.entropies == b.entropies
        assert a.temperatures is None and (torch.tensor(b.temperatures) == torch.tensor(temperature)).all()


@pytest.mark.parametrize("legacy_sign", [False, True])
def test_hf_samples_each_token_at_its_own_temperature(tiny_model, legacy_sign):
    model, tokenizer = tiny_model
    hf = HFBackend(model, tokenizer, batch_size=4)
    prompts = chat_prompts(tokenizer)
    t0 = 0.8
    # statistics of the model's own entropies at T0, so h^ spreads over [-1, 1]
    first = hf.generate(prompts, SamplingParams(24, t0, 1.0, seed=1))
    stats = _stats_of([e for g in first for e in g.entropies])
    rule = TokenTemperature(stats, tau=0.3, legacy_sign=legacy_sign)
    gens = hf.generate(prompts, SamplingParams(24, t0, 1.0, seed=2, token_temperature=rule))
    spread = []
    for prompt, gen in zip(prompts, gens, strict=True):
        ids = torch.tensor([list(prompt) + list(gen.token_ids)])
        with torch.no_grad():
            logits = model(input_ids=ids).logits[0, len(prompt) - 1 : -1].float()
        logp0 = torch.log_softmax(logits / t0, dim=-1)
        entropy0 = -(logp0.exp() * logp0).sum(-1)
        # the tiny model's entropies are all close to log V, so s is small and h amplifies the
        # 1e-6 differences between cached generation and this forward pass: a looser tolerance
        temps = torch.tensor(gen.temperatures)
        assert torch.allclose(temps, rule.temperatures(entropy0, t0), atol=2e-3)
        # the reported log-probabilities are those of softmax(logits / T_t), the distribution drawn from
        logp = torch.log_softmax(logits / temps[:, None], dim=-1)
        picked = logp.gather(1, torch.tensor(gen.token_ids)[:, None]).squeeze(1)
        assert torch.allclose(torch.tensor(gen.logprobs), picked, atol=1e-4)
        spread += gen.temperatures
    assert min(spread) < t0 * 0.95 or legacy_sign  # the sign-correct rule cools low-entropy tokens
    assert max(spread) > t0 * 1.05
    assert all(t0 * 0.7 - 1e-6 <= t <= t0 * 1.3 + 1e-6 for t in spread)


def test_backends_that_cannot_apply_a_rule_refuse_it():
    from agentropy.agents.backends.vllm import VLLMBackend

    rule = TokenTemperature(HapoEntropyStats(0.0, 1.0, 1.0, -1.0), tau=0.05)
    with pytest.raises(ValueError, match="temperature > 0"):
        SamplingParams(8, 0.0, 1.0, token_temperature=rule)
    backend = object.__new__(VLLMBackend)  # refused before the engine is touched
    with pytest.raises(ValueError, match=r"vllm backend cannot .*algorithm\.hapo\.tau"):
        backend.generate([[1, 2]], SamplingParams(8, 1.0, 1.0, token_temperature=rule))
    with pytest.raises(ValueError, match="tau"):
        TokenTemperature(HapoEntropyStats(0.0, 1.0, 1.0, -1.0), tau=1.0)

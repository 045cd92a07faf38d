"""Generation with transformers' ``generate``: the default backend on CPU.

Prompts are batched with left padding (which leaves the logits of every row as they are without
padding, docs/models.md section 3) and sorted by length first, so rows of a micro-batch need little padding.

The sampling log-probabilities come from a logits processor that runs last, after our own
temperature and top-p warpers: at each step it keeps the log-softmax of the scores the next
token is drawn from and, one step later, picks the entry of the token that was drawn. This keeps
memory at one (batch, vocab) row instead of ``output_scores``' (steps, batch, vocab), which
matters for hub vocabularies of 150k entries. Every other processor that ``generate`` could take
from a hub model's ``generation_config.json`` (repetition penalty, top-k, ...) is switched off
explicitly, so the recorded distribution is the one sampled from.

A per-token temperature rule (``SamplingParams.token_temperature``, HAPO, arXiv 2509.16591)
replaces the temperature warper: at each step it takes each row's entropy H_t of softmax(logits /
T0) over the whole vocabulary (T0 = ``SamplingParams.temperature``), divides the row's logits by
its T_t = ``rule.temperatures(H_t, T0)`` and keeps T_t; top-p and the recorder follow. So the
recorded log-probabilities and entropies are those of softmax(logits / T_t) (top-p renormalised),
the distribution each token was drawn from, and ``Generation.temperatures`` holds the T_t.
Whether the learner's PPO ratio uses these (``algorithm.old_logprobs=rollout``: the behaviour
policy, corrected) or a recomputed temperature-1 forward pass (``recompute``, the default: the
released code's uncorrected ratio at T = 1) is the learner's setting, not the sampler's.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from contextlib import nullcontext

import torch
from agentropy.agents.backends.base import Generation, SamplingParams, TurnContext
from agentropy.agents.temperature import TokenTemperature
from torch import Tensor
from transformers import (
    GenerationConfig,
    LogitsProcessor,
    LogitsProcessorList,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    TemperatureLogitsWarper,
    TopPLogitsWarper,
)

__all__ = ["HFBackend", "eos_ids"]

log = logging.getLogger(__name__)


def eos_ids(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase) -> tuple[int, ...]:
    """The ids that end a completion: the generation config's EOS ids and the tokenizer's."""
    ids: list[int] = []
    configured = model.generation_config.eos_token_id
    if isinstance(configured, int):
        ids.append(configured)
    elif configured:
        ids.extend(configured)
    if tokenizer.eos_token_id is not None:
        ids.append(tokenizer.eos_token_id)
    if not ids:
        raise ValueError("neither the model's generation config nor the tokenizer has an EOS id")
    return tuple(dict.fromkeys(ids))


def _entropy(logp: Tensor) -> Tensor:
    """(B,) entropy in nats of the (B, V) log-probabilities ``logp`` (0 log 0 = 0)."""
    p = logp.exp()
    return -torch.where(p > 0, p * logp, torch.zeros_like(p)).sum(-1)


def _stack_steps(per_step: list[Tensor], steps: int, what: str) -> Tensor:
    """(B, steps) from one (B,) tensor per generation step."""
    if len(per_step) != steps:
        raise RuntimeError(
            f"recorded {len(per_step)} {what} for {steps} generated tokens; "
            "another logits processor or a generation option changed the step count"
        )
    return torch.stack(per_step, dim=1)


class _TokenTemperatureWarper(LogitsProcessor):
    """Divides each row's scores by its token temperature T_t (the rule of
    :class:`~agentropy.agents.temperature.TokenTemperature` at the entropy of softmax(scores / T0))
    and keeps the T_t of every step. Must be the first processor (it sees the model's logits)."""

    def __init__(self, rule: TokenTemperature, t0: float) -> None:
        self.rule = rule
        self.t0 = t0
        self.temperatures: list[Tensor] = []

    def __call__(self, input_ids: Tensor, scores: Tensor) -> Tensor:
        entropy = _entropy(torch.log_softmax(scores.float() / self.t0, dim=-1))
        t = self.rule.temperatures(entropy, self.t0)
        self.temperatures.append(t)
        return scores / t[:, None].to(scores.dtype)


class _SampledTokenRecorder(LogitsProcessor):
    """Records, for each step, the log-probability and entropy of the sampling distribution.

    Must be the last processor: it sees the scores the sampler draws from. Finished rows keep
    being recorded (their values are cut away afterwards).
    """

    def __init__(self, prompt_width: int, with_entropy: bool) -> None:
        self.prompt_width = prompt_width
        self.with_entropy = with_entropy
        self.previous: Tensor | None = None
        self.logprobs: list[Tensor] = []
        self.entropies: list[Tensor] = []

    def __call__(self, input_ids: Tensor, scores: Tensor) -> Tensor:
        if self.previous is not None:
            self._pick(input_ids[:, -1])
        logp = torch.log_softmax(scores.float(), dim=-1)
        self.previous = logp
        if self.with_entropy:
            self.entropies.append(_entropy(logp))
        return scores

    def _pick(self, tokens: Tensor) -> None:
        assert self.previous is not None
        self.logprobs.append(self.previous.gather(1, tokens[:, None]).squeeze(1))
        self.previous = None

    def finish(self, sequences: Tensor) -> tuple[Tensor, Tensor | None]:
        """Pick the last step's tokens; return (B, steps) logprobs and entropies."""
        steps = sequences.shape[1] - self.prompt_width
        if self.previous is not None:
            self._pick(sequences[:, self.prompt_width + len(self.logprobs)])
        logprobs = _stack_steps(self.logprobs, steps, "sampling steps")
        entropies = torch.stack(self.entropies[:steps], dim=1) if self.with_entropy else None
        return logprobs, entropies


class HFBackend:
    """Batched ``model.generate`` with left padding.

    Args:
        model: a causal LM; it is put in eval mode. Training code may share this very object
            (then :meth:`update_weights` only bumps the version).
        tokenizer: its tokenizer (pad and EOS ids, decoding).
        batch_size: prompts per ``generate`` call.
        with_entropy: compute each token's sampling entropy (cheap next to the forward pass).
    """

    name = "hf"

    def __init__(
        self,
        model: PreTrainedModel,
        tokenizer: PreTrainedTokenizerBase,
        *,
        batch_size: int = 64,
        with_entropy: bool = True,
    ) -> None:
        if tokenizer.pad_token_id is None:
            raise ValueError("the tokenizer needs a pad token for batched generation")
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.batch_size = batch_size
        self.with_entropy = with_entropy
        self.eos_ids = eos_ids(model, tokenizer)
        self._version = 0

    @property
    def policy_version(self) -> int:
        return self._version

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    # ------------------------------------------------------------------ generation
    def generate(
        self,
        prompt_ids: Sequence[Sequence[int]],
        sampling: SamplingParams,
        contexts: Sequence[TurnContext] | None = None,
    ) -> list[Generation]:
        if any(len(p) == 0 for p in prompt_ids):
            raise ValueError("generate(): an empty prompt")
        order = sorted(range(len(prompt_ids)), key=lambda i: len(prompt_ids[i]), reverse=True)
        out: list[Generation | None] = [None] * len(prompt_ids)
        seeded = torch.random.fork_rng(devices=[]) if sampling.seed is not None else nullcontext()
        training = self.model.training  # a trainer may share the model; generate in eval mode
        self.model.eval()
        try:
            with seeded, torch.inference_mode():
                if sampling.seed is not None:
                    torch.manual_seed(sampling.seed)
                for start in range(0, len(order), self.batch_size):
                    chunk = order[start : start + self.batch_size]
                    batch = self._generate_batch([prompt_ids[i] for i in chunk], sampling)
                    for i, gen in zip(chunk, batch, strict=True):
                        out[i] = gen
        finally:
            self.model.train(training)
        return [g for g in out if g is not None]

    def _generation_config(self, sampling: SamplingParams) -> GenerationConfig:
        # Every processor generate() could add is neutral here; ours are passed explicitly.
        return GenerationConfig(
            max_new_tokens=sampling.max_new_tokens,
            do_sample=not sampling.greedy,
            temperature=1.0,
            top_k=None if sampling.greedy else 0,  # 0 disables top-k; greedy must leave it unset
            top_p=1.0,
            min_p=None,
            typical_p=1.0,
            repetition_penalty=1.0,
            no_repeat_ngram_size=0,
            num_beams=1,
            eos_token_id=list(self.eos_ids),
            pad_token_id=self.tokenizer.pad_token_id,
            bos_token_id=None,
            return_dict_in_generate=True,
        )

    def _generate_batch(self, prompts: list[Sequence[int]], sampling: SamplingParams) -> list[Generation]:
        width = max(len(p) for p in prompts)
        pad = self.tokenizer.pad_token_id
        input_ids = torch.full((len(prompts), width), pad, dtype=torch.long)
        attention = torch.zeros((len(prompts), width), dtype=torch.long)
        for r, p in enumerate(prompts):
            input_ids[r, width - len(p) :] = torch.as_tensor(list(p), dtype=torch.long)
            attention[r, width - len(p) :] = 1
        recorder = _SampledTokenRecorder(width, self.with_entropy)
        processors: list[LogitsProcessor] = []
        tempered = None
        if not sampling.greedy:
            if sampling.token_temperature is not None:  # in place of the temperature warper
                tempered = _TokenTemperatureWarper(sampling.token_temperature, sampling.temperature)
                processors.append(tempered)
            elif sampling.temperature != 1.0:
                processors.append(TemperatureLogitsWarper(sampling.temperature))
            if sampling.top_p < 1.0:
                processors.append(TopPLogitsWarper(sampling.top_p))
        processors.append(recorder)
        result = self.model.generate(
            input_ids=input_ids.to(self.device),
            attention_mask=attention.to(self.device),
            generation_config=self._generation_config(sampling),
            logits_processor=LogitsProcessorList(processors),
        )
        sequences = result.sequences.cpu()
        logprobs, entropies = recorder.finish(sequences)
        logprobs = logprobs.cpu()
        entropies = entropies.cpu() if entropies is not None else None
        temperatures = None
        if tempered is not None:
            temperatures = _stack_steps(tempered.temperatures, sequences.shape[1] - width, "temperatures")
            temperatures = temperatures.cpu()

        out = []
        eos = set(self.eos_ids)
        for r in range(len(prompts)):
            row = sequences[r, width:].tolist()
            end = next((k + 1 for k, t in enumerate(row) if t in eos), None)
            finish = "stop" if end is not None else "length"
            end = end if end is not None else len(row)
            ids = tuple(row[:end])
            out.append(
                Generation(
                    token_ids=ids,
                    logprobs=tuple(logprobs[r, :end].tolist()),
                    text=self.tokenizer.decode(ids, skip_special_tokens=True),
                    finish_reason=finish,
                    entropies=tuple(entropies[r, :end].tolist()) if entropies is not None else None,
                    temperatures=tuple(temperatures[r, :end].tolist()) if temperatures is not None else None,
                )
            )
        return out

    # ------------------------------------------------------------------ weights
    def update_weights(self, state_dict: Mapping[str, Tensor], *, version: int | None = None) -> None:
        own = self.model.state_dict()
        shared = all(
            key in own and own[key].data_ptr() == value.data_ptr() for key, value in state_dict.items()
        )
        if not shared:
            missing, unexpected = self.model.load_state_dict(dict(state_dict), strict=False)
            # Buffers that are not in checkpoints (rotary frequencies) may be missing.
            missing = [k for k in missing if k in dict(self.model.named_parameters())]
            if missing or unexpected:
                raise KeyError(f"update_weights: missing {missing[:5]}, unexpected {unexpected[:5]}")
        self._version = self._version + 1 if version is None else version

    def close(self) -> None:
        pass

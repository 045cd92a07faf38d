"""Scripted policies behind the backend interface: for tests, baselines and SFT data.

``random`` picks an admissible command uniformly; ``expert`` sends ``info["expert_action"]`` (and
acts like ``random`` where the env has none). An expert with ``detour > 0`` is a suboptimal
demonstrator: at each turn, with that probability, it plays like ``random`` instead. The
completion is the well-formed answer ``<think></think><action>COMMAND</action>`` followed by EOS,
as token ids of the agent's tokenizer, so the turns it produces have the same shape as a model's
and can be trained on (SFT).

The log-probabilities are the policy's own, token by token: a uniform choice among n commands is a
distribution over their token sequences, so the probability of token t is the fraction of the
commands that agree with the chosen one up to token t among those that agree up to t - 1. They
sum to -log(n) over the completion (0 for the expert, which is deterministic). Entropies are
computed the same way.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence

import numpy as np
from agentropy.agents.backends.base import Generation, SamplingParams, TurnContext
from agentropy.agents.parsing import format_completion
from torch import Tensor
from transformers import PreTrainedTokenizerBase

__all__ = ["SCRIPTED_POLICIES", "ScriptedBackend"]

SCRIPTED_POLICIES = ("random", "expert")

#: Sent when the env lists no admissible command and has no expert action (as agentropy play does).
FALLBACK_COMMAND = "look"


class ScriptedBackend:
    """Chooses commands from the env's admissible list or its expert.

    Args:
        tokenizer: encodes the completions (the EOS id ends them).
        policy: ``"random"`` or ``"expert"``.
        seed: seeds the random choices (a call's ``sampling.seed`` re-seeds them).
        detour: the expert's chance per turn of a uniformly random admissible command instead of
            its own (0 for the expert itself); the reported log-probs and entropies are then those
            of the random pick.
    """

    name = "scripted"

    def __init__(self, tokenizer: PreTrainedTokenizerBase, policy: str = "expert", seed: int = 0,
                 detour: float = 0.0) -> None:
        if policy not in SCRIPTED_POLICIES:
            raise ValueError(f"unknown scripted policy {policy!r}; known: {', '.join(SCRIPTED_POLICIES)}")
        if not 0.0 <= detour <= 1.0:
            raise ValueError(f"detour must be in [0, 1], got {detour}")
        if tokenizer.eos_token_id is None:
            raise ValueError("the tokenizer has no EOS token")
        self.tokenizer = tokenizer
        self.policy = policy
        self.detour = detour
        self.rng = np.random.default_rng(seed)
        self._cache: dict[str, tuple[int, ...]] = {}

    @property
    def policy_version(self) -> int:
        return 0

    def _ids(self, command: str) -> tuple[int, ...]:
        ids = self._cache.get(command)
        if ids is None:
            text = format_completion(command)
            ids = (*self.tokenizer(text, add_special_tokens=False).input_ids, self.tokenizer.eos_token_id)
            if len(self._cache) < 100_000:
                self._cache[command] = ids
        return ids

    def generate(
        self,
        prompt_ids: Sequence[Sequence[int]],
        sampling: SamplingParams,
        contexts: Sequence[TurnContext] | None = None,
    ) -> list[Generation]:
        if contexts is None or len(contexts) != len(prompt_ids):
            raise ValueError("the scripted backend chooses from the env: pass one TurnContext per prompt")
        rng = np.random.default_rng(sampling.seed) if sampling.seed is not None else self.rng
        return [self._one(ctx, sampling, rng) for ctx in contexts]

    def _one(self, ctx: TurnContext, sampling: SamplingParams, rng: np.random.Generator) -> Generation:
        detour = self.detour > 0 and rng.random() < self.detour
        if self.policy == "expert" and ctx.expert_action and not detour:
            candidates: Sequence[str] = (ctx.expert_action,)
        else:
            candidates = ctx.admissible_commands or (FALLBACK_COMMAND,)
        chosen = candidates[int(rng.integers(len(candidates)))]
        sequences = [self._ids(c) for c in candidates]
        ids = self._ids(chosen)
        logprobs, entropies = _token_stats(sequences, ids)
        finish = "stop"
        if len(ids) > sampling.max_new_tokens:
            ids, finish = ids[: sampling.max_new_tokens], "length"
            logprobs, entropies = logprobs[: len(ids)], entropies[: len(ids)]
        return Generation(
            token_ids=ids,
            logprobs=logprobs,
            text=self.tokenizer.decode(ids, skip_special_tokens=True),
            finish_reason=finish,
            entropies=entropies,
        )

    def update_weights(self, state_dict: Mapping[str, Tensor], *, version: int | None = None) -> None:
        raise TypeError("the scripted backend has no weights to update")

    def close(self) -> None:
        pass


def _token_stats(
    sequences: Sequence[tuple[int, ...]], chosen: tuple[int, ...]
) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-token log-probability of ``chosen`` and entropy, under a uniform pick of a sequence."""
    alive = list(sequences)
    logprobs, entropies = [], []
    for t, token in enumerate(chosen):
        counts = Counter(s[t] for s in alive if len(s) > t)
        total = sum(counts.values())
        logprobs.append(math.log(counts[token] / total))
        entropies.append(0.0 - sum(c / total * math.log(c / total) for c in counts.values()))
        alive = [s for s in alive if len(s) > t and s[t] == token]
    return tuple(logprobs), tuple(entropies)

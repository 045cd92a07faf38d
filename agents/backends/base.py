"""The one interface every generation backend implements.

A backend turns prompt token ids into completion token ids, with the log-probability each token
was sampled with: ``generate(prompt_ids, sampling) -> [Generation]``. It takes new weights with
``update_weights(state_dict)``, which advances ``policy_version``. Token ids in, token ids out:
the ids a backend returns are the ids the learner trains on, so a backend that cannot return the
sampled ids and one log-probability per id must fail loudly (never decode and re-tokenize, never
pad missing log-probabilities).

Which log-probabilities: those of the distribution the token was drawn from, i.e. the model's
logits divided by the temperature and, with ``top_p < 1``, renormalised over the nucleus. With
``temperature=1, top_p=1`` they equal a teacher-forced forward pass of the same weights. Greedy
decoding (``temperature=0``) reports the model's own log-probabilities (temperature 1). With a
per-token temperature rule (``SamplingParams.token_temperature``, HAPO) the temperature is the
token's own T_t, so the log-probabilities are still those of the distribution actually sampled;
the learner's ``algorithm.old_logprobs`` decides whether its ratio uses them (``rollout``) or a
recomputed temperature-1 forward pass (``recompute``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from agentropy.agents.temperature import TokenTemperature
from torch import Tensor

if TYPE_CHECKING:
    from agentropy.configs.schema import AgentConfig

__all__ = ["Backend", "Generation", "SamplingParams", "TurnContext"]


@dataclass(frozen=True)
class SamplingParams:
    """How to sample one batch of completions.

    Attributes:
        max_new_tokens: generation stops after this many tokens (finish reason ``"length"``).
        temperature: softmax temperature; 0 means greedy decoding.
        top_p: nucleus sampling mass, in (0, 1].
        seed: seeds the sampler for this call (None: the backend's running random state).
        token_temperature: a per-token temperature rule (HAPO's, arXiv 2509.16591): each token
            is drawn at T_t = ``token_temperature.temperatures(H_t, temperature)``, H_t the
            entropy of its distribution at ``temperature``; None samples every token at
            ``temperature``. Only the ``hf`` backend applies one; the others refuse it
            (:meth:`refuse_token_temperature`).
    """

    max_new_tokens: int
    temperature: float
    top_p: float
    seed: int | None = None
    token_temperature: TokenTemperature | None = None

    def __post_init__(self) -> None:
        if self.max_new_tokens <= 0:
            raise ValueError(f"max_new_tokens must be > 0, got {self.max_new_tokens}")
        if self.temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")
        if self.token_temperature is not None and self.greedy:
            raise ValueError("a per-token temperature rule needs temperature > 0 (greedy decoding has none)")

    @property
    def greedy(self) -> bool:
        return self.temperature == 0

    def refuse_token_temperature(self, backend: str) -> None:
        """Raise if a per-token temperature rule is set: for backends that cannot apply one
        (never ignore it silently)."""
        if self.token_temperature is not None:
            raise ValueError(f"the {backend} backend cannot sample at a per-token temperature "
                             "(SamplingParams.token_temperature, set by algorithm.hapo.tau > 0); "
                             "use agent.backend=hf")

    @classmethod
    def from_config(cls, config: AgentConfig, *, temperature: float | None = None) -> SamplingParams:
        """From the agent config (optionally with another temperature, e.g. for evaluation)."""
        return cls(
            max_new_tokens=config.max_new_tokens,
            temperature=config.temperature if temperature is None else temperature,
            top_p=config.top_p,
        )


@dataclass(frozen=True)
class Generation:
    """One completion.

    Attributes:
        token_ids: the sampled ids, ending with the EOS id when the model stopped by itself.
        logprobs: the sampling log-probability of each id (same length as ``token_ids``).
        text: the completion decoded without special tokens (for parsing and records).
        finish_reason: ``"stop"`` (EOS sampled) or ``"length"`` (``max_new_tokens`` reached).
        entropies: the entropy in nats of each token's sampling distribution, when the
            backend computes it cheaply (HF does; vLLM does not); None otherwise.
        trainable: False when the backend returned text only (a chat-only API): then
            ``token_ids`` and ``logprobs`` are empty and the turn is never trained on.
        failure: why no completion could be produced (a server error after its retries);
            "" otherwise. The rollout ends such an episode as failed, with this reason.
        temperatures: the temperature each token was drawn at, when the sampling parameters
            had a per-token rule (``SamplingParams.token_temperature``); None otherwise.
    """

    token_ids: tuple[int, ...]
    logprobs: tuple[float, ...]
    text: str
    finish_reason: str
    entropies: tuple[float, ...] | None = None
    trainable: bool = True
    failure: str = ""
    temperatures: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        if self.failure or not self.trainable:
            if self.token_ids or self.logprobs:
                raise ValueError("a failed or text-only generation carries no token ids or logprobs")
        for name in ("logprobs", "entropies", "temperatures"):
            values = getattr(self, name)
            if values is not None and len(values) != len(self.token_ids):
                raise ValueError(f"generation has {len(self.token_ids)} tokens but {len(values)} {name}")
        if self.finish_reason not in ("stop", "length") and not self.failure:
            raise ValueError(f"finish_reason must be 'stop' or 'length', got {self.finish_reason!r}")
        if any(math.isnan(x) or x > 1e-4 for x in self.logprobs):
            raise ValueError("a sampling log-probability is NaN or positive")

    @classmethod
    def failed(cls, reason: str) -> Generation:
        """No completion: the backend gave up on this prompt (``reason`` says why)."""
        return cls(token_ids=(), logprobs=(), text="", finish_reason="error", trainable=False,
                   failure=reason or "generation failed")

    @property
    def mean_entropy(self) -> float | None:
        return _mean(self.entropies)

    @property
    def mean_temperature(self) -> float | None:
        return _mean(self.temperatures)


def _mean(values: tuple[float, ...] | None) -> float | None:
    return float(sum(values) / len(values)) if values else None


@dataclass(frozen=True)
class TurnContext:
    """What the environment says about the turn a prompt was built for.

    Model backends ignore it; the scripted backend chooses its action from it.

    Attributes:
        observation: the current observation.
        admissible_commands: the commands the env accepts now.
        expert_action: the env's expert command, if it has one.
        messages: the prompt as chat messages (``role``/``content``), when the prompt builder
            has them (step mode); for backends that send messages, not token ids.
        episode: a key that is the same at every turn of one episode and differs between the
            episodes of one call (the agent gives its memory's ``id``); a pool of engines keeps
            an episode on one engine by it. None: no episode to keep together.
    """

    observation: str
    admissible_commands: tuple[str, ...]
    expert_action: str | None = None
    messages: tuple[Mapping[str, str], ...] = ()
    episode: int | None = None


@runtime_checkable
class Backend(Protocol):
    """Token ids in, token ids and their sampling log-probabilities out; weights in."""

    #: Short name used in episode records, e.g. ``"hf"``.
    name: str

    @property
    def policy_version(self) -> int:
        """How many weight updates this backend has taken (0 for the initial weights)."""
        ...

    def generate(
        self,
        prompt_ids: Sequence[Sequence[int]],
        sampling: SamplingParams,
        contexts: Sequence[TurnContext] | None = None,
    ) -> list[Generation]:
        """One completion per prompt, in the order of ``prompt_ids``."""
        ...

    def update_weights(self, state_dict: Mapping[str, Tensor], *, version: int | None = None) -> None:
        """Load new weights (a full state dict in the checkpoint's names) and advance
        ``policy_version`` (to ``version`` when given, e.g. after a resume)."""
        ...

    def close(self) -> None:
        """Release the engine. Safe to call twice."""
        ...

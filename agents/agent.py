"""The agent: prompts, a generation backend and the parser, for a batch of episodes at once.

:class:`Agent` is what the rollout collector talks to. For each active episode it renders the
prompt (:mod:`agentropy.agents.prompts`), asks the backend for all completions in one batch, parses each
into a command (:mod:`agentropy.agents.parsing`), and after the env step records the turn in the episode's
memory. :func:`make_agent` builds one from an :class:`agentropy.configs.schema.AgentConfig`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agentropy.agents.backends import BACKENDS
from agentropy.agents.backends.base import Backend, Generation, SamplingParams, TurnContext
from agentropy.agents.parsing import ParsedAction, parse_completion
from agentropy.agents.prompts import EpisodeMemory, Prompt, PromptBuilder
from agentropy.configs.schema import AgentConfig
from transformers import PreTrainedTokenizerBase

__all__ = ["Agent", "AgentStep", "make_agent", "make_backend"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AgentStep:
    """One episode's turn as the agent produced it."""

    prompt: Prompt
    generation: Generation
    parsed: ParsedAction


class Agent:
    """Turns observations into commands for many episodes at once.

    Args:
        backend: generates completions (token ids and their sampling log-probabilities).
        tokenizer: the backend's tokenizer (its chat template renders the prompts).
        config: prompt, sampling and parsing settings.

    Attributes:
        generate_seconds: time spent inside ``backend.generate`` so far (the rollout benchmark
            compares it with the collector's wall time).
    """

    def __init__(self, backend: Backend, tokenizer: PreTrainedTokenizerBase, config: AgentConfig) -> None:
        self.backend = backend
        self.tokenizer = tokenizer
        self.config = config
        self.prompts = PromptBuilder(tokenizer, config)
        self.sampling = SamplingParams.from_config(config)
        self.generate_seconds = 0.0

    @property
    def name(self) -> str:
        """What plays, for episode records: ``model:hf``, ``model:vllm``, ``scripted:expert``..."""
        if self.backend.name == "scripted":
            return f"scripted:{getattr(self.backend, 'policy', '')}"
        return f"model:{self.backend.name}"

    @property
    def policy_version(self) -> int:
        return self.backend.policy_version

    def start(self, family: str, task: str) -> EpisodeMemory:
        return self.prompts.start(family, task)

    def act(
        self,
        memories: Sequence[EpisodeMemory],
        observations: Sequence[str],
        infos: Sequence[Mapping[str, Any]],
        sampling: SamplingParams | None = None,
    ) -> list[AgentStep]:
        """Render, generate and parse one turn for each episode given.

        Args:
            memories: the episodes' memories (from :meth:`start`).
            observations: each episode's current observation.
            infos: each episode's current ``info`` (admissible commands, expert action).
            sampling: overrides the config's sampling (e.g. for evaluation).
        """
        prompts, contexts = [], []
        for memory, obs, info in zip(memories, observations, infos, strict=True):
            admissible = tuple(info.get("admissible_commands") or ())
            prompts.append(self.prompts.build(memory, obs, admissible))
            contexts.append(TurnContext(obs, admissible, info.get("expert_action"), prompts[-1].messages,
                                        episode=id(memory)))
        start = time.perf_counter()
        generations = self.backend.generate([p.ids for p in prompts], sampling or self.sampling, contexts)
        self.generate_seconds += time.perf_counter() - start
        if len(generations) != len(prompts):
            raise RuntimeError(f"backend returned {len(generations)} generations for {len(prompts)} prompts")
        return [
            AgentStep(prompt, gen, parse_completion(gen.text, self.config))
            for prompt, gen in zip(prompts, generations, strict=True)
        ]

    def record(self, memory: EpisodeMemory, step: AgentStep, observation: str) -> None:
        """Add a finished turn to its episode's memory (after the env step)."""
        self.prompts.record(memory, step.prompt, observation, step.parsed.action, step.generation.token_ids)

    def close(self) -> None:
        self.backend.close()


def make_backend(config: AgentConfig, model_path: str | Path) -> tuple[Backend, PreTrainedTokenizerBase]:
    """Load the model at ``model_path`` into the configured backend.

    Args:
        config: ``backend``, ``dtype``, ``generation_batch_size``, ``scripted_policy``,
            ``vllm`` and the prompt/generation lengths (for vLLM's context length).
        model_path: a model folder (``agentropy.agents.tiny.make_model`` or ``save_pretrained``)
            or a hub name.
    """
    return BACKENDS.get(config.backend)(config, model_path)


def make_agent(config: AgentConfig, model_path: str | Path) -> Agent:
    """An :class:`Agent` with the configured backend loaded from ``model_path``."""
    backend, tokenizer = make_backend(config, model_path)
    return Agent(backend, tokenizer, config)

"""Model backends: what generates the completions (``agent.backend``).

:data:`BACKENDS` maps a backend's name to its factory
``fn(config: AgentConfig, model_path, policy=None) -> (Backend, tokenizer)``; ``policy`` is an
already loaded ``(model, tokenizer)`` that a backend may serve directly instead of loading
``model_path`` again (the trainer passes the model it trains). A factory whose backend has no
model to train carries ``trains = False``. The names are declared in
:data:`agentropy.configs.parts.CATALOGUE`; each backend's module is imported only when it is built.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agentropy.configs.parts import Registry

if TYPE_CHECKING:
    from agentropy.configs.schema import AgentConfig

__all__ = ["BACKENDS"]

BACKENDS: Registry = Registry.of("model backend")


@BACKENDS.register("hf")
def _hf(config: AgentConfig, model_path: str | Path,
        policy: tuple[Any, Any] | None = None) -> tuple[Any, Any]:
    import torch
    from agentropy.agents.backends.hf import HFBackend

    if policy is None:
        from agentropy.agents.tiny import load_pretrained

        policy = load_pretrained(model_path, dtype=config.dtype)
    model, tokenizer = policy
    dtype = getattr(torch, config.dtype)
    if next(model.parameters()).dtype != dtype:  # e.g. float32 master weights, bf16 rollouts
        model = copy.deepcopy(model).to(dtype).eval()
    return HFBackend(model, tokenizer, batch_size=config.generation_batch_size), tokenizer


@BACKENDS.register("vllm")
def _vllm(config: AgentConfig, model_path: str | Path,
          policy: tuple[Any, Any] | None = None) -> tuple[Any, Any]:
    from agentropy.agents.backends.vllm import VLLMBackend

    backend = VLLMBackend.from_config(config, model_path)
    return backend, backend.tokenizer


@BACKENDS.register("openai")
def _openai(config: AgentConfig, model_path: str | Path,
            policy: tuple[Any, Any] | None = None) -> tuple[Any, Any]:
    from agentropy.agents.backends.openai import OpenAIBackend

    backend = OpenAIBackend.from_config(config, model_path)
    return backend, backend.tokenizer


_openai.trains = False  # type: ignore[attr-defined]  # the server's weights are not ours to update


@BACKENDS.register("scripted")
def _scripted(config: AgentConfig, model_path: str | Path,
              policy: tuple[Any, Any] | None = None) -> tuple[Any, Any]:
    from agentropy.agents.backends.scripted import ScriptedBackend

    if policy is not None:
        tokenizer = policy[1]
    else:
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(str(model_path))
    return ScriptedBackend(tokenizer, policy=config.scripted_policy), tokenizer


_scripted.trains = False  # type: ignore[attr-defined]

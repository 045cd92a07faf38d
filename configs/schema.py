"""Typed configuration: every knob, its one default, and its check.

Hydra composes ``configs/train.yaml`` with the groups ``env/``, ``agent/``, ``algorithm/`` and
``experiment/``; the YAML files only select options and override values. The tree is typed by
the dataclasses below (registered with Hydra's ConfigStore), so a misspelt key or a value of the
wrong type fails at composition with Hydra's message naming the key, and ``__post_init__`` checks
names against the registries. :func:`load_config` converts the result into these dataclasses
once; code below the entry point receives typed objects, never a ``DictConfig``.

Methods compose over a base recipe: ``algorithm=epo`` uses the GRPO recipe underneath, and
``algorithm=epo algorithm.base=gigpo`` puts EPO over GiGPO (the override is rewritten to Hydra's
``algorithm/base@algorithm=gigpo``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

__all__ = [
    "AgentConfig",
    "AlgorithmConfig",
    "ConfigError",
    "EnvConfig",
    "TinyModelConfig",
    "TrainConfig",
    "load_config",
    "rewrite_overrides",
    "to_typed",
]


class ConfigError(ValueError):
    """The configuration is invalid; the message names the key."""


def _choice(key: str, value: str, choices: Sequence[str]) -> None:
    if value not in choices:
        raise ConfigError(f"{key}: {value!r} is not one of {', '.join(map(repr, choices))}")


def _positive(key: str, value: float, *, allow_zero: bool = False) -> None:
    if value < 0 or (value == 0 and not allow_zero):
        raise ConfigError(f"{key}: must be {'>= 0' if allow_zero else '> 0'}, got {value}")


@dataclass
class TinyModelConfig:
    """Size of the local model and its tokenizer (``agent.model=tiny``).

    The defaults are the quickstart model of LEARNING.md (2 layers, hidden 128, MLP 384, untied
    embeddings), which trains at several thousand tokens/s on 2 CPU cores.
    """

    vocab_size: int = 2048
    """target BPE vocabulary; the model's embedding rows are padded to a multiple of 64"""
    hidden_size: int = 128
    num_layers: int = 2
    num_heads: int = 4
    num_kv_heads: int = 2
    intermediate_size: int = 384
    max_position_embeddings: int = 4096
    seed: int = 0
    """seeds the weight initialisation (BPE training is deterministic by itself)"""

    def __post_init__(self) -> None:
        if self.hidden_size % self.num_heads or self.num_heads % self.num_kv_heads:
            raise ConfigError(
                "agent.tiny: hidden_size must divide by num_heads and num_heads by num_kv_heads, "
                f"got {self.hidden_size}/{self.num_heads}/{self.num_kv_heads}"
            )
        if self.vocab_size < 300:
            raise ConfigError(f"agent.tiny.vocab_size: must be >= 300, got {self.vocab_size}")


@dataclass
class EnvConfig:
    """Which environment to train and evaluate on."""

    id: str = "agentropy/TWX-v0"
    """a registered Gymnasium id"""
    kwargs: dict[str, Any] = field(default_factory=dict)
    """keyword arguments for ``gymnasium.make`` (family-specific, e.g. ``game: coin``)"""
    max_turns: int = 50
    """turn limit of an episode (``max_episode_steps``)"""
    train_split: str = "train"
    eval_splits: list[str] = field(default_factory=lambda: ["dev"])
    pool: str = "serial"
    """EnvPool backend: ``serial`` or ``subprocess``"""
    num_workers: int = 2
    """worker processes of the ``subprocess`` pool"""
    step_timeout_s: float = 120.0
    """a reset or step that takes longer marks its episode failed and replaces the worker"""

    def __post_init__(self) -> None:
        from gymnasium.envs.registration import registry

        import envs  # noqa: F401  (registers the ids)

        if self.id not in registry:
            known = sorted(k for k in registry if k.startswith("agentropy/"))
            raise ConfigError(f"env.id: {self.id!r} is not registered; known: {', '.join(known)}")
        _positive("env.max_turns", self.max_turns)
        _choice("env.pool", self.pool, ("serial", "subprocess"))
        _positive("env.num_workers", self.num_workers)
        _positive("env.step_timeout_s", self.step_timeout_s)


@dataclass
class AgentConfig:
    """The policy: which model, which backend, how it is prompted and sampled."""

    model: str = "tiny"
    """``tiny`` builds the local model into the run folder; otherwise a folder or hub name"""
    backend: str = "hf"
    """``hf`` (transformers generate), ``vllm`` or ``scripted``"""
    dtype: str = "float32"
    tiny: TinyModelConfig = field(default_factory=TinyModelConfig)
    history_length: int = 2
    """(observation, action) pairs of history shown in each prompt; 0 allowed"""
    max_prompt_tokens: int = 1024
    max_new_tokens: int = 64
    temperature: float = 1.0
    top_p: float = 1.0

    def __post_init__(self) -> None:
        _choice("agent.backend", self.backend, ("hf", "vllm", "scripted"))
        _choice("agent.dtype", self.dtype, ("float32", "bfloat16", "float16"))
        _positive("agent.history_length", self.history_length, allow_zero=True)
        _positive("agent.max_prompt_tokens", self.max_prompt_tokens)
        _positive("agent.max_new_tokens", self.max_new_tokens)
        _positive("agent.temperature", self.temperature, allow_zero=True)
        if not 0 < self.top_p <= 1:
            raise ConfigError(f"agent.top_p: must be in (0, 1], got {self.top_p}")


@dataclass
class AlgorithmConfig:
    """The learner, as a configuration of registered parts (ALGORITHMS.md)."""

    name: str = "grpo"
    """the recipe's name, for logs"""
    base: str = "grpo"
    """the base recipe a method (EPO, EMPG, SPEAR) composes over"""
    aggregation: str = "token-mean"
    """loss aggregation mode (a name in ``algorithms.registry.AGGREGATIONS``)"""
    lr: float = 1e-6

    def __post_init__(self) -> None:
        import algorithms.functional  # noqa: F401  (registers the parts)
        from algorithms.registry import AGGREGATIONS

        try:
            AGGREGATIONS.check(self.aggregation, "algorithm.aggregation")
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        _positive("algorithm.lr", self.lr)


@dataclass
class TrainConfig:
    """The whole run: ``agentropy train [experiment=NAME] [key=value ...]``."""

    env: EnvConfig = field(default_factory=EnvConfig)
    agent: AgentConfig = field(default_factory=AgentConfig)
    algorithm: AlgorithmConfig = field(default_factory=AlgorithmConfig)
    seed: int = 0
    iterations: int = 10
    tasks_per_iteration: int = 8
    """distinct tasks per RL iteration"""
    group_size: int = 4
    """rollouts per task (a GRPO group)"""
    play_episodes: int = 4
    """episodes the quickstart stub plays after building the model"""
    resume: str = ""
    """a run folder to continue from its last complete checkpoint"""

    def __post_init__(self) -> None:
        _positive("iterations", self.iterations, allow_zero=True)
        _positive("tasks_per_iteration", self.tasks_per_iteration)
        _positive("group_size", self.group_size)
        _positive("play_episodes", self.play_episodes, allow_zero=True)


def _register() -> None:
    cs = ConfigStore.instance()
    cs.store(name="train_schema", node=TrainConfig)


_register()


def rewrite_overrides(overrides: Sequence[str]) -> list[str]:
    """Map the convenience ``algorithm.base=X`` to Hydra's ``algorithm/base@algorithm=X``."""
    out = []
    for item in overrides:
        if item.startswith("algorithm.base="):
            item = "algorithm/base@algorithm=" + item.split("=", 1)[1]
        out.append(item)
    return out


def to_typed(cfg: DictConfig) -> TrainConfig:
    """Convert a composed config into :class:`TrainConfig`, running every check."""
    try:
        typed = OmegaConf.to_object(cfg)
    except OmegaConfBaseException as exc:
        cause = exc.__cause__
        if isinstance(cause, ConfigError):
            raise ConfigError(str(cause)) from None
        raise ConfigError(str(exc)) from None
    assert isinstance(typed, TrainConfig)
    return typed


def compose_config(overrides: Sequence[str] = ()) -> DictConfig:
    """Compose ``train.yaml`` with the given overrides (no conversion)."""
    from hydra import compose, initialize_config_module
    from hydra.errors import HydraException

    try:
        with initialize_config_module("configs", version_base="1.3"):
            return compose("train", overrides=rewrite_overrides(overrides))
    except (HydraException, OmegaConfBaseException) as exc:
        raise ConfigError(str(exc)) from None


def load_config(overrides: Sequence[str] = ()) -> TrainConfig:
    """Compose and convert: the typed config of ``agentropy train *overrides``."""
    return to_typed(compose_config(overrides))

"""Composing the configuration: Hydra's tree of ``train.yaml`` and its groups, converted once
into the typed :class:`~agentropy.configs.schema.TrainConfig`.

Methods compose over a base recipe: ``algorithm=epo algorithm.base=gigpo`` puts EPO over GiGPO
(the override is rewritten to Hydra's ``algorithm/base@algorithm=gigpo``).
"""

from __future__ import annotations

from collections.abc import Sequence

from agentropy.configs.schema import ConfigError, TrainConfig
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

__all__ = ["compose_config", "load_config", "rewrite_overrides", "to_typed"]


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
        with initialize_config_module("agentropy.configs", version_base="1.3"):
            return compose("train", overrides=rewrite_overrides(overrides))
    except (HydraException, OmegaConfBaseException) as exc:
        raise ConfigError(str(exc)) from None


def load_config(overrides: Sequence[str] = ()) -> TrainConfig:
    """Compose and convert: the typed config of ``agentropy train *overrides``."""
    return to_typed(compose_config(overrides))

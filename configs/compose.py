"""Composing the configuration: Hydra's tree of ``train.yaml`` and its groups, converted once
into the typed :class:`~agentropy.configs.schema.TrainConfig`.

Methods compose over a base recipe: ``algorithm=epo algorithm.base=gigpo`` puts EPO over GiGPO
(the override is rewritten to Hydra's ``algorithm/base@algorithm=gigpo``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from importlib.resources import files

from agentropy.configs.schema import ConfigError, TrainConfig
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

__all__ = ["check_overrides", "compose_config", "experiments", "load_config", "rewrite_overrides", "to_typed"]


def rewrite_overrides(overrides: Sequence[str]) -> list[str]:
    """Map the convenience ``algorithm.base=X`` to Hydra's ``algorithm/base@algorithm=X``."""
    out = []
    for item in overrides:
        if item.startswith("algorithm.base="):
            item = "algorithm/base@algorithm=" + item.split("=", 1)[1]
        out.append(item)
    return out


#: The config groups of ``train.yaml`` (``+group=option`` selects an option, it adds no key).
_GROUPS = ("env", "agent", "algorithm", "experiment")


def experiments() -> tuple[str, ...]:
    """The names of the shipped experiments (``configs/experiment/*.yaml``)."""
    folder = files("agentropy.configs").joinpath("experiment")
    return tuple(sorted(f.name[: -len(".yaml")] for f in folder.iterdir() if f.name.endswith(".yaml")))


def _key(item: str) -> str:
    return item.partition("=")[0].lstrip("+~")


def _is_group(key: str) -> bool:
    return "/" in key or "@" in key or key in _GROUPS


def check_overrides(overrides: Sequence[str]) -> None:
    """Refuse what Hydra would let through silently: an unknown experiment (the group is
    optional, so Hydra drops it) and a ``+key=value`` that adds a key the schema does not have.

    Raises:
        ConfigError: with the unknown name and the known ones.
    """
    for item in overrides:
        if _key(item) == "experiment" and "=" in item:
            name = item.partition("=")[2]
            known = experiments()
            if name not in ("", "null") and name not in known:
                raise ConfigError(f"unknown experiment {name!r}; known: {', '.join(known)}")
    added = [item for item in overrides if item.startswith("+") and not _is_group(_key(item))]
    if not added:
        return
    base = compose_config([o for o in overrides if o not in added], check=False)
    for item in added:
        parts = _key(item).split(".")
        for i, part in enumerate(parts):
            parent = base if i == 0 else OmegaConf.select(base, ".".join(parts[:i]),
                                                          throw_on_missing=False)
            if not isinstance(parent, DictConfig):
                break
            if part not in parent:
                schema = OmegaConf.get_type(parent)
                if schema is not None and dataclasses.is_dataclass(schema):
                    known = ", ".join(str(k) for k in parent.keys())
                    where = ".".join(parts[:i]) or "the root"
                    raise ConfigError(f"{'.'.join(parts[: i + 1])}: no such key in {where} "
                                      f"({schema.__name__}: {known})")
                break


def one_line(message: str) -> str:
    """A Hydra or OmegaConf message on one line (without Hydra's config search path)."""
    message = message.split("Config search path:")[0]
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    out = ""
    for line in lines:
        if not out:
            out = line
        elif out.endswith(":"):
            out += " " + line
        elif out[-1].isalnum() and not line[:1].isupper() and "options" in out:
            out += ", " + line
        else:
            out += ("; " if out[-1] not in ".;" else " ") + line
    return out


def to_typed(cfg: DictConfig) -> TrainConfig:
    """Convert a composed config into :class:`TrainConfig`, running every check."""
    try:
        typed = OmegaConf.to_object(cfg)
    except OmegaConfBaseException as exc:
        cause = exc.__cause__
        if isinstance(cause, ConfigError):
            raise ConfigError(one_line(str(cause))) from None
        raise ConfigError(one_line(str(exc))) from None
    assert isinstance(typed, TrainConfig)
    return typed


def compose_config(overrides: Sequence[str] = (), check: bool = True) -> DictConfig:
    """Compose ``train.yaml`` with the given overrides (no conversion); ``check`` runs
    :func:`check_overrides` first."""
    from hydra import compose, initialize_config_module
    from hydra.errors import HydraException

    overrides = rewrite_overrides(overrides)
    if check:
        check_overrides(overrides)
    try:
        with initialize_config_module("agentropy.configs", version_base="1.3"):
            return compose("train", overrides=rewrite_overrides(overrides))
    except (HydraException, OmegaConfBaseException) as exc:
        message = str(exc)
        if exc.__cause__ is not None and str(exc.__cause__).strip():
            message += ": " + str(exc.__cause__).strip().splitlines()[0]
        raise ConfigError(one_line(message)) from None


def load_config(overrides: Sequence[str] = ()) -> TrainConfig:
    """Compose and convert: the typed config of ``agentropy train *overrides``."""
    return to_typed(compose_config(overrides))

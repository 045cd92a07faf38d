"""The catalogue of named parts, and the registry that holds them.

The config layer checks names (``algorithm.advantage: grpo``, ``agent.backend: hf``) against
:data:`CATALOGUE` without importing the modules that implement them (torch, the math, the model
backends). Each implementing module registers its functions in a :class:`Registry` of the kind;
a registry refuses a name the catalogue does not declare for its kind, and imports the declaring
module the first time a name is looked up. So a new part is its own module, its config, and one
line here; ``tests/test_parts.py`` checks that catalogue and registries agree both ways.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Generic, TypeVar

__all__ = ["CATALOGUE", "Registry", "check_name", "names"]

_ADVANTAGES = "agentropy.algorithms.advantages"
_FUNCTIONAL = "agentropy.algorithms.functional"
_LOSSES = "agentropy.algorithms.losses"
_BACKENDS = "agentropy.agents.backends"
_ENTROPY_PARTS = "agentropy.algorithms.entropy_parts"

#: kind -> part name -> the module that registers it.
CATALOGUE: dict[str, dict[str, str]] = {
    "advantage estimator": {
        "gae": _ADVANTAGES,
        "grpo": _ADVANTAGES,
        "gigpo": _ADVANTAGES,
        "empg": _ADVANTAGES,
        "canon": _ENTROPY_PARTS,
        "hapo": _ENTROPY_PARTS,
    },
    "aggregation mode": {
        "token-mean": _FUNCTIONAL,
        "seq-mean-token-mean": _FUNCTIONAL,
        "seq-mean-token-sum": _FUNCTIONAL,
        "seq-mean-token-sum-norm": _FUNCTIONAL,
        "traj-mean-turn-mean-token-mean": _FUNCTIONAL,
    },
    "policy loss": {
        "ppo_clip": _LOSSES,
        "clip_cov": _LOSSES,
        "kl_cov": _LOSSES,
    },
    "lr schedule": {
        "constant": _FUNCTIONAL,
        "cosine": _FUNCTIONAL,
    },
    "learner part": {
        # built in this order, and called in this order at each of the learner's fixed points
        "entropy_bonus": "agentropy.algorithms.regularizers",
        "epo": "agentropy.algorithms.epo",
        "kl": "agentropy.algorithms.regularizers",
        "critic": "agentropy.algorithms.value",
        "replay": "agentropy.algorithms.replay",
        # the entropy interventions; ``token_loss`` rewrites chain in this order
        "hapo": _ENTROPY_PARTS,
        "aepo_a": _ENTROPY_PARTS,
        "siren": _ENTROPY_PARTS,
        "lp_reg": _ENTROPY_PARTS,
        "steer": _ENTROPY_PARTS,
        "ares": _ENTROPY_PARTS,
        "aepo_t": _ENTROPY_PARTS,
    },
    "model backend": {
        "hf": _BACKENDS,
        "vllm": _BACKENDS,
        "openai": _BACKENDS,
        "scripted": _BACKENDS,
    },
}


def names(kind: str) -> list[str]:
    """The declared names of ``kind``, in catalogue order."""
    return list(CATALOGUE[kind])


def check_name(kind: str, key: str, value: str) -> None:
    """Raise ``ValueError`` naming the config ``key`` unless ``value`` is a declared ``kind``."""
    if value not in CATALOGUE[kind]:
        raise ValueError(f"{key}: unknown {kind} {value!r}; known: {', '.join(sorted(CATALOGUE[kind]))}")


F = TypeVar("F", bound=Callable)


class Registry(Generic[F]):
    """A named set of functions (or classes) of one kind.

    With ``declared`` (name -> module), only those names can be registered, and :meth:`get`
    imports a name's module on first use; without it, any name can be registered.

    Example:
        >>> SCALERS: Registry = Registry("scaler")
        >>> @SCALERS.register("double")
        ... def double(x):
        ...     return 2 * x
        >>> SCALERS.get("double")(3)
        6
        >>> SCALERS.get("triple")
        Traceback (most recent call last):
        ...
        KeyError: "unknown scaler 'triple'; known: double"
    """

    def __init__(self, kind: str, declared: Mapping[str, str] | None = None) -> None:
        self.kind = kind
        self.declared = declared
        self._fns: dict[str, F] = {}

    @classmethod
    def of(cls, kind: str) -> Registry:
        """The registry of a catalogue kind: it accepts only the names the catalogue declares."""
        return cls(kind, CATALOGUE[kind])

    def register(self, name: str) -> Callable[[F], F]:
        if self.declared is not None and name not in self.declared:
            raise ValueError(f"{self.kind} {name!r} is not declared in agentropy.configs.parts.CATALOGUE")

        def decorator(fn: F) -> F:
            if name in self._fns:
                raise ValueError(f"{self.kind} {name!r} is already registered")
            self._fns[name] = fn
            return fn

        return decorator

    def get(self, name: str) -> F:
        if name not in self._fns and self.declared is not None and name in self.declared:
            importlib.import_module(self.declared[name])
        try:
            return self._fns[name]
        except KeyError:
            raise KeyError(f"unknown {self.kind} {name!r}; known: {', '.join(self.names())}") from None

    def load_all(self) -> None:
        """Import every declaring module (so :meth:`names` lists every declared name)."""
        for module in dict.fromkeys((self.declared or {}).values()):
            importlib.import_module(module)

    def names(self) -> list[str]:
        """Declared and registered names, sorted."""
        return sorted({*self._fns, *(self.declared or {})})

    def registered(self) -> list[str]:
        """The names registered so far, sorted."""
        return sorted(self._fns)

    def __contains__(self, name: object) -> bool:
        return name in self._fns or name in (self.declared or {})

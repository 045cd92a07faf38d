"""Name -> function registries, one signature per kind.

An algorithm is a configuration of registered parts: the learner looks parts up by the names in
its typed config and calls them all the same way, so it never branches on an algorithm's name.
Unknown names fail when the config is built, listing the known ones.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

F = TypeVar("F", bound=Callable)

__all__ = ["Registry", "ADVANTAGES", "AGGREGATIONS", "POLICY_LOSSES"]


class Registry(Generic[F]):
    """A named set of functions of one kind.

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

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._fns: dict[str, F] = {}

    def register(self, name: str) -> Callable[[F], F]:
        def decorator(fn: F) -> F:
            if name in self._fns:
                raise ValueError(f"{self.kind} {name!r} is already registered")
            self._fns[name] = fn
            return fn

        return decorator

    def get(self, name: str) -> F:
        try:
            return self._fns[name]
        except KeyError:
            raise KeyError(
                f"unknown {self.kind} {name!r}; known: {', '.join(self.names())}"
            ) from None

    def check(self, name: str, key: str) -> None:
        """Raise ``ValueError`` naming the config ``key`` if ``name`` is not registered."""
        if name not in self._fns:
            raise ValueError(f"{key}: unknown {self.kind} {name!r}; known: {', '.join(self.names())}")

    def names(self) -> list[str]:
        return sorted(self._fns)

    def __contains__(self, name: object) -> bool:
        return name in self._fns


#: Loss aggregation modes (:mod:`agentropy.algorithms.functional`):
#: ``fn(mask (N, T) float, traj_ids (N,) long, norm_length: int | None) -> weights (N, T)``;
#: the aggregated loss is ``(weights * loss).sum()``.
AGGREGATIONS: Registry[Callable] = Registry("aggregation mode")

#: Advantage estimators (:mod:`agentropy.algorithms.advantages`):
#: ``fn(batch: TokenBatch, cfg: AlgorithmConfig, inputs: AdvantageInputs) -> AdvantageOutput``.
ADVANTAGES: Registry[Callable] = Registry("advantage estimator")

#: Policy losses (:mod:`agentropy.algorithms.losses`):
#: ``fn(inputs: PolicyInputs, cfg: PolicyLossConfig) -> LossOutput`` (per-token matrices).
POLICY_LOSSES: Registry[Callable] = Registry("policy loss")

"""Name -> function registries of the learner's parts, one signature per kind.

An algorithm is a configuration of registered parts: the learner looks parts up by the names in
its typed config and calls them all the same way, so it never branches on an algorithm's name.
The names are declared in :data:`agentropy.configs.parts.CATALOGUE` (which the config layer
checks without importing this package); a registry imports a name's module when it is first
looked up.
"""

from __future__ import annotations

from collections.abc import Callable

from agentropy.configs.parts import Registry

__all__ = ["Registry", "ADVANTAGES", "AGGREGATIONS", "LEARNER_PARTS", "LR_SCHEDULES", "POLICY_LOSSES"]

#: Loss aggregation modes (:mod:`agentropy.algorithms.functional`):
#: ``fn(mask (N, T) float, traj_ids (N,) long, norm_length: int | None) -> weights (N, T)``;
#: the aggregated loss is ``(weights * loss).sum()``.
AGGREGATIONS: Registry[Callable] = Registry.of("aggregation mode")

#: Advantage estimators (:mod:`agentropy.algorithms.advantages`):
#: ``fn(batch: TokenBatch, cfg: AlgorithmConfig, inputs: AdvantageInputs) -> AdvantageOutput``.
ADVANTAGES: Registry[Callable] = Registry.of("advantage estimator")

#: Policy losses (:mod:`agentropy.algorithms.losses`):
#: ``fn(inputs: PolicyInputs, cfg: PolicyLossConfig) -> LossOutput`` (per-token matrices).
POLICY_LOSSES: Registry[Callable] = Registry.of("policy loss")

#: Learning-rate schedules after the warmup (:mod:`agentropy.algorithms.functional`):
#: ``fn(progress: float in [0, 1], min_lr_ratio: float) -> factor``.
LR_SCHEDULES: Registry[Callable] = Registry.of("lr schedule")

#: The learner's optional parts (the protocol: :mod:`agentropy.algorithms.parts`):
#: ``fn(cfg: AlgorithmConfig, ctx: PartContext) -> LearnerPart | None`` (None: not used by ``cfg``).
LEARNER_PARTS: Registry[Callable] = Registry.of("learner part")

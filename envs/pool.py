"""EnvPool: many environments behind one batched interface, stepping only the active ones.

Multi-turn LLM episodes end at different turns, and the rollout loop generates only for the
environments still playing, so the pool is addressed by *slot*: ``reset(slots, ...)`` and
``step(slots, actions)`` touch exactly the slots named. (Gymnasium's VectorEnv steps every
sub-env and autoresets, which fits this badly; see STYLE.md.)

A slot whose env raises, or whose worker dies or hangs, does not take the batch down: its
result carries a ``failure`` reason, the env is rebuilt before the slot's next reset, and the
rollout collector reports that episode as failed while the others go on.

Backends share this interface: ``serial`` (in-process, for debugging and cheap envs) and
``subprocess`` (worker processes; see :func:`make_pool`).
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import gymnasium as gym

__all__ = ["EnvPool", "EnvSpec", "ResetResult", "SerialPool", "StepResult", "make_pool"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EnvSpec:
    """How to make one environment: ``gymnasium.make(env_id, **kwargs)``.

    Attributes:
        env_id: a registered id.
        kwargs: keyword arguments for ``gymnasium.make`` (``max_episode_steps`` included).
    """

    env_id: str
    kwargs: Mapping[str, Any] = field(default_factory=dict)

    def make(self) -> gym.Env:
        import envs  # noqa: F401  (registers the ids, also inside worker processes)

        return gym.make(self.env_id, **dict(self.kwargs))


@dataclass(frozen=True)
class ResetResult:
    observation: str
    info: dict[str, Any]
    failure: str = ""
    """why the reset failed ("" when it did not); observation and info are then empty"""


@dataclass(frozen=True)
class StepResult:
    observation: str
    reward: float
    terminated: bool
    truncated: bool
    info: dict[str, Any]
    failure: str = ""
    """why the step failed ("" when it did not); the episode in this slot is lost"""


class EnvPool(Protocol):
    """The interface every backend implements."""

    specs: tuple[EnvSpec, ...]

    def __len__(self) -> int: ...

    def reset(
        self,
        slots: Sequence[int],
        seeds: Sequence[int | None],
        options: Sequence[Mapping[str, Any] | None] | None = None,
    ) -> list[ResetResult]:
        """Reset the envs in ``slots`` (one seed and options per slot), in the given order."""
        ...

    def step(self, slots: Sequence[int], actions: Sequence[str]) -> list[StepResult]:
        """Step the envs in ``slots`` with one action each; results in the given order."""
        ...

    def close(self) -> None:
        """Close every env and stop every worker. Safe to call twice."""
        ...


def _failure(exc: BaseException) -> str:
    last = traceback.format_exception_only(type(exc), exc)[-1].strip()
    return f"env error: {last}"


class SerialPool:
    """All envs in this process, stepped one after the other.

    No timeouts: an env that hangs hangs the caller. Use it to debug and for envs that are
    cheap per step; use the subprocess backend for isolation and parallelism.
    """

    def __init__(self, specs: Sequence[EnvSpec]) -> None:
        self.specs = tuple(specs)
        self._envs: list[gym.Env | None] = [None] * len(self.specs)

    def __len__(self) -> int:
        return len(self.specs)

    def _env(self, slot: int) -> gym.Env:
        env = self._envs[slot]
        if env is None:
            env = self._envs[slot] = self.specs[slot].make()
        return env

    def _discard(self, slot: int) -> None:
        env, self._envs[slot] = self._envs[slot], None
        if env is not None:
            try:
                env.close()
            except Exception:  # noqa: BLE001  (a broken env may fail to close too)
                log.warning("slot %d: close failed after an error", slot, exc_info=True)

    def reset(
        self,
        slots: Sequence[int],
        seeds: Sequence[int | None],
        options: Sequence[Mapping[str, Any] | None] | None = None,
    ) -> list[ResetResult]:
        options = options if options is not None else [None] * len(slots)
        if not len(slots) == len(seeds) == len(options):
            raise ValueError("reset(): slots, seeds and options must have the same length")
        out = []
        for slot, seed, opts in zip(slots, seeds, options, strict=True):
            try:
                obs, info = self._env(slot).reset(seed=seed, options=dict(opts or {}))
                out.append(ResetResult(obs, info))
            except Exception as exc:  # noqa: BLE001
                log.warning("slot %d: reset failed: %s", slot, exc)
                self._discard(slot)
                out.append(ResetResult("", {}, failure=_failure(exc)))
        return out

    def step(self, slots: Sequence[int], actions: Sequence[str]) -> list[StepResult]:
        if len(slots) != len(actions):
            raise ValueError("step(): slots and actions must have the same length")
        out = []
        for slot, action in zip(slots, actions, strict=True):
            try:
                obs, reward, terminated, truncated, info = self._env(slot).step(action)
                out.append(StepResult(obs, float(reward), terminated, truncated, info))
            except Exception as exc:  # noqa: BLE001
                log.warning("slot %d: step failed: %s", slot, exc)
                self._discard(slot)
                out.append(StepResult("", 0.0, False, False, {}, failure=_failure(exc)))
        return out

    def close(self) -> None:
        for slot in range(len(self._envs)):
            self._discard(slot)

    def __enter__(self) -> SerialPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def make_pool(
    specs: Sequence[EnvSpec], backend: str = "serial", *, num_workers: int = 2, timeout_s: float = 120.0
) -> EnvPool:
    """Build a pool of ``specs`` with the named backend (``serial`` or ``subprocess``)."""
    if backend == "serial":
        return SerialPool(specs)
    raise ValueError(f"unknown EnvPool backend {backend!r}; known: serial")

"""Rollout engines as Ray actors (``cluster=ray cluster.rollout_engines=N``).

:class:`RayEngines` is a :class:`~agentropy.agents.backends.base.Backend` whose ``generate``
spreads one batch of prompts over N :class:`RolloutEngine` actors, each holding an ordinary
backend (``hf`` on CPU, ``vllm`` on GPU, chosen by ``agent.backend``), and puts their answers
back in the order of the prompts. The collector does not know it is there.

Routing. A prompt's :class:`~agentropy.agents.backends.base.TurnContext` names its episode
(``episode``): an episode seen before goes to the engine that served it (its prefix is in that
engine's cache), a new one to the engine with the fewest prompts of this call so far (ties: the
fewest prompt tokens). The collector generates for every live episode at each round, so an
episode missing from a call has ended and is forgotten. Without contexts, prompts are balanced
the same way, one by one.

Weights. :meth:`RayEngines.update_weights` puts the state dict in Ray's object store once, as
flat byte arrays that every engine reads in place
(:func:`~agentropy.agents.backends.weight_sync.shareable`), and every engine loads it
from there (``sync/engine_bytes`` and ``sync/engine_seconds`` in
:meth:`RayEngines.sync_metrics`); the reference is kept so that a replaced engine can load the
current weights. Every answer carries the engine's ``policy_version``; an engine that answers
with another version than the pool's is a bug and raises.

Failures. An engine that dies (its process killed, out of memory) fails only the prompts it was
given: they come back as :meth:`Generation.failed <agentropy.agents.backends.base.Generation.failed>`
(the collector ends those episodes as failed, with the reason) and a new engine with the current
weights takes its place before the next call.

With ``cluster.weight_sync=broadcast`` (and learner ranks as actors), learner rank 0 and the
engines form a process group of their own instead (gloo on CPU, NCCL on GPUs;
:mod:`agentropy.agents.backends.weight_sync`) and rank 0 broadcasts each update to every engine;
an engine lost then ends the run, since the group cannot take a new member.

Not run here (no GPU): an engine with ``cluster.engine_gpus`` > 1 runs vLLM tensor-parallel over
its GPUs (vLLM's own worker processes inside the actor's GPUs), and the NCCL broadcast.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from agentropy.agents.backends.base import Generation, SamplingParams, TurnContext
from agentropy.agents.backends.weight_sync import Manifest, broadcast_state, open_group, shareable, unshare
from torch import Tensor

if TYPE_CHECKING:
    from agentropy.configs.schema import AgentConfig, ClusterConfig

__all__ = ["RayEngines", "RolloutEngine", "placement_group_of_actor", "route", "wait_all"]

log = logging.getLogger(__name__)

#: seconds to wait for a new engine to load its model
ENGINE_START_TIMEOUT_S = 600.0
#: seconds an engine has to shut its backend down before it is killed
ENGINE_CLOSE_TIMEOUT_S = 30.0


class RolloutEngine:
    """One generation engine (run as a Ray actor by :class:`RayEngines`): the backend that
    ``config.backend`` names, built from ``model_path`` inside the actor."""

    def __init__(self, config: AgentConfig, model_path: str, threads: int, tensor_parallel_size: int) -> None:
        torch.set_num_threads(max(threads, 1))
        if config.backend == "vllm":
            from agentropy.agents.backends.vllm import VLLMBackend

            self.backend: Any = VLLMBackend.from_config(config, model_path,
                                                        tensor_parallel_size=tensor_parallel_size)
        else:
            from agentropy.agents.backends import BACKENDS

            self.backend, _ = BACKENDS.get(config.backend)(config, model_path)

    def where(self) -> tuple[str, int, str | None]:
        """This engine's node address, process id and placement group (None: none)."""
        import ray

        return ray.util.get_node_ip_address(), os.getpid(), placement_group_of_actor()

    def generate(self, prompt_ids: list[list[int]], sampling: SamplingParams,
                 contexts: list[TurnContext] | None) -> tuple[list[Generation], int]:
        return self.backend.generate(prompt_ids, sampling, contexts), self.backend.policy_version

    def update_weights(self, shared: dict[str, tuple[Any, str, tuple[int, ...]]], version: int) -> int:
        self.backend.update_weights(unshare(shared), version=version)
        return self.backend.policy_version

    def open_sync_group(self, address: str, rank: int, world: int, manifest: Manifest, nccl: bool) -> None:
        """Join the weight-sync group of learner rank 0 (``cluster.weight_sync=broadcast``)."""
        self._group, self._manifest, self._nccl = open_group(address, rank, world, nccl=nccl), manifest, nccl

    def receive_weights(self, version: int) -> int:
        """Receive learner rank 0's broadcast and load it."""
        state = broadcast_state(self._group, self._manifest, device="cuda" if self._nccl else "cpu")
        self.backend.update_weights(state, version=version)
        return self.backend.policy_version

    def sleep(self) -> None:
        sleep = getattr(self.backend, "sleep", None)
        if sleep is not None:
            sleep()

    def close(self) -> None:
        self.backend.close()


def placement_group_of_actor() -> str | None:
    """The hex id of the placement group the calling actor runs in, or None."""
    import ray

    group = ray.get_runtime_context().get_placement_group_id()
    return group or None


def wait_all(ray: Any, refs: Sequence[Any]) -> None:
    """Wait for every reference; the first that failed raises at once (the others may be waiting
    in a collective for it forever)."""
    pending = list(refs)
    while pending:
        ready, pending = ray.wait(pending, num_returns=1)
        ray.get(ready)


def route(keys: Sequence[Any], lengths: Sequence[int], home: Mapping[Any, int], engines: int) -> list[int]:
    """The engine of each prompt: its episode's ``home`` engine if it has one, else the engine
    with the fewest prompts so far in this call (ties: fewest prompt tokens, then lowest index).

    Args:
        keys: each prompt's episode key (None: no episode, balanced alone).
        lengths: each prompt's length in tokens.
        home: episode key -> engine, from earlier calls.
        engines: the number of engines.
    """
    load = [[0, 0] for _ in range(engines)]
    out: list[int | None] = [None] * len(keys)
    for i, key in enumerate(keys):
        if key is not None and key in home:
            out[i] = home[key]
            load[home[key]][0] += 1
            load[home[key]][1] += lengths[i]
    for i in range(len(keys)):
        if out[i] is None:
            e = min(range(engines), key=lambda k: (load[k][0], load[k][1], k))
            out[i] = e
            load[e][0] += 1
            load[e][1] += lengths[i]
    return [int(e) for e in out if e is not None]


class RayEngines:
    """N rollout engines as Ray actors behind the backend interface. See the module docstring.

    Args:
        config: the agent config (``backend``, ``dtype``, the backend's own settings).
        model_path: the model folder every engine loads at start.
        cluster: ``rollout_engines``, ``engine_cpus`` and ``engine_gpus``.
        group: with ``cluster.colocate``, the learner's placement group: engine ``e`` runs in its
            bundle ``e`` and takes half of ``learner_gpus_per_rank`` (None: placed by Ray).
    """

    def __init__(self, config: AgentConfig, model_path: str | Path, cluster: ClusterConfig, *,
                 group: Any = None) -> None:
        import ray

        self._ray = ray
        self.name = config.backend
        self.config, self.model_path = config, str(model_path)
        self.group = group
        self.cpus = cluster.engine_cpus
        # colocated, an engine takes half of its rank's GPUs (the rank the other half)
        self.gpus = cluster.learner_gpus_per_rank / 2 if group is not None else cluster.engine_gpus
        self.engines: list[Any] = []
        self._home: dict[Any, int] = {}
        self._version = 0
        self._weights: Any = None
        self._sync: dict[str, float] = {}
        self._broadcast: Callable[[], list[Any]] | None = None
        self._manifest: Manifest | None = None
        self.replaced = 0
        try:
            self.engines = [self._start(e) for e in range(cluster.rollout_engines)]
            self._wait([e.where.remote() for e in self.engines])
        except BaseException:
            self.close()
            raise
        for e, (node, pid, group) in enumerate(self.where()):
            log.info("placement: rollout engine %d (%s, %g CPU, %g GPU) on %s, pid %d%s", e, self.name,
                     self.cpus, self.gpus, node, pid,
                     f", bundle {e} of the learner's placement group {group}" if group else "")

    def _start(self, e: int) -> Any:
        options: dict[str, Any] = {"num_cpus": self.cpus, "num_gpus": self.gpus}
        if self.group is not None:  # colocated: engine e in learner rank e's bundle
            from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

            options["scheduling_strategy"] = PlacementGroupSchedulingStrategy(
                placement_group=self.group, placement_group_bundle_index=e)
        actor = self._ray.remote(RolloutEngine).options(**options)
        return actor.remote(self.config, self.model_path, max(int(self.cpus), 1), max(int(self.gpus), 1))

    def where(self) -> list[tuple[str, int, str | None]]:
        """Each engine's node address, process id and placement group (hex id, or None)."""
        return self._ray.get([e.where.remote() for e in self.engines])

    def _wait(self, refs: list[Any]) -> list[Any]:
        ready, _ = self._ray.wait(refs, num_returns=len(refs), timeout=ENGINE_START_TIMEOUT_S)
        if len(ready) < len(refs):
            raise RuntimeError(f"cluster.rollout_engines: {len(refs) - len(ready)} engine(s) did not start "
                               f"in {ENGINE_START_TIMEOUT_S:g} s (free: {self._ray.available_resources()})")
        return self._ray.get(refs)

    @property
    def policy_version(self) -> int:
        return self._version

    def pids(self) -> list[int]:
        """The engines' process ids (for tests and the placement log)."""
        return [pid for _, pid, _ in self.where()]

    def generate(
        self,
        prompt_ids: Sequence[Sequence[int]],
        sampling: SamplingParams,
        contexts: Sequence[TurnContext] | None = None,
    ) -> list[Generation]:
        """Each prompt on its episode's engine (see :func:`route`), all engines at once. With
        ``sampling.seed`` set, engine ``e`` samples with ``seed + e`` (the same seed on two
        engines would draw the same tokens for a group's identical first prompts)."""
        n = len(prompt_ids)
        keys = [c.episode for c in contexts] if contexts is not None else [None] * n
        engine_of = route(keys, [len(p) for p in prompt_ids], self._home, len(self.engines))
        self._home = {k: e for k, e in zip(keys, engine_of, strict=True) if k is not None}
        calls = []
        for e, engine in enumerate(self.engines):
            rows = [i for i in range(n) if engine_of[i] == e]
            if not rows:
                continue
            own = sampling if sampling.seed is None else replace(sampling, seed=sampling.seed + e)
            ref = engine.generate.remote([list(prompt_ids[i]) for i in rows], own,
                                         [contexts[i] for i in rows] if contexts is not None else None)
            calls.append((e, rows, ref))
        out: list[Generation | None] = [None] * n
        for e, rows, ref in calls:
            try:
                gens, version = self._ray.get(ref)
            except self._ray.exceptions.RayActorError as exc:
                reason = f"rollout engine {e} died: {str(exc).splitlines()[0][:200]}"
                if self._broadcast is not None:
                    raise RuntimeError(f"{reason}; with cluster.weight_sync=broadcast a lost engine ends "
                                       "the run (resume= continues from the last checkpoint)") from None
                log.warning("%s; %d prompt(s) failed; starting a new engine", reason, len(rows))
                gens, version = [Generation.failed(reason)] * len(rows), self._version
                self._replace(e)
            if version != self._version:
                raise RuntimeError(f"rollout engine {e} answered with policy version {version}, "
                                   f"the pool is at {self._version}")
            for i, gen in zip(rows, gens, strict=True):
                out[i] = gen
        return [g for g in out if g is not None]

    def _replace(self, e: int) -> None:
        """A new engine in slot ``e``, with the current weights."""
        self._ray.kill(self.engines[e], no_restart=True)
        self.engines[e] = self._start(e)
        self._wait([self.engines[e].where.remote()])
        if self._weights is not None:
            self._ray.get(self.engines[e].update_weights.remote(self._weights, self._version))
        self._home = {k: v for k, v in self._home.items() if v != e}
        self.replaced += 1

    def join_broadcast(self, address: str, manifest: Manifest, nccl: bool,
                       send: Callable[[], list[Any]]) -> list[Any]:
        """Make the engines members 1..N of the weight-sync group at ``address`` (learner rank 0
        is member 0; returns the calls to wait for, with rank 0's own) and take every later
        update from ``send()``, the calls that make rank 0 broadcast (``cluster.weight_sync=broadcast``)."""
        world = 1 + len(self.engines)
        self._broadcast, self._manifest = send, manifest
        return [e.open_sync_group.remote(address, 1 + i, world, manifest, nccl)
                for i, e in enumerate(self.engines)]

    def update_weights(self, state_dict: Mapping[str, Tensor], *, version: int | None = None) -> None:
        """Put ``state_dict`` in the object store once; every engine loads it from there. With a
        broadcast (:meth:`join_broadcast`) the engines receive learner rank 0's weights instead,
        the ones the driver's ``state_dict`` came from."""
        t0 = time.perf_counter()
        version = self._version + 1 if version is None else version
        if self._broadcast is not None:
            self._receive_broadcast(version)
            assert self._manifest is not None
            self._sync = {"sync/engine_bytes": float(self._manifest.total_bytes),
                          "sync/engine_seconds": time.perf_counter() - t0}
            return
        shared = shareable(state_dict)
        self._weights = self._ray.put(shared)
        self._version = version
        refs = [engine.update_weights.remote(self._weights, version) for engine in self.engines]
        for e, ref in enumerate(refs):
            try:
                self._ray.get(ref)
            except self._ray.exceptions.RayActorError:
                log.warning("rollout engine %d died during the weight update; starting a new one", e)
                self._replace(e)
        size = sum(data.nbytes for data, _, _ in shared.values())
        self._sync = {"sync/engine_bytes": float(size), "sync/engine_seconds": time.perf_counter() - t0}

    def _receive_broadcast(self, version: int) -> None:
        assert self._broadcast is not None
        try:
            wait_all(self._ray, [e.receive_weights.remote(version) for e in self.engines] + self._broadcast())
        except Exception as exc:
            first = str(exc).splitlines()[0][:300]
            raise RuntimeError(f"weight broadcast to the rollout engines failed: {first}") from None
        self._version = version

    def sync_metrics(self) -> dict[str, float]:
        """Bytes and seconds of the last weight update (object store put + every engine's load)."""
        return dict(self._sync)

    def sleep(self) -> None:
        """Every engine's ``sleep`` (vLLM frees its GPU memory; a no-op for the others)."""
        self._ray.get([e.sleep.remote() for e in self.engines])

    def close(self) -> None:
        """Let each engine shut its backend down (a vLLM engine stops its worker processes; at
        most :data:`ENGINE_CLOSE_TIMEOUT_S`), then kill the actors; safe to call twice."""
        closing = [engine.close.remote() for engine in self.engines]
        if closing:
            self._ray.wait(closing, num_returns=len(closing), timeout=ENGINE_CLOSE_TIMEOUT_S)
        for engine in self.engines:
            self._ray.kill(engine, no_restart=True)
        self.engines = []
        self._weights = None

"""Learner ranks as Ray actors (``cluster=ray cluster.learner_ranks=K``, K > 1).

:class:`RemoteLearner` is what the trainer holds in place of a :class:`Learner` when the learner
has K > 1 ranks: it has the methods the trainer calls (``update``, ``records``,
``rollout_sampling``, ``branch_rule``, ``rollout_requests``, ``merge_rollouts``,
``state_dict``, ``load_state_dict``) and forwards each to K :class:`LearnerRank` actors. Each
rank joins a torch.distributed process group (gloo on CPU; NCCL when the rank was given a GPU),
builds the driver's model from the same files, loads the driver's current weights, shards it
with FSDP2 (:func:`agentropy.algorithms.distributed.shard`) and builds the same
:class:`Learner`; :mod:`agentropy.algorithms.distributed` says how K ranks give the
single-process update.

Where the state lives:

* The policy's trained weights and the optimizer state: sharded over the ranks. After each
  update rank 0 sends the full weights once through the object store (as byte arrays the driver
  reads in place) and the driver loads them
  into its own model, the one its rollout backend samples from (``sync/bytes``,
  ``sync/seconds`` in the update's metrics); the driver's model is what checkpoints save.
* The parts' state (EPO's entropy history, SPEAR's buffers, AEPO-T's round, ...), the step, the
  LR schedule and the learner's random generator: a copy on every rank, the same on all of them
  (every rank sees the whole batch and makes the same calls). So a call that changes state
  (``update``, ``rollout_requests``, ``merge_rollouts``, ``load_state_dict``) goes to every rank,
  and its answer is taken from rank 0; a call that only reads (``records``,
  ``rollout_sampling``, ``branch_rule``) goes to rank 0 alone.
* The driver keeps no learner state at all.

A step's batch (and a checkpoint's state) is put in the object store once; every rank gets the
reference. ``state_dict`` is the single-process format (full tensors, the optimizer's
parameters numbered as one process numbers them), so a checkpoint resumes with any number of
ranks. :meth:`RemoteLearner.close` kills the actors and removes their placement group; a rank that
dies fails the call that was waiting for it at once (the trainer then closes the run).

Ray is imported only here and only when a RemoteLearner is made: ``cluster=local`` never does.
Only CPU ranks over gloo were run; the NCCL/GPU branch is written but untested.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import torch
from agentropy.algorithms.learner import Learner, LearnerSpec, UpdateResult
from agentropy.configs.schema import ClusterConfig
from torch import nn

if TYPE_CHECKING:
    from agentropy.agents.backends.base import SamplingParams
    from agentropy.agents.backends.ray_engines import RayEngines
    from agentropy.agents.backends.weight_sync import Manifest
    from agentropy.algorithms.data import TokenBatch, Trajectory
    from agentropy.algorithms.parts import RolloutRequest
    from agentropy.algorithms.rollout import BranchRule

__all__ = ["LearnerRank", "RemoteLearner"]

log = logging.getLogger(__name__)



class LearnerRank:
    """One data-parallel learner rank (run as a Ray actor by :class:`RemoteLearner`)."""

    def __init__(self, rank: int, world: int, spec: LearnerSpec, threads: int, *,
                 timeout_s: float, mixed_precision: bool = False, offload: bool = False) -> None:
        self.rank, self.world, self.spec = rank, world, spec
        self.mixed_precision, self.offload, self.timeout_s = mixed_precision, offload, timeout_s
        self.learner: Learner | None = None
        self.model: nn.Module | None = None
        torch.set_num_threads(max(threads, 1))

    def rendezvous(self) -> str:
        """``tcp://IP:PORT`` on this rank's node with a port free now (rank 0 is asked)."""
        import ray

        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("", 0))
            port = s.getsockname()[1]
        return f"tcp://{ray.util.get_node_ip_address()}:{port}"

    def where(self) -> tuple[str, int, list[int], str | None]:
        """This rank's node address, process id, the GPU ids Ray gave it and its placement group."""
        import ray
        from agentropy.agents.backends.ray_engines import placement_group_of_actor

        return (ray.util.get_node_ip_address(), os.getpid(), [int(g) for g in ray.get_gpu_ids()],
                placement_group_of_actor())

    def setup(self, address: str, weights: dict[str, torch.Tensor]) -> int:
        """Join the process group at ``address``, build the model with the driver's ``weights``,
        shard it and build the learner; returns the rank."""
        import datetime
        import random

        import numpy as np
        import ray
        import torch.distributed as dist
        from agentropy.agents.tiny import load_pretrained
        from agentropy.algorithms.distributed import shard

        gpu = torch.cuda.is_available() and bool(ray.get_gpu_ids())
        device = torch.device("cuda", 0) if gpu else torch.device("cpu")  # Ray sets CUDA_VISIBLE_DEVICES
        if gpu:
            torch.cuda.set_device(device)
        dist.init_process_group("nccl" if gpu else "gloo", init_method=address, rank=self.rank,
                                world_size=self.world, timeout=datetime.timedelta(seconds=self.timeout_s))
        random.seed(self.spec.seed)
        np.random.seed(self.spec.seed % 2**32)
        torch.manual_seed(self.spec.seed)
        model, tokenizer = load_pretrained(self.spec.model_path, dtype=self.spec.master_dtype)
        model.load_state_dict(weights)
        model.to(device).eval()
        compute = getattr(torch, self.spec.compute_dtype)
        master = getattr(torch, self.spec.master_dtype)
        gather = compute if self.mixed_precision and compute != master else None
        self.model = shard(model, param_dtype=gather, offload=self.offload)
        self.learner = self.spec.build(self.model, tokenizer, device=device)
        return self.rank

    def call(self, method: str, *args: Any) -> Any:
        """``learner.method(*args)`` (its result on rank 0 only, None elsewhere: every rank's is
        the same)."""
        out = getattr(self.learner, method)(*args)
        return out if self.rank == 0 else None

    def weights(self) -> dict[str, Any] | None:
        """The full policy weights on CPU as :func:`~agentropy.agents.backends.weight_sync.shareable`
        arrays (rank 0; None elsewhere); every rank must be asked."""
        from agentropy.agents.backends.weight_sync import shareable
        from agentropy.algorithms.distributed import full_model_state

        self.model.eval()
        state = full_model_state(self.model)
        return shareable(state) if self.rank == 0 else None

    def open_sync_group(self, address: str, world: int, manifest: Manifest, nccl: bool) -> None:
        """Rank 0: host the weight-sync group with the rollout engines (``cluster.weight_sync=broadcast``)."""
        from agentropy.agents.backends.weight_sync import open_group

        self._sync = (open_group(address, 0, world, nccl=nccl), manifest, nccl)

    def broadcast_weights(self) -> None:
        """Every rank joins the gather of the full weights; rank 0 casts them to the manifest's
        dtypes and broadcasts them to the engines."""
        from agentropy.agents.backends.weight_sync import broadcast_state
        from agentropy.algorithms.distributed import full_model_state

        self.model.eval()
        state = full_model_state(self.model)
        if self.rank == 0:
            group, manifest, nccl = self._sync
            cast = {k: state[k].to(getattr(torch, d))
                    for k, d in zip(manifest.names, manifest.dtypes, strict=True)}
            broadcast_state(group, manifest, cast, device="cuda" if nccl else "cpu")


class RemoteLearner:
    """The driver's handle on K learner ranks; used by the trainer as it uses a :class:`Learner`.

    Args:
        spec: how each rank builds its learner.
        model: the driver's policy (the rollout backend's): its weights start the ranks, and the
            ranks' weights are loaded into it after every update.
        cluster: ``learner_ranks``, the per-rank CPUs and GPUs and the placement strategy.
        group: the placement group to run in (the run's, shared with colocated engines); None
            makes one of its own.
    """

    def __init__(self, spec: LearnerSpec, model: nn.Module, cluster: ClusterConfig, *,
                 group: Any = None) -> None:
        import ray
        from agentropy.algorithms.cluster import make_learner_group
        from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

        self.model = model
        self.world = cluster.learner_ranks
        self.gpus = cluster.learner_gpus_per_rank
        self._ray = ray
        # colocated engines take the other half of each bundle's GPUs
        rank_gpus = self.gpus / 2 if cluster.colocate else self.gpus
        self._pg = None  # a placement group of our own, removed at close()
        self.ranks: list[Any] = []
        try:
            if group is None:
                group = self._pg = make_learner_group(cluster)
            actor = ray.remote(LearnerRank)
            threads = max(int(cluster.learner_cpus_per_rank), 1)
            self.ranks = [
                actor.options(
                    num_cpus=cluster.learner_cpus_per_rank, num_gpus=rank_gpus,
                    scheduling_strategy=PlacementGroupSchedulingStrategy(
                        placement_group=group, placement_group_bundle_index=i),
                ).remote(i, self.world, spec, threads, mixed_precision=cluster.learner_mixed_precision,
                         offload=cluster.learner_offload, timeout_s=cluster.collective_timeout_s)
                for i in range(self.world)
            ]
            address = ray.get(self.ranks[0].rendezvous.remote())
            weights = ray.put({k: v.detach().cpu() for k, v in model.state_dict().items()})
            ray.get([r.setup.remote(address, weights) for r in self.ranks])
        except BaseException:
            self.close()
            raise
        for i, (node, pid, gpus, group) in enumerate(self.where()):
            log.info("placement: learner rank %d on %s, pid %d%s, bundle %d of placement group %s (%s), "
                     "rendezvous %s", i, node, pid, f", GPUs {gpus}" if gpus else "", i, group,
                     cluster.learner_placement, address)

    def where(self) -> list[tuple[str, int, list[int], str | None]]:
        """Each rank's node address, process id, GPU ids and placement group (hex id)."""
        return self._ray.get([r.where.remote() for r in self.ranks])

    # -- calls that change the ranks' state: every rank, rank 0's answer ------------------------
    def _all(self, method: str, *args: Any) -> Any:
        return self._gather([r.call.remote(method, *args) for r in self.ranks])

    def _first(self, method: str, *args: Any) -> Any:
        return self._ray.get(self.ranks[0].call.remote(method, *args))

    def _gather(self, refs: list[Any]) -> Any:
        """Rank 0's answer once every rank has answered; the first rank to fail raises at once
        (the others may wait in a collective for it forever)."""
        from agentropy.agents.backends.ray_engines import wait_all

        wait_all(self._ray, refs)
        return self._ray.get(refs[0])

    def update(self, batch: TokenBatch, labels: Sequence[str] | None = None) -> UpdateResult:
        """:meth:`Learner.update` on every rank (the batch put in the object store once), then the
        full weights into the driver's model."""
        result = self._all("update", self._ray.put(batch), labels)
        metrics = {**result.metrics, **self.pull_weights()}
        return UpdateResult(metrics=metrics, row_advantages=result.row_advantages, records=result.records)

    def pull_weights(self) -> dict[str, float]:
        """Load the ranks' full weights into the driver's model; returns ``sync/bytes`` and
        ``sync/seconds`` (gather on the ranks, object store, load)."""
        from agentropy.agents.backends.weight_sync import unshare

        t0 = time.perf_counter()
        state = unshare(self._gather([r.weights.remote() for r in self.ranks]))
        self.model.load_state_dict(state)
        seconds = time.perf_counter() - t0
        size = sum(t.numel() * t.element_size() for t in state.values())
        return {"sync/bytes": float(size), "sync/seconds": seconds}

    def link_engines(self, engines: RayEngines, manifest: Manifest) -> None:
        """Open a weight-sync group of rank 0 and ``engines`` (gloo, or NCCL when the ranks have
        GPUs) and make ``engines.update_weights`` take rank 0's broadcast of ``manifest``."""
        address = self._ray.get(self.ranks[0].rendezvous.remote())
        world = 1 + len(engines.engines)
        nccl = self.gpus > 0
        refs = [self.ranks[0].open_sync_group.remote(address, world, manifest, nccl)]
        refs += engines.join_broadcast(address, manifest, nccl,
                                       send=lambda: [r.broadcast_weights.remote() for r in self.ranks])
        self._gather(refs)
        log.info("weight sync: learner rank 0 broadcasts to %d engine(s) over %s (%s)", world - 1,
                 "NCCL" if nccl else "gloo", address)

    def rollout_requests(self, num_tasks: int, group_size: int) -> list[RolloutRequest]:
        return self._all("rollout_requests", num_tasks, group_size)

    def merge_rollouts(self, main: list[Trajectory], extras: Sequence[list[Trajectory]]) -> list[Trajectory]:
        return self._all("merge_rollouts", self._ray.put(main), self._ray.put(list(extras)))

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._all("load_state_dict", self._ray.put(state))

    def state_dict(self) -> dict[str, Any]:
        """The single-process format (every rank joins the gathers)."""
        return self._all("state_dict")

    # -- calls that only read: rank 0 ------------------------------------------------------
    def records(self) -> dict[str, list[dict[str, Any]]]:
        return self._first("records")

    def rollout_sampling(self, sampling: SamplingParams) -> SamplingParams:
        return self._first("rollout_sampling", sampling)

    def branch_rule(self) -> BranchRule | None:
        return self._first("branch_rule")

    def close(self) -> None:
        """Kill the actors (a rank may be stuck in a collective with a dead one, so none is
        asked to leave its process group) and remove the placement group; idempotent."""
        ray = self._ray
        for r in self.ranks:
            ray.kill(r)
        self.ranks = []
        if self._pg is not None:
            from ray.util.placement_group import remove_placement_group

            remove_placement_group(self._pg)
            self._pg = None


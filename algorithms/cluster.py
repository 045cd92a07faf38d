"""Connecting a run to its cluster (``cluster=local`` or ``cluster=ray``) and saying where each
part runs.

With ``cluster=local`` nothing here imports Ray. With ``cluster=ray`` the run joins the cluster at
``cluster.address`` (``auto``: the one ``ray start --head`` made on this machine) or starts a
private local Ray on the loopback address, which it stops at its end. The env pool's
workers then run as Ray actors (:class:`agentropy.envs.pool.RayPool`) on whichever nodes have
CPUs free; generation stays in the driver process unless ``cluster.rollout_engines`` > 0
(:mod:`agentropy.agents.backends.ray_engines`), and so does the learner unless
``cluster.learner_ranks`` > 1 (:mod:`agentropy.algorithms.ray_learner`).
"""

from __future__ import annotations

import logging
import os
from typing import Any

from agentropy.configs.schema import ClusterConfig
from agentropy.envs.pool import RAY_ENV_WORKER_CPUS

__all__ = ["PLACEMENT_TIMEOUT_S", "ClusterSession", "connect", "make_learner_group"]

#: seconds to wait for the learner's placement group (too few CPUs / GPUs)
PLACEMENT_TIMEOUT_S = 300.0

log = logging.getLogger(__name__)


class ClusterSession:
    """The run's hold on its cluster: :meth:`close` stops a Ray this run started, and only that."""

    def __init__(self, cfg: ClusterConfig, started: bool) -> None:
        self.cfg = cfg
        self.started = started
        self._learner_group: Any = None

    def learner_group(self) -> Any:
        """The learner ranks' placement group, made (and waited for) on the first call: one
        bundle per rank, of ``learner_cpus_per_rank`` CPUs (plus ``engine_cpus`` with
        ``colocate``) and ``learner_gpus_per_rank`` GPUs, strategy ``learner_placement``. The
        session removes it at :meth:`close`."""
        if self._learner_group is None:
            self._learner_group = make_learner_group(self.cfg)
        return self._learner_group

    def placement(self, *, env_workers: int, pool: str, backend: str, device: str) -> list[str]:
        """The placement plan, one line per role: where it runs and with what resources."""
        if self.cfg.backend == "local":
            envs = (f"{env_workers} subprocess workers on this machine" if pool == "subprocess"
                    else "in the driver process")
            return [f"env workers: {envs}", f"rollout: {backend} in the driver process",
                    f"learner: 1 rank in the driver process on {device}"]
        import ray

        nodes = [n for n in ray.nodes() if n.get("Alive")]
        total = ray.cluster_resources()
        described = ", ".join(f"{n['NodeManagerAddress']} ({n['Resources'].get('CPU', 0):g} CPU, "
                              f"{n['Resources'].get('GPU', 0):g} GPU)" for n in nodes)
        return [
            f"cluster: Ray {'started by this run' if self.started else 'at ' + (self.cfg.address or 'auto')}"
            f", {len(nodes)} node(s): {described}; {total.get('CPU', 0):g} CPU in all",
            f"env workers: {env_workers} Ray actors per pool x {RAY_ENV_WORKER_CPUS:g} CPU, spread "
            f"over the nodes by Ray's scheduler",
            self._rollout_line(backend),
            self._learner_line(device),
        ]

    def _rollout_line(self, backend: str) -> str:
        cfg = self.cfg
        if not cfg.rollout_engines:
            return f"rollout: {backend} in the driver process"
        if cfg.colocate:
            share = f", {cfg.learner_gpus_per_rank / 2:g} GPU" if cfg.learner_gpus_per_rank else ""
            return (f"rollout: {cfg.rollout_engines} {backend} engine(s) as Ray actors ({cfg.engine_cpus:g} "
                    f"CPU{share} each), engine i colocated in learner rank i's bundle; an episode stays "
                    "on one engine; weights through the object store")
        gpus = f", {cfg.engine_gpus} GPU" if cfg.engine_gpus else ""
        tp = f" (tensor-parallel over {cfg.engine_gpus})" if backend == "vllm" and cfg.engine_gpus > 1 else ""
        sync = ("weights from learner rank 0 by broadcast" if cfg.weight_sync == "broadcast"
                else "weights through the object store")
        return (f"rollout: {cfg.rollout_engines} {backend} engine(s) as Ray actors ({cfg.engine_cpus:g} "
                f"CPU{gpus} each){tp}; an episode stays on one engine; {sync}")

    def _learner_line(self, device: str) -> str:
        cfg = self.cfg
        if cfg.learner_ranks == 1:
            return f"learner: 1 rank in the driver process on {device}"
        gpus = f", {cfg.learner_gpus_per_rank:g} GPU" if cfg.learner_gpus_per_rank else ""
        options = "".join([", mixed precision" if cfg.learner_mixed_precision else "",
                           ", CPU offload" if cfg.learner_offload else ""])
        return (f"learner: {cfg.learner_ranks} ranks as Ray actors ({cfg.learner_cpus_per_rank:g} CPU{gpus} "
                f"each, placement group {cfg.learner_placement}), FSDP2 over "
                f"{'NCCL' if gpus else 'gloo'}{options}; full weights to the driver after each update")

    def close(self) -> None:
        if self._learner_group is not None:
            from ray.util.placement_group import remove_placement_group

            remove_placement_group(self._learner_group)
            self._learner_group = None
        if self.started:
            import ray

            ray.shutdown()
            self.started = False


def make_learner_group(cfg: ClusterConfig) -> Any:
    """A ready placement group for ``cfg.learner_ranks`` ranks (see
    :meth:`ClusterSession.learner_group`); the caller removes it."""
    import ray
    from ray.util.placement_group import placement_group, remove_placement_group

    bundle: dict[str, float] = {"CPU": cfg.learner_cpus_per_rank + (cfg.engine_cpus if cfg.colocate else 0.0)}
    if cfg.learner_gpus_per_rank:
        bundle["GPU"] = cfg.learner_gpus_per_rank
    group = placement_group([dict(bundle) for _ in range(cfg.learner_ranks)], strategy=cfg.learner_placement,
                            name="agentropy-learner")
    ready, _ = ray.wait([group.ready()], timeout=PLACEMENT_TIMEOUT_S)
    if not ready:
        remove_placement_group(group)
        raise RuntimeError(f"cluster.learner_ranks={cfg.learner_ranks}: Ray could not place "
                           f"{cfg.learner_ranks} bundles of {bundle} in {PLACEMENT_TIMEOUT_S:g} s "
                           f"(free: {ray.available_resources()})")
    return group


def connect(cfg: ClusterConfig) -> ClusterSession:
    """Join or start the cluster that ``cfg`` names (a no-op for ``local``)."""
    if cfg.backend == "local":
        return ClusterSession(cfg, started=False)
    if not cfg.address:
        # A private Ray on one machine talks over the loopback address only: Ray reads this
        # switch when it is first imported (it is the one that keeps laptops' Ray local).
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    import ray

    if ray.is_initialized():  # the caller (a notebook, a test) brought its own Ray
        return ClusterSession(cfg, started=False)
    kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False,
                              "configure_logging": False}
    if cfg.address:
        ray.init(address=cfg.address, **kwargs)
    else:
        ray.init(num_cpus=cfg.num_cpus or None, object_store_memory=cfg.object_store_mb * 2**20, **kwargs)
    return ClusterSession(cfg, started=not cfg.address)

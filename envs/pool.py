"""EnvPool: many environments behind one batched interface, stepping only the active ones.

Multi-turn LLM episodes end at different turns, and the rollout loop generates only for the
environments still playing, so the pool is addressed by *slot*: ``reset(slots, ...)`` and
``step(slots, actions)`` touch exactly the slots named. (Gymnasium's VectorEnv steps every
sub-env and autoresets, which fits this badly; see docs/environments.md section 1.4.)

A slot whose env raises, or whose worker dies or hangs, does not take the batch down: its
result carries a ``failure`` reason, the env is rebuilt before the slot's next reset, and the
rollout collector reports that episode as failed while the others go on.

Backends share this interface: ``serial`` (in-process, for debugging and cheap envs),
``subprocess`` (worker processes, :class:`SubprocessPool`) and ``ray`` (Ray actors on any machine of
a cluster, :class:`RayPool`); :func:`make_pool` builds one by name.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import pickle
import signal
import time
import traceback
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from typing import Any, Protocol

import gymnasium as gym

__all__ = [
    "POOL_BACKENDS", "EnvPool", "EnvSpec", "RayPool", "ResetResult", "SerialPool", "StepResult",
    "SubprocessPool", "make_pool",
]

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
        from agentropy import envs  # noqa: F401  (registers the ids, also inside worker processes)

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


def _reset_options(
    slots: Sequence[int], seeds: Sequence[int | None], options: Sequence[Mapping[str, Any] | None] | None
) -> Sequence[Mapping[str, Any] | None]:
    """``options`` (one ``None`` per slot when not given), after checking the lengths agree."""
    options = options if options is not None else [None] * len(slots)
    if not len(slots) == len(seeds) == len(options):
        raise ValueError("reset(): slots, seeds and options must have the same length")
    return options


def _check_step(slots: Sequence[int], actions: Sequence[str]) -> None:
    if len(slots) != len(actions):
        raise ValueError("step(): slots and actions must have the same length")


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
        options = _reset_options(slots, seeds, options)
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
        _check_step(slots, actions)
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


# ------------------------------------------------------------------------------ subprocess
def _worker_main(conn: Connection, specs: tuple[EnvSpec, ...]) -> None:
    """A subprocess worker: a :class:`SerialPool` over the specs, serving requests until told
    to close.

    The worker leads its own process group, so the pool can end it together with the engine
    processes its envs started (JVMs) in one signal.
    """
    os.setpgrp()
    pool = SerialPool(specs)
    try:
        while True:
            try:
                request = conn.recv()
            except (EOFError, OSError):  # the pool's process is gone
                return
            if request[0] == "close":
                pool.close()
                with contextlib.suppress(OSError):
                    conn.send("closed")
                return
            try:
                conn.send(_serve(pool, request))
            except OSError:  # the pool's process is gone
                return
            except Exception as exc:  # noqa: BLE001  (unpicklable results)
                conn.send(_unsendable(request, exc))
    finally:
        pool.close()


def _group_alive(pgid: int) -> bool:
    """Whether process group ``pgid`` has a member that is not a zombie (orphaned engine
    processes become zombies of init until it reaps them)."""
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    if not os.path.isdir("/proc"):
        return True
    return bool(group_members(pgid))


def group_members(pgid: int) -> list[int]:
    """Pids of the living members (not zombies, not dead) of process group ``pgid``, from
    ``/proc``."""
    members = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] not in ("Z", "X"):
            members.append(int(pid))
    return members


class _WorkerGone(Exception):
    """A worker died or could not be reached; the message is the failure reason."""


class _WorkerPool:
    """The slot bookkeeping that worker-based backends share; a backend supplies the transport.

    Worker ``w`` owns the slots ``s`` with ``s % num_workers == w`` and serves them with a
    :class:`SerialPool` over all specs (it only ever touches its own slots). A call sends each
    involved worker its part of the batch at once, so workers run in parallel, and waits at most
    ``timeout_s`` seconds. A worker that dies or does not answer in time is ended (with the engine
    processes its envs started) and replaced: the slots of the batch it held get a ``failure``
    result, its other slots lost their envs and fail at their next ``step`` until they are reset,
    and the rest of the batch goes on. An env that raises inside a worker fails only its own slot.

    A backend implements ``_start_worker``, ``_send`` (returns a handle to wait on, or raises
    :class:`_WorkerGone`), ``_wait`` (the ready handles), ``_receive`` (the answer, or raises
    :class:`_WorkerGone`), ``_end`` (stop a worker for good) and ``worker_pids``.
    """

    def __init__(self, specs: Sequence[EnvSpec], num_workers: int, timeout_s: float) -> None:
        if timeout_s <= 0:
            raise ValueError(f"timeout_s must be positive, got {timeout_s}")
        self.specs = tuple(specs)
        if not self.specs:
            raise ValueError("a pool needs at least one spec")
        self.num_workers = max(1, min(num_workers, len(self.specs)))
        self.timeout_s = timeout_s
        self._lost: dict[int, str] = {}
        self._closed = False
        self._workers: list[Any] = []

    def _start_workers(self) -> None:
        self._workers = [self._start_worker() for _ in range(self.num_workers)]

    def __len__(self) -> int:
        return len(self.specs)

    def worker_of(self, slot: int) -> int:
        """The index of the worker that owns ``slot``."""
        return slot % self.num_workers

    # ------------------------------------------------------------------ the transport
    def _start_worker(self) -> Any:
        raise NotImplementedError

    def _send(self, index: int, message: tuple) -> Any:
        raise NotImplementedError

    def _wait(self, handles: list[Any], timeout: float) -> list[Any]:
        raise NotImplementedError

    def _receive(self, index: int, handle: Any) -> list[Any]:
        raise NotImplementedError

    def _end(self, index: int, reason: str) -> None:
        raise NotImplementedError

    def worker_pids(self) -> list[int]:
        raise NotImplementedError

    # ------------------------------------------------------------------ replacing workers
    def _replace(self, index: int, reason: str) -> None:
        log.warning("EnvPool: %s; starting a new worker", reason)
        self._end(index, reason)
        self._workers[index] = self._start_worker()
        for slot in range(index, len(self.specs), self.num_workers):
            self._lost[slot] = f"{reason}; the slot's env was lost, reset the slot"

    # ------------------------------------------------------------------ calls
    def _call(self, kind: str, slots: Sequence[int], per_slot: Sequence[Sequence[Any]]) -> list[Any]:
        if self._closed:
            raise RuntimeError("the pool is closed")
        for slot in slots:
            if not (isinstance(slot, int) and 0 <= slot < len(self.specs)):
                raise ValueError(f"slot {slot!r} out of range [0, {len(self.specs)})")
        if len(set(slots)) != len(slots):
            raise ValueError(f"{kind}(): a slot appears twice in {list(slots)}")

        def failed(reason: str) -> Any:
            if kind == "reset":
                return ResetResult("", {}, failure=reason)
            return StepResult("", 0.0, False, False, {}, failure=reason)

        results: list[Any] = [None] * len(slots)
        parts: dict[int, list[int]] = {}
        for pos, slot in enumerate(slots):
            if kind == "step" and slot in self._lost:
                results[pos] = failed(self._lost[slot])
            else:
                parts.setdefault(self.worker_of(slot), []).append(pos)

        pending: dict[Any, tuple[int, list[int]]] = {}
        for index, positions in parts.items():
            columns = ([args[p] for p in positions] for args in per_slot)
            message = (kind, [slots[p] for p in positions], *columns)
            try:
                pending[self._send(index, message)] = (index, positions)
            except _WorkerGone as gone:
                self._replace(index, str(gone))
                for p in positions:
                    results[p] = failed(str(gone))

        deadline = time.monotonic() + self.timeout_s
        while pending:
            ready = self._wait(list(pending), max(0.0, deadline - time.monotonic()))
            if not ready:
                break
            for handle in ready:
                index, positions = pending.pop(handle)
                try:
                    answer = self._receive(index, handle)
                except _WorkerGone as gone:
                    self._replace(index, str(gone))
                    answer = [failed(str(gone))] * len(positions)
                for p, result in zip(positions, answer, strict=True):
                    results[p] = result
        for index, positions in pending.values():
            reason = f"worker {index} did not answer within {self.timeout_s:g} s and was killed"
            self._replace(index, reason)
            for p in positions:
                results[p] = failed(reason)

        if kind == "reset":
            for slot, result in zip(slots, results, strict=True):
                if not result.failure:
                    self._lost.pop(slot, None)
        return results

    def reset(
        self,
        slots: Sequence[int],
        seeds: Sequence[int | None],
        options: Sequence[Mapping[str, Any] | None] | None = None,
    ) -> list[ResetResult]:
        options = _reset_options(slots, seeds, options)
        return self._call("reset", list(slots), [list(seeds), [dict(o or {}) for o in options]])

    def step(self, slots: Sequence[int], actions: Sequence[str]) -> list[StepResult]:
        _check_step(slots, actions)
        return self._call("step", list(slots), [list(actions)])

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self):
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _serve(pool: SerialPool, request: tuple) -> list[Any]:
    """A worker's answer to one ``(kind, slots, *columns)`` request."""
    kind, args = request[0], request[1:]
    return pool.reset(*args) if kind == "reset" else pool.step(*args)


def _unsendable(request: tuple, exc: BaseException) -> list[Any]:
    """The answer when the real one cannot be pickled (an env put something odd in ``info``)."""
    failure = f"the result could not be sent to the pool: {_failure(exc)}"
    if request[0] == "reset":
        return [ResetResult("", {}, failure=failure) for _ in request[1]]
    return [StepResult("", 0.0, False, False, {}, failure=failure) for _ in request[1]]


@dataclass
class _Worker:
    process: multiprocessing.process.BaseProcess
    conn: Connection


class SubprocessPool(_WorkerPool):
    """Envs in worker processes (see :class:`_WorkerPool` for the slots, timeouts and failures).

    A worker leads its own process group, so a dead or hung one is killed together with the
    engine processes its envs started (JVMs).

    Workers start with the ``spawn`` context (JVMs and threads do not survive ``fork``), so a
    script that makes a pool needs the ``if __name__ == "__main__":`` guard, and they are
    daemonic: env constructors must not start ``multiprocessing`` children of their own (plain
    subprocesses are fine). Results are pickled, so ``info`` values must be plain data. Test
    envs registered outside ``agentropy.envs`` reach the workers through the
    ``"module:EnvId-v0"`` form of the id (Gymnasium imports the module first).

    Args:
        specs: one spec per slot.
        num_workers: worker processes (at most one per slot).
        timeout_s: the longest a ``reset`` or ``step`` call waits for a worker.
        context: the ``multiprocessing`` start method: ``"spawn"`` or ``"forkserver"``.
    """

    def __init__(
        self,
        specs: Sequence[EnvSpec],
        num_workers: int = 2,
        timeout_s: float = 120.0,
        context: str = "spawn",
    ) -> None:
        if context not in ("spawn", "forkserver"):
            raise ValueError(f"context must be 'spawn' or 'forkserver', got {context!r}")
        super().__init__(specs, num_workers, timeout_s)
        self._ctx = multiprocessing.get_context(context)
        self._start_workers()

    def worker_pids(self) -> list[int]:
        """The process ids of the current workers, by worker index."""
        return [int(w.process.pid or 0) for w in self._workers]

    def _start_worker(self) -> _Worker:
        parent, child = self._ctx.Pipe()
        process = self._ctx.Process(target=_worker_main, args=(child, self.specs), daemon=True)
        process.start()
        child.close()
        return _Worker(process, parent)

    def _send(self, index: int, message: tuple) -> Connection:
        worker = self._workers[index]
        try:
            worker.conn.send(message)
        except OSError:
            raise _WorkerGone(self._death(index)) from None
        return worker.conn

    def _wait(self, handles: list[Connection], timeout: float) -> list[Connection]:
        return wait(handles, timeout=timeout)  # type: ignore[return-value]

    def _receive(self, index: int, handle: Connection) -> list[Any]:
        try:
            return handle.recv()
        except (EOFError, OSError):
            raise _WorkerGone(self._death(index)) from None

    def _death(self, index: int) -> str:
        """Why worker ``index`` is gone: it is let finish dying and reaped, so that its exit code
        is known, and its process group is swept (ending it again later is harmless)."""
        worker = self._workers[index]
        wait([worker.process.sentinel], timeout=1.0)
        code = _kill_worker(worker)
        return f"worker {index} (pid {worker.process.pid}) died with exit code {code}"

    def _end(self, index: int, reason: str) -> None:
        _kill_worker(self._workers[index])

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for worker in self._workers:
            with contextlib.suppress(OSError):
                worker.conn.send(("close",))
        # Each worker closes its envs (JVMs shut down) and exits; then its group is swept.
        deadline = time.monotonic() + min(self.timeout_s, 30.0)
        for worker in self._workers:
            wait([worker.process.sentinel], timeout=max(0.0, deadline - time.monotonic()))
            _kill_worker(worker)


def _kill_worker(worker: _Worker) -> int | None:
    """End a worker and its process group (the engines its envs started); return its exit code.
    The group is signalled before the worker is reaped, while its pid is still its own."""
    pid = worker.process.pid
    if pid is not None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)
    with contextlib.suppress(Exception):
        worker.process.kill()
    worker.process.join(timeout=10)
    worker.conn.close()
    if pid is not None:
        _wait_group_gone(pid)
    return worker.process.exitcode


def _wait_group_gone(pgid: int, timeout_s: float = 10.0) -> None:
    """SIGKILL is not instant: wait until process group ``pgid`` has died out."""
    deadline = time.monotonic() + timeout_s
    while _group_alive(pgid) and time.monotonic() < deadline:
        time.sleep(0.02)


# ------------------------------------------------------------------------------------- ray
#: CPUs a :class:`RayPool` actor reserves by default: the training pool and each evaluation
#: pool of a run all fit on a 2-core machine.
RAY_ENV_WORKER_CPUS = 0.5
#: The least a :class:`RayPool` waits for a new actor to start (its ``timeout_s`` if longer).
RAY_START_TIMEOUT_S = 60.0


class RayPool(_WorkerPool):
    """Envs in Ray actors, one actor per worker (see :class:`_WorkerPool` for the slots,
    timeouts and failures), for runs that spread environments over the machines of a Ray cluster.

    Each actor leads its own process group, as a subprocess worker does; an actor that dies or
    hangs is killed with ``ray.kill`` and, when it ran on this machine, with its process group
    (the JVMs of its envs). Ray must be initialised by the caller (``ray.init``; the trainer does
    it from ``cluster.*``); importing this module does not import Ray.

    Args:
        specs: one spec per slot.
        num_workers: actors (at most one per slot).
        timeout_s: the longest a ``reset`` or ``step`` call waits for an actor.
        num_cpus: CPUs each actor reserves in Ray's scheduler; actors are spread over the
            nodes. An env worker mostly waits for its engine, so a fraction of a CPU is the default.
    """

    def __init__(
        self,
        specs: Sequence[EnvSpec],
        num_workers: int = 2,
        timeout_s: float = 120.0,
        num_cpus: float = RAY_ENV_WORKER_CPUS,
    ) -> None:
        import ray

        if not ray.is_initialized():
            raise RuntimeError("RayPool needs a running Ray: call ray.init() first")
        super().__init__(specs, num_workers, timeout_s)
        self._ray = ray
        self._actor_class = ray.remote(num_cpus=num_cpus, max_restarts=0, scheduling_strategy="SPREAD")(
            _RayEnvWorker)
        self.num_cpus = num_cpus
        self._start_workers()
        for i, w in enumerate(self._workers):  # where Ray put them (the node's host name)
            log.info("placement: env worker %d on %s, pid %d", i, w.node.split("/")[0], w.pid)

    def worker_pids(self) -> list[int]:
        """The process ids of the current actors, by worker index."""
        return [w.pid for w in self._workers]

    def _start_worker(self) -> _Actor:
        handle = self._actor_class.remote(self.specs)
        # Starting an actor (a process, its imports) may take longer than a step may: a loaded
        # machine needs seconds, so the wait is at least RAY_START_TIMEOUT_S.
        timeout = max(self.timeout_s, RAY_START_TIMEOUT_S)
        try:
            pid, node = self._ray.get(handle.where.remote(), timeout=timeout)
        except Exception as exc:  # noqa: BLE001
            self._ray.kill(handle, no_restart=True)
            free = self._ray.available_resources().get("CPU", 0.0)
            raise RuntimeError(f"an EnvPool actor (needing {self.num_cpus:g} CPU) did not start within "
                               f"{timeout:g} s ({free:g} CPU free in the cluster): {exc}") from None
        return _Actor(handle, pid, node)

    def _send(self, index: int, message: tuple) -> Any:
        return self._workers[index].handle.serve.remote(message)

    def _wait(self, handles: list[Any], timeout: float) -> list[Any]:
        # One wait for the whole batch: it returns early only at the deadline, and a dead
        # actor's reference is ready (with its error) at once.
        ready, _ = self._ray.wait(handles, num_returns=len(handles), timeout=timeout)
        return ready

    def _receive(self, index: int, handle: Any) -> list[Any]:
        from ray.exceptions import RayActorError

        try:
            return self._ray.get(handle)
        except RayActorError as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise _WorkerGone(f"worker {index} (pid {self._workers[index].pid}) died: {first}") from None

    def _end(self, index: int, reason: str) -> None:
        actor = self._workers[index]
        self._ray.kill(actor.handle, no_restart=True)
        if actor.node == _node_id():  # sweep what it leaves in its process group (JVMs)
            deadline = time.monotonic() + 10
            while _pid_alive(actor.pid) and time.monotonic() < deadline:  # Ray ends the actor
                time.sleep(0.02)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(actor.pid, signal.SIGKILL)
            _wait_group_gone(actor.pid)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        closing = [w.handle.close.remote() for w in self._workers]
        with contextlib.suppress(Exception):
            self._ray.wait(closing, num_returns=len(closing), timeout=min(self.timeout_s, 30.0))
        for index in range(len(self._workers)):
            self._end(index, "closed")


def _pid_alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except OSError:
        return False


def _node_id() -> str:
    """This machine's identity (boot id + hostname), to tell local actors from remote ones."""
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            boot = f.read().strip()
    except OSError:
        boot = ""
    return f"{os.uname().nodename}/{boot}"


@dataclass
class _Actor:
    handle: Any
    pid: int
    node: str


class _RayEnvWorker:
    """The body of a :class:`RayPool` actor: a :class:`SerialPool` serving requests."""

    def __init__(self, specs: tuple[EnvSpec, ...]) -> None:
        os.setpgrp()
        self.pool = SerialPool(specs)

    def where(self) -> tuple[int, str]:
        return os.getpid(), _node_id()

    def serve(self, request: tuple) -> list[Any]:
        results = _serve(self.pool, request)
        try:
            pickle.dumps(results)  # Ray would fail the whole call on an unpicklable result
        except Exception as exc:  # noqa: BLE001
            return _unsendable(request, exc)
        return results

    def close(self) -> None:
        self.pool.close()


#: EnvPool backends by name: ``fn(specs, *, num_workers, timeout_s) -> EnvPool``.
POOL_BACKENDS: dict[str, Any] = {
    "serial": lambda specs, num_workers, timeout_s: SerialPool(specs),
    "subprocess": lambda specs, num_workers, timeout_s: SubprocessPool(specs, num_workers, timeout_s),
    "ray": lambda specs, num_workers, timeout_s: RayPool(specs, num_workers, timeout_s),
}


def make_pool(
    specs: Sequence[EnvSpec], backend: str = "serial", *, num_workers: int = 2, timeout_s: float = 120.0
) -> EnvPool:
    """Build a pool of ``specs`` with the named backend (``serial``, ``subprocess`` or ``ray``).

    ``num_workers`` and ``timeout_s`` apply to the worker backends; ``ray`` needs ``ray.init()``.
    """
    try:
        build = POOL_BACKENDS[backend]
    except KeyError:
        raise ValueError(f"unknown EnvPool backend {backend!r}; known: {', '.join(POOL_BACKENDS)}") from None
    return build(specs, num_workers=num_workers, timeout_s=timeout_s)

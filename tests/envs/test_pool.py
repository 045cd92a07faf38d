"""EnvPool backends (envs/pool.py): the worker backends (subprocess and ray) give the serial
backend's results, survive workers and JVMs killed mid-batch and workers that hang, and leave no
processes. Every test of a worker backend runs against both."""

from __future__ import annotations

import os
import signal
import threading
import time
from multiprocessing import resource_tracker

import gymnasium as gym
import pytest
from agentropy.envs.core import TEXT_CHARSET
from agentropy.envs.pool import EnvSpec, RayPool, SerialPool, SubprocessPool, group_members, make_pool
from gymnasium import spaces

from tests.envs.test_contract import _child_processes


class EchoEnv(gym.Env[str, str]):
    """Test-only env: echoes actions; ``sleep S`` sleeps S seconds first, ``raise`` raises."""

    observation_space = spaces.Text(max_length=256, charset=TEXT_CHARSET)
    action_space = spaces.Text(max_length=256, charset=TEXT_CHARSET)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return f"start {seed} {dict(options or {})}", {"t": 0}

    def step(self, action):
        self.t += 1
        if action.startswith("sleep "):
            time.sleep(float(action.split()[1]))
        if action == "raise":
            raise RuntimeError("boom")
        return f"echo {action} {self.t}", 1.0, False, False, {"t": self.t}


# Workers import this module through the "module:id" form of the id, which registers it there.
gym.register("PoolTestEcho-v0", entry_point=EchoEnv)
ECHO = EnvSpec(f"{__name__}:PoolTestEcho-v0", {"disable_env_checker": True})
TWX = EnvSpec("agentropy/TWX-v0", {"game": "coin"})  # a JVM per env
# No engine process, quick to make (the contract tests generate and cache these games).
TEXTWORLD = EnvSpec("agentropy/TextWorld-v0", {"game": "coin", "num_games": 4})


WORKER_BACKENDS = ["subprocess", "ray"]


@pytest.fixture
def worker_pool(request):
    """``make(specs, num_workers, timeout_s)`` for the test's worker backend (``ray`` starts the
    session's local Ray first, see tests/conftest.py)."""
    backend = request.param
    if backend == "ray":
        request.getfixturevalue("ray_local")

    def make(specs, num_workers=2, timeout_s=120.0):
        return make_pool(specs, backend, num_workers=num_workers, timeout_s=timeout_s)

    make.backend = backend
    return make


def parametrize_backends(fn):
    return pytest.mark.parametrize("worker_pool", WORKER_BACKENDS, indirect=True)(fn)


@pytest.fixture
def no_leftovers():
    """Fails the test if it leaves child processes (the resource tracker is started first: it
    is multiprocessing's own, one per process)."""
    resource_tracker.ensure_running()
    before = {line.split()[0] for line in _child_processes()}
    yield
    assert [line for line in _child_processes() if line.split()[0] not in before] == []


def _java_children(pid: int) -> list[int]:
    out = []
    for child in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{child}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            with open(f"/proc/{child}/cmdline", "rb") as f:
                cmd = f.read()
        except OSError:
            continue
        if int(fields[1]) == pid and b"java" in cmd.split(b"\0")[0]:
            out.append(int(child))
    return out


def _script(pool):
    """Resets and partial steps, with a deterministic policy over the admissible commands."""
    out = [pool.reset([0, 1, 2, 3], [5, 6, 7, 8], [None, {"task": 3}, None, None])]
    infos = {r_slot: r.info for r_slot, r in zip([0, 1, 2, 3], out[0], strict=True)}
    for t, slots in enumerate([[0, 1, 2, 3], [1, 3], [2], [0, 3, 1], [3, 2, 1, 0]]):
        actions = [infos[s]["admissible_commands"][t % len(infos[s]["admissible_commands"])] for s in slots]
        if t == 2:
            actions[0] = "not a command"
        results = pool.step(slots, actions)
        out.append(results)
        infos.update({s: r.info for s, r in zip(slots, results, strict=True) if r.info})
    return out


@parametrize_backends
def test_worker_pool_matches_serial_pool(worker_pool, no_leftovers):
    specs = [TEXTWORLD] * 4
    with SerialPool(specs) as serial:
        expected = _script(serial)
    with worker_pool(specs, num_workers=2, timeout_s=120) as pool:
        assert isinstance(pool, {"subprocess": SubprocessPool, "ray": RayPool}[worker_pool.backend])
        assert len(pool) == 4
        got = _script(pool)
    assert got == expected
    assert all(not r.failure for batch in got for r in batch)


@parametrize_backends
def test_env_errors_fail_only_their_slot_in_every_backend(worker_pool, no_leftovers):
    specs = [ECHO] * 3
    outs = []
    for pool in (SerialPool(specs), worker_pool(specs, num_workers=2, timeout_s=60)):
        with pool:
            pool.reset([0, 1, 2], [0, 1, 2])
            first = pool.step([0, 1, 2], ["a", "raise", "c"])
            again = pool.step([1], ["b"])  # the broken env was discarded; this slot needs a reset
            reset = pool.reset([1], [9])
            after = pool.step([1, 0], ["d", "e"])
        outs.append((first, again, reset, after))
    assert outs[0] == outs[1]
    first, again, reset, after = outs[1]
    assert first[1].failure == "env error: RuntimeError: boom"
    assert (first[0].observation, first[2].observation) == ("echo a 1", "echo c 1")
    assert "ResetNeeded" in again[0].failure
    assert [r.observation for r in after] == ["echo d 1", "echo e 2"]


@parametrize_backends
def test_hung_worker_is_killed_and_replaced(worker_pool, no_leftovers):
    with worker_pool([ECHO] * 4, num_workers=2, timeout_s=120) as pool:
        pool.reset([0, 1, 2, 3], [0, 1, 2, 3])  # (workers start within this call's timeout)
        pool.timeout_s = 3
        old = pool.worker_pids()
        start = time.monotonic()
        results = pool.step([0, 1, 2, 3], ["sleep 60", "b", "c", "d"])
        assert time.monotonic() - start < 30  # the call did not wait for the sleep
        # Worker 0 owns slots 0 and 2: both fail; worker 1's slots are unaffected.
        assert "did not answer within 3 s" in results[0].failure
        assert results[2].failure == results[0].failure
        assert [(r.observation, r.failure) for r in (results[1], results[3])] == [
            ("echo b 1", ""), ("echo d 1", "")]
        new = pool.worker_pids()
        assert new[0] != old[0] and new[1] == old[1] and group_members(old[0]) == []
        # The replaced worker's slots lost their envs until they are reset.
        assert "reset the slot" in pool.step([2], ["x"])[0].failure
        assert [r.failure for r in pool.reset([0, 2], [0, 2])] == ["", ""]
        results = pool.step([0, 1, 2, 3], ["e", "f", "g", "h"])
        assert [r.observation for r in results] == ["echo e 1", "echo f 2", "echo g 1", "echo h 2"]


@parametrize_backends
def test_worker_killed_mid_batch_with_its_jvm(worker_pool, no_leftovers):
    """kill -9 a worker while it is inside a step call: its slots in the batch fail, its JVMs go
    with it (the process group), the other worker's slots are correct, and the pool goes on."""
    specs = [ECHO, TWX, TWX, ECHO]  # worker 0: slots 0 (echo) and 2 (a JVM); worker 1: 1, 3
    with SerialPool(specs) as serial:
        serial.reset([1, 3], [1, 3])
        serial.step([3], ["a"])
        expected = serial.step([1, 3], ["look around", "b"])
    with worker_pool(specs, num_workers=2, timeout_s=120) as pool:
        pool.reset([0, 1, 2, 3], [0, 1, 2, 3])
        pool.step([3], ["a"])
        victim = pool.worker_pids()[0]
        assert len(_java_children(victim)) == 1
        killer = threading.Timer(1.0, os.kill, (victim, signal.SIGKILL))
        killer.start()
        results = pool.step([0, 1, 2, 3], ["sleep 20", "look around", "look", "b"])
        killer.join()
        assert results[0].failure == results[2].failure
        assert results[0].failure.startswith(f"worker 0 (pid {victim}) died")
        if worker_pool.backend == "subprocess":
            assert "with exit code -9" in results[0].failure
        assert [results[1], results[3]] == expected
        assert group_members(victim) == []  # the JVM of slot 2 is gone too
        assert [r.failure for r in pool.reset([0, 2], [0, 2])] == ["", ""]
        assert all(not r.failure for r in pool.step([0, 1, 2, 3], ["x", "look around", "look", "y"]))


@pytest.mark.parametrize(
    "jvm_spec",
    [TWX, pytest.param(EnvSpec("agentropy/ScienceWorld-v0", {"tasks": "find-animal"}),
                       marks=pytest.mark.slow, id="science")],
    ids=["twx", "science"],
)
@parametrize_backends
def test_jvm_killed_mid_batch(worker_pool, no_leftovers, jvm_spec, capfd):
    """kill -9 the JVM of one slot while its worker is busy with another slot: that slot fails
    with the env's error naming the JVM, the worker logs one line for it (py4j's tracebacks go to
    DEBUG), the worker stays, and a reset brings the slot back."""
    specs = [ECHO, jvm_spec, jvm_spec]  # worker 0: slots 0 (echo) and 2 (JVM); worker 1: slot 1
    with worker_pool(specs, num_workers=2, timeout_s=120) as pool:
        first = pool.reset([0, 1, 2], [0, 1, 2])
        assert all(not r.failure for r in first)
        worker = pool.worker_pids()[0]
        (jvm,) = _java_children(worker)
        killer = threading.Timer(1.0, os.kill, (jvm, signal.SIGKILL))
        killer.start()
        results = pool.step([0, 1, 2], ["sleep 3", "look around", "look around"])
        killer.join()
        assert results[0].observation == "echo sleep 3 1" and not results[0].failure
        assert not results[1].failure and results[1].info["action_is_valid"]
        engine = "TextWorldExpress" if jvm_spec is TWX else "ScienceWorld"
        why = f"the {engine} JVM (pid {jvm}) has exited: killed by SIGKILL"
        assert results[2].failure == f"env error: agentropy.envs.jvm.JVMExited: {why}"
        if worker_pool.backend == "subprocess":  # the worker's stderr is this process's
            err = capfd.readouterr().err
            assert f"slot 2: step failed: {why}\n" in err
            assert "Traceback" not in err and "py4j" not in err, err
        assert pool.worker_pids()[0] == worker
        again = pool.reset([2], [2])
        assert not again[0].failure and again[0].observation == first[2].observation
        assert not pool.step([2], ["look around"])[0].failure
        assert _java_children(worker) != [jvm]


def test_make_pool_backends_and_arguments():
    assert isinstance(make_pool([ECHO], "serial"), SerialPool)
    with pytest.raises(ValueError, match="unknown EnvPool backend 'threads'; known: serial, subprocess, ray"):
        make_pool([ECHO], "threads")
    with pytest.raises(ValueError, match="context"):
        SubprocessPool([ECHO], context="fork")
    with SubprocessPool([ECHO] * 2, num_workers=1, timeout_s=30) as pool:
        with pytest.raises(ValueError, match="out of range"):
            pool.step([2], ["a"])
        with pytest.raises(ValueError, match="twice"):
            pool.reset([0, 0], [1, 2])
    pool.close()  # closing twice is harmless
    with pytest.raises(RuntimeError, match="closed"):
        pool.step([0], ["a"])

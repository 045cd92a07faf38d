"""envs/jvm.py: a dead JVM is one clear error, and py4j's tracebacks are kept at DEBUG."""

from __future__ import annotations

import logging
import subprocess

import pytest
from agentropy.envs.jvm import JVMExited, engine_calls, exit_reason, quiet_py4j
from py4j.protocol import Py4JNetworkError


def test_exit_reasons():
    assert exit_reason(-9) == "killed by SIGKILL"
    assert exit_reason(1) == "exit status 1"


def test_a_call_that_fails_because_the_jvm_died_names_it():
    proc = subprocess.Popen(["sh", "-c", "exit 3"])
    with pytest.raises(JVMExited, match=rf"^the Engine JVM \(pid {proc.pid}\) has exited: exit status 3$"):
        with engine_calls(proc, "Engine"):
            raise Py4JNetworkError("Answer from Java side is empty")


def test_a_dead_jvm_is_not_called_and_a_live_one_keeps_its_error():
    proc = subprocess.Popen(["sleep", "30"])
    try:
        with pytest.raises(Py4JNetworkError):  # alive: the call's own error
            with engine_calls(proc, "Engine"):
                raise Py4JNetworkError("a call failed")
        proc.kill()
        proc.wait()
        called = []
        with pytest.raises(JVMExited, match="killed by SIGKILL"):
            with engine_calls(proc, "Engine"):
                called.append(1)
        assert called == []
    finally:
        proc.kill()
        proc.wait()


def test_py4j_records_move_to_debug(caplog):
    quiet_py4j()
    caplog.set_level(logging.DEBUG, logger="agentropy.envs.jvm")
    try:
        raise Py4JNetworkError("Answer from Java side is empty")
    except Py4JNetworkError:
        logging.getLogger("py4j.java_gateway").error("An error occurred", exc_info=True)
    logging.getLogger("other").warning("kept")
    assert [(r.name, r.levelname, r.getMessage()) for r in caplog.records] == [
        ("agentropy.envs.jvm", "DEBUG", "py4j: An error occurred"), ("other", "WARNING", "kept")]
    assert caplog.records[0].exc_info is not None

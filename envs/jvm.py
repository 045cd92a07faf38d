"""The JVM behind ScienceWorld and TextWorldExpress: one clear error when it dies, and a clean stop.

Both engines run in a Java process that py4j talks to over a socket. When that process dies
(killed, out of memory), py4j logs a chain of tracebacks at ERROR and INFO level for every call
that follows, some of them on the root logger, before it raises an error that names only a port.
An env pool then logs one warning per failed slot (``slot 3: step failed: ...``), so the env's
error should say what happened: :func:`engine_calls` turns any failing call into
:class:`JVMExited` (``the ScienceWorld JVM (pid 123) has exited: killed by SIGKILL``), and
:func:`quiet_py4j` moves py4j's own records to DEBUG on this module's logger, where the detail
stays available (``logging.getLogger("agentropy.envs.jvm").setLevel(logging.DEBUG)``).
"""

from __future__ import annotations

import contextlib
import logging
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

__all__ = ["JVMExited", "engine_calls", "exit_reason", "quiet_py4j", "stop_jvm"]

log = logging.getLogger(__name__)

#: How long a failed call waits for the process to finish dying before it decides the JVM lives.
_DEATH_GRACE_S = 1.0


class JVMExited(RuntimeError):
    """The engine's Java process is gone; the env must be made again."""


def exit_reason(code: int) -> str:
    """``killed by SIGKILL`` for a negative return code, else ``exit status N``."""
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit status {code}"


class _Py4JToDebug(logging.Filter):
    """Drops py4j's records from their logger and logs them again at DEBUG on this module's."""

    def __init__(self, py4j_dir: str) -> None:
        super().__init__()
        self.py4j_dir = py4j_dir

    def filter(self, record: logging.LogRecord) -> bool:
        if not (record.name.startswith("py4j") or record.pathname.startswith(self.py4j_dir)):
            return True
        if log.isEnabledFor(logging.DEBUG):
            log.debug("py4j: %s", record.getMessage(), exc_info=record.exc_info)
        return False


_installed = False


def quiet_py4j() -> None:
    """Move py4j's log records to DEBUG on ``agentropy.envs.jvm`` (once per process).

    py4j logs on ``py4j.java_gateway`` and ``py4j.clientserver``, and on the root logger from a
    few places; the filter on the root logger passes every record that does not come from
    py4j's own files.
    """
    global _installed
    if _installed:
        return
    import py4j

    py4j_filter = _Py4JToDebug(str(Path(py4j.__file__).parent))
    for name in ("py4j", "py4j.java_gateway", "py4j.clientserver", "py4j.protocol", ""):
        logging.getLogger(name).addFilter(py4j_filter)
    _installed = True


@contextlib.contextmanager
def engine_calls(process: subprocess.Popen | None, engine: str) -> Iterator[None]:
    """Calls into a JVM; a dead JVM raises :class:`JVMExited` naming it and why it ended.

    Args:
        process: the Java process (``None`` when the package does not expose it: errors pass).
        engine: the engine's name for the message (``"ScienceWorld"``).
    """
    from py4j.protocol import Py4JError

    if process is not None and process.poll() is not None:
        raise JVMExited(f"the {engine} JVM (pid {process.pid}) has exited: "
                        f"{exit_reason(process.returncode)}")
    try:
        yield
    except Py4JError as exc:
        code = _exit_code(process)
        if code is None:
            raise  # the JVM lives: an error of the call itself
        raise JVMExited(f"the {engine} JVM (pid {process.pid}) has exited: {exit_reason(code)}") from exc


def _exit_code(process: subprocess.Popen | None) -> int | None:
    """The JVM's return code, waiting a moment for a dying one; None while it runs."""
    if process is None:
        return None
    try:
        return process.wait(timeout=_DEATH_GRACE_S)
    except subprocess.TimeoutExpired:
        return None


def stop_jvm(process: subprocess.Popen) -> None:
    """End a JVM started with py4j's ``die_on_exit`` and release its pipes.

    Closing its stdin asks it to exit; a JVM still running after 5 s is killed.
    """
    if process.stdin is not None:
        with contextlib.suppress(OSError):
            process.stdin.close()
    try:
        process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=5)
    for pipe in (process.stdout, process.stderr):
        if pipe is not None:
            pipe.close()

"""JSON-lines files: the append-only writer (one flushed write per line, ``tell`` for
checkpoints and ``truncate`` for resume) and the one reader. The episode log, the metrics log and
SPEAR's replay log are all this."""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

__all__ = ["AppendOnlyJsonl", "iter_jsonl"]


def iter_jsonl(path: str | Path, *, what: str = "JSON", error: type[Exception] = ValueError,
               stacklevel: int = 2) -> Iterator[tuple[int, Any]]:
    """Yield ``(line number, value)`` for each non-blank line of a JSON-lines file.

    The file is read once, as it is now. A last line without its newline that is not complete
    JSON (a writer killed mid-line, or one still writing) is skipped with a warning; a bad line
    anywhere else raises ``error`` with ``"<path>:<line>: not <what> (<reason>)"``.
    """
    path = Path(path)
    lines = path.read_bytes().split(b"\n")
    complete_end = lines[-1] == b""
    if complete_end:
        lines.pop()
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        try:
            value = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            if number == len(lines) and not complete_end:
                warnings.warn(f"{path}: skipping a truncated last line ({len(raw)} bytes)",
                              stacklevel=stacklevel + 1)
                return
            raise error(f"{path}:{number}: not {what} ({exc})") from None
        yield number, value


class AppendOnlyJsonl:
    """Appends lines to ``path`` (created with its folder if missing), kept open for the run.

    Args:
        path: the file.
        fsync: also ``os.fsync`` after each line (survives a machine crash, not only a killed
            process; slower).
    """

    def __init__(self, path: str | Path, *, fsync: bool = False) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fsync = fsync
        self._file = open(self.path, "ab")  # noqa: SIM115  (kept open for the run)

    def write_line(self, text: str) -> None:
        """Append ``text`` and a newline, flushed (and fsynced if asked)."""
        self._file.write((text + "\n").encode())
        self._file.flush()
        if self._fsync:
            os.fsync(self._file.fileno())

    def tell(self) -> int:
        """Size in bytes of what has been written; a checkpoint stores it."""
        self._file.flush()
        return self._file.tell()

    def truncate(self, size: int) -> None:
        """Drop everything after ``size`` bytes (what a resumed run re-plays)."""
        self._file.flush()
        self._file.truncate(size)
        self._file.seek(size)

    def close(self) -> None:
        if not self._file.closed:
            self._file.close()

    def __enter__(self) -> Any:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

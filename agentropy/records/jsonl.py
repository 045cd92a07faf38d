"""An append-only JSON-lines file: one flushed write per line, ``tell`` for checkpoints and
``truncate`` for resume. The episode log, the metrics log and SPEAR's replay log are all this."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

__all__ = ["AppendOnlyJsonl"]


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

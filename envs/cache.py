"""Where environments keep what is slow to compute (generated games, gold paths), and how they
write it safely.

The cache folder of a family is ``$AGENTROPY_CACHE/<family>`` when that variable is set, else
``$XDG_CACHE_HOME/agentropy/<family>`` (by default ``~/.cache/agentropy/<family>``); a family's
``cache_dir`` keyword overrides both. Entries are written to a temporary file in the same folder
and renamed into place, so a reader never sees half a file and two processes computing the same
entry at once both succeed (the last rename wins; the entries are equal).
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

__all__ = ["default_cache_dir", "read_json", "write_json_atomic"]


def default_cache_dir(family: str) -> Path:
    """The cache folder of ``family`` (not created)."""
    root = os.environ.get("AGENTROPY_CACHE")
    if root:
        return Path(root) / family
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "agentropy" / family


def read_json(path: Path) -> Any | None:
    """The JSON value stored at ``path``, or ``None`` when there is no readable entry."""
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def write_json_atomic(path: Path, value: Any) -> None:
    """Write ``value`` as JSON to ``path`` through a temporary file and a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(value, f)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise

"""The official ALFWorld game files, when the user has them (``$ALFWORLD_DATA``).

``alfworld-download`` unpacks the games to ``$ALFWORLD_DATA/json_2.1.1/{train,valid_seen,
valid_unseen}/<task folder>/trial_*/`` (``traj_data.json``, ``game.tw-pddl``). The games of a split
are selected as ``AlfredTWEnv`` does (docs/alfworld.md sections 1 and 6): folders with both files,
paths without ``movable`` or ``Sliced``, the wanted task types, ``"solvable": true``; sorted by
path, so task indices are deterministic.

Reading 3,553 ``game.tw-pddl`` files for their ``solvable`` flag takes a while, so the selection is
cached in a small index file, keyed by the split folder and invalidated when any game file's size
or modification time changes.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = ["OFFICIAL_DIR", "OfficialGame", "official_games", "official_split_dir"]

#: The version folder of the released games.
OFFICIAL_DIR = "json_2.1.1"


@dataclass(frozen=True)
class OfficialGame:
    """One official game: its folder relative to the split folder, and its task type."""

    path: str
    task_type: str


def official_split_dir(data_path: str | Path, split: str) -> Path:
    """``<data_path>/json_2.1.1/<split>``, or ``<data_path>/<split>`` if there is no version folder.

    Raises:
        FileNotFoundError: if neither exists.
    """
    root = Path(data_path).expanduser()
    for candidate in (root / OFFICIAL_DIR / split, root / split):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(
        f"no ALFWorld split folder {split!r} under {root} (expected {OFFICIAL_DIR}/{split}/<task>/trial_*/)"
    )


def _game_folders(split_dir: Path) -> list[Path]:
    out = []
    for folder, _, files in os.walk(split_dir):
        if "traj_data.json" in files and "game.tw-pddl" in files:
            relative = os.path.relpath(folder, split_dir)
            if "movable" not in relative and "Sliced" not in relative:
                out.append(Path(folder))
    return sorted(out)


def _fingerprint(folders: Sequence[Path]) -> str:
    digest = hashlib.sha1()
    for folder in folders:
        stat = (folder / "game.tw-pddl").stat()
        digest.update(f"{folder}|{stat.st_size}|{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def _scan(split_dir: Path, folders: Sequence[Path]) -> list[OfficialGame]:
    games = []
    for folder in folders:
        with open(folder / "game.tw-pddl") as f:
            solvable = bool(json.load(f).get("solvable", False))
        if not solvable:
            continue
        with open(folder / "traj_data.json") as f:
            task_type = str(json.load(f).get("task_type", ""))
        games.append(OfficialGame(os.path.relpath(folder, split_dir), task_type))
    return games


def official_games(
    data_path: str | Path, split: str, task_types: Sequence[str], index_dir: str | Path | None = None
) -> list[OfficialGame]:
    """The playable official games of a split, of the given task types, sorted by path.

    Args:
        data_path: ``$ALFWORLD_DATA`` or any folder holding ``json_2.1.1/<split>`` (or ``<split>``).
        split: ``train``, ``valid_seen`` or ``valid_unseen``.
        task_types: the task types to keep.
        index_dir: where to cache the selection (``None``: scan every time).
    """
    split_dir = official_split_dir(data_path, split).resolve()
    folders = _game_folders(split_dir)
    fingerprint = _fingerprint(folders)
    index_file = None
    games: list[OfficialGame] | None = None
    if index_dir is not None:
        key = hashlib.sha1(str(split_dir).encode()).hexdigest()[:16]
        index_file = Path(index_dir) / f"official-index-{key}.json"
        try:
            cached = json.loads(index_file.read_text())
            if cached.get("fingerprint") == fingerprint:
                games = [OfficialGame(p, t) for p, t in cached["games"]]
        except (OSError, ValueError, KeyError, TypeError):
            games = None
    if games is None:
        games = _scan(split_dir, folders)
        if index_file is not None:
            _write_json(index_file, {"split_dir": str(split_dir), "fingerprint": fingerprint,
                                     "games": [[g.path, g.task_type] for g in games]})
    wanted = set(task_types)
    return [g for g in games if g.task_type in wanted]


def _write_json(path: Path, data: object) -> None:
    """Write atomically (temporary file + rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(data, f)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise

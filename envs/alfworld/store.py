"""Generated household games, verified once and cached on disk.

A game is a deterministic function of its key ``(split, task type, seed, scene size)`` and
:data:`~agentropy.envs.alfworld.generator.GENERATOR_VERSION`. Sampling a scene and its walkthrough takes
milliseconds; what is worth caching is the verification (the walkthrough replayed through the
real engine: a load, a reset and a few steps, one to several seconds). The cache is itself an
ALFWorld-format dataset::

    <cache>/gen-v<version>/<scene size>/<split>/<task_type>-<Object>-None-<Recep>-<scene>/trial_<seed>/
        traj_data.json  initial_state.pddl  game.tw-pddl

so ``AlfredTWEnv`` or :class:`~agentropy.envs.alfworld.env.ALFWorldEnv` (``source="official"``) can play
it too. Folders are written to a temporary name and renamed into place, so parallel workers
generating the same game are safe: the first rename wins and the content is identical anyway.

A scene whose walkthrough fails verification is kept with ``"solvable": false`` and the key moves
on to the next attempt, which reseeds with ``"<key>|<attempt>"`` (a failure is a generator bug:
none occurred over the games the tests and the benchmark generate).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from agentropy.envs.alfworld.engine import Engine, default_cache_dir, verify
from agentropy.envs.alfworld.generator import (
    GENERATOR_VERSION,
    GameFiles,
    Scene,
    game_files,
    oracle_walkthrough,
    read_game,
    sample_scene,
    write_game,
)

__all__ = ["MAX_ATTEMPTS", "GameStore", "StoredGame", "default_cache_dir"]

log = logging.getLogger(__name__)

#: Scenes tried per key before giving up (a failure is a generator bug worth reporting).
MAX_ATTEMPTS = 3


@dataclass(frozen=True)
class StoredGame:
    """A verified game: its folder, its files, and whether ``engine`` was left with it loaded."""

    folder: Path
    files: GameFiles
    scene: Scene
    loaded: bool


class GameStore:
    """Generated games of one scene size under a cache folder.

    Args:
        root: the cache folder (default :func:`default_cache_dir`).
        scene_size: a key of :data:`~agentropy.envs.alfworld.generator.SCENE_SIZES`.
    """

    def __init__(self, root: str | Path | None = None, scene_size: str = "small") -> None:
        self.root = Path(root) if root is not None else default_cache_dir()
        self.scene_size = scene_size

    @property
    def dataset_dir(self) -> Path:
        """The ALFWorld-format dataset folder (``<split>/<task folder>/trial_<seed>``)."""
        return self.root / f"gen-v{GENERATOR_VERSION}" / self.scene_size

    def folder(self, scene: Scene) -> Path:
        return self.dataset_dir / scene.split / scene.folder_name / scene.trial_name

    def get(self, split: str, task_type: str, seed: int, engine: object | None = None) -> StoredGame:
        """The verified game of a key, from the cache or generated (and verified) now.

        Args:
            split, task_type, seed: the key (with this store's scene size).
            engine: an :class:`~agentropy.envs.alfworld.engine.Engine` to verify with; one is made if
                needed and none is given. When verification runs, the engine is left with the game
                loaded (``StoredGame.loaded``), which saves the caller a load.

        Raises:
            RuntimeError: if no attempt gives a verified game.
        """
        reasons = []
        for attempt in range(MAX_ATTEMPTS):
            scene = sample_scene(split, task_type, seed, self.scene_size, attempt=attempt)
            folder = self.folder(scene)
            walkthrough = oracle_walkthrough(scene)
            draft = game_files(scene, walkthrough, solvable=False)
            stale = False
            if (folder / "game.tw-pddl").is_file():
                files = read_game(folder)
                if files.problem == draft.problem and files.game.get("pddl_problem") == draft.problem:
                    if files.game.get("solvable"):
                        return StoredGame(folder, files, scene, loaded=False)
                    reasons.append(f"attempt {attempt}: cached as unsolvable")
                    continue
                # The generator changed without a version bump: regenerate this game.
                log.warning("household cache entry %s is stale; regenerating it", folder)
                stale = True
            engine = engine if engine is not None else Engine()
            verdict = verify(engine, draft.game, walkthrough)  # type: ignore[arg-type]
            files = game_files(scene, walkthrough, solvable=verdict.solvable)
            write_game(files, folder, replace=stale)
            if verdict.solvable:
                return StoredGame(folder, files, scene, loaded=True)
            log.warning("household game %s failed verification: %s", scene.rng_key, verdict.reason)
            reasons.append(f"attempt {attempt}: {verdict.reason}")
        raise RuntimeError(f"no verified household game for {split}|{task_type}|{seed}: {reasons}")

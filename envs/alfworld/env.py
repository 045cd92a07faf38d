"""ALFWorld household tasks as a Gymnasium text environment: ``agentropy/ALFWorld-v0``.

ALFWorld (Shridhar et al., ICLR 2021, "ALFWorld: Aligning Text and Embodied Environments for
Interactive Learning") renders ALFRED's household tasks as text games on a PDDL engine. Here the
real engine plays them: textworld's ``PddlEnv`` with alfworld's ``AlfredDemangler`` and
``AlfredInfos`` wrappers (:mod:`agentropy.envs.alfworld.engine`): admissible commands are the engine's
applicable operators, ``won`` is its goal test.

Two sources of games, chosen by the ``source`` argument:

* ``"generated"`` (default): games written by :mod:`agentropy.envs.alfworld.generator` on the shipped
  domain, grammar and THOR floor plans, verified and cached by :mod:`agentropy.envs.alfworld.store`. A
  split has :data:`TASKS_PER_TYPE` games per task type; task ``i`` of a split is task type
  ``task_types[i % k]`` (``k`` types selected) with seed ``i // k``. ``valid_unseen`` plays only
  held-out floor plans. Generated games are not the official benchmark: report them separately.
* ``"official"``: the released ALFWorld games under ``data_path`` (default ``$ALFWORLD_DATA``),
  ``json_2.1.1/<split>/<task folder>/trial_*/``, in sorted path order
  (:mod:`agentropy.envs.alfworld.official`).

``info["expert_action"]`` follows the game's walkthrough (the scripted oracle's, verified at
generation time) while the agent stays on it; once the agent leaves it, the oracle re-plans from the
engine's current facts (pure Python, milliseconds), so the expert also recovers from detours and
solves official games without a stored walkthrough. ``None`` means it has no plan.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from agentropy.envs.alfworld.assets import ALFRED_TASK_TYPES
from agentropy.envs.alfworld.generator import SCENE_SIZES, SPLITS, GameFiles, read_game
from agentropy.envs.alfworld.official import OfficialGame, official_games, official_split_dir
from agentropy.envs.alfworld.oracle import TaskParams, plan, world_from_facts
from agentropy.envs.alfworld.store import GameStore, default_cache_dir
from agentropy.envs.core import EngineState, TextEnv

__all__ = ["SOURCES", "TASKS_PER_TYPE", "ALFWorldEnv"]

#: Generated games per task type and split (ALFWorld 2.1 has 3,553 / 140 / 134 games in all).
TASKS_PER_TYPE: dict[str, int] = {"train": 600, "valid_seen": 24, "valid_unseen": 24}
SOURCES = ("generated", "official")
_TASK_PREFIX = "Your task is to: "


def _task_types(task_types: Sequence[str | int] | str | int | None) -> tuple[str, ...]:
    """Task type names from names or ALFWorld's numbers (1..6, ``alfred_tw_env.TASK_TYPES``)."""
    if task_types is None:
        return ALFRED_TASK_TYPES
    if isinstance(task_types, (str, int)):
        task_types = [task_types]
    out = []
    for t in task_types:
        if isinstance(t, int) and not isinstance(t, bool) and 1 <= t <= len(ALFRED_TASK_TYPES):
            out.append(ALFRED_TASK_TYPES[t - 1])
        elif isinstance(t, str) and t in ALFRED_TASK_TYPES:
            out.append(t)
        else:
            raise ValueError(f"unknown task type {t!r}; known: {', '.join(ALFRED_TASK_TYPES)} or 1..6")
    if not out:
        raise ValueError("task_types is empty")
    return tuple(dict.fromkeys(out))


def task_sentence(intro: str) -> str:
    """The task from an ALFWorld intro: the text after ``"Your task is to: "``, without the
    final period."""
    _, _, task = intro.rpartition(_TASK_PREFIX)
    return task.strip().rstrip(".")


class ALFWorldEnv(TextEnv):
    """An ALFWorld household game played through the real engine.

    Args:
        split: ``"train"``, ``"valid_seen"`` or ``"valid_unseen"``.
        task_types: the task types to play (names or ALFWorld's numbers 1..6); ``None``: all six.
        scene_size: generated games only: ``"small"`` (default, 8 receptacles: fast on CPU),
            ``"medium"`` (up to 16) or ``"full"`` (the whole floor plan, about 26 receptacles and
            37 objects: ALFWorld's scale, about 2.5x fewer steps/s and 5-7x slower loads).
        source: ``"generated"`` or ``"official"``.
        data_path: official games only: the folder holding ``json_2.1.1`` (default
            ``$ALFWORLD_DATA``).
        cache_dir: where generated games and the official index are cached (default
            ``~/.cache/agentropy/household``, or ``$AGENTROPY_CACHE/household``).
        check_admissible: refuse commands outside the admissible list without sending them.
        render_mode: ``None`` or ``"ansi"``.
    """

    family = "household"
    splits = SPLITS
    engine_packages = ("alfworld", "textworld", "fast-downward-textworld")
    has_expert = True
    rerun_kwargs = frozenset({"split", "task_types", "scene_size", "source", "check_admissible"})

    def __init__(
        self,
        split: str = "train",
        task_types: Sequence[str | int] | str | int | None = None,
        scene_size: str = "small",
        source: str = "generated",
        data_path: str | os.PathLike[str] | None = None,
        cache_dir: str | os.PathLike[str] | None = None,
        check_admissible: bool = True,
        render_mode: str | None = None,
    ) -> None:
        super().__init__(split=split, check_admissible=check_admissible, render_mode=render_mode)
        if source not in SOURCES:
            raise ValueError(f"unknown source {source!r}; known: {', '.join(SOURCES)}")
        if scene_size not in SCENE_SIZES:
            raise ValueError(f"unknown scene size {scene_size!r}; known: {', '.join(SCENE_SIZES)}")
        self.task_types = _task_types(task_types)
        self.scene_size = scene_size
        self.source = source
        self.cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        self._store = GameStore(self.cache_dir, scene_size)
        self._official: list[OfficialGame] = []
        self._official_dir: Path | None = None
        if source == "official":
            data_path = data_path if data_path is not None else os.environ.get("ALFWORLD_DATA")
            if not data_path:
                raise ValueError("source='official' needs data_path or $ALFWORLD_DATA")
            self._official_dir = official_split_dir(data_path, split)
            self._official = official_games(data_path, split, self.task_types, index_dir=self.cache_dir)
            if not self._official:
                raise ValueError(f"no playable official {split} games of types {self.task_types} "
                                 f"under {self._official_dir}")
        self._engine: Any = None
        self._loaded = ""
        self._params = TaskParams("pick_and_place_simple", "")
        self._walkthrough: list[str] = []
        self._position = 0

    # ------------------------------------------------------------------ games
    def _engine_num_tasks(self) -> int:
        if self.source == "official":
            return len(self._official)
        return TASKS_PER_TYPE[self.split] * len(self.task_types)

    def _game(self, index: int) -> tuple[str, str, GameFiles, bool]:
        """Task ``index``: (task id, game folder, files, whether the engine has it loaded).

        Generated games are generated and verified (in this env's engine) on first use."""
        if self.source == "official":
            assert self._official_dir is not None
            game = self._official[index]
            folder = self._official_dir / game.path
            task_id = f"household/{game.task_type}/{self.split}/{Path(game.path).as_posix()}"
            return task_id, str(folder), read_game(folder), False
        task_type = self.task_types[index % len(self.task_types)]
        seed = index // len(self.task_types)
        stored = self._store.get(self.split, task_type, seed, engine=self._make_engine())
        task_id = f"household/{task_type}/{self.split}/{seed}"
        return task_id, str(stored.folder), stored.files, stored.loaded

    def _make_engine(self) -> Any:
        if self._engine is None:
            from agentropy.envs.alfworld.engine import Engine

            self._engine = Engine()
        return self._engine

    # ------------------------------------------------------------------ engine interface
    def _engine_reset(self, index: int, options: Mapping[str, Any]) -> tuple[str, str, EngineState]:
        engine = self._make_engine()
        previous, self._loaded = self._loaded, ""
        task_id, folder, files, loaded = self._game(index)
        if not loaded and previous != folder:
            engine.load(files.game)
        self._loaded = folder
        state = engine.reset()
        p = files.traj_data.get("pddl_params", {})
        self._params = TaskParams(
            task_type=str(files.traj_data.get("task_type", "")),
            object_target=str(p.get("object_target", "")),
            parent_target=str(p.get("parent_target", "")),
            toggle_target=str(p.get("toggle_target", "")),
        )
        self._walkthrough = list(files.walkthrough or [])
        self._position = 0
        return task_sentence(state.feedback), task_id, self._state_from(state)

    def _engine_step(self, command: str) -> EngineState:
        expected = self._state.expert_action if self._state is not None else None
        state = self._make_engine().step(command)
        if command == expected and self._position < len(self._walkthrough):
            self._position += 1
        else:
            self._walkthrough, self._position = [], 0
        return self._state_from(state, command)

    def _state_from(self, state: Any, command: str | None = None) -> EngineState:
        admissible = tuple(state["admissible_commands"])
        won = bool(state["won"])
        valid = command is None or state.feedback.strip() != "Nothing happens."
        return EngineState(
            observation=state.feedback,
            score=1.0 if won else 0.0,
            won=won,
            lost=False,
            admissible=admissible,
            valid=valid,
            invalid_reason="" if valid else "the engine did not recognise the command",
            expert_action=None if won else self._expert(state, admissible),
        )

    def _expert(self, state: Any, admissible: Sequence[str]) -> str | None:
        """The walkthrough's next command while the agent follows it, else a fresh oracle plan."""
        if self._position < len(self._walkthrough) and self._walkthrough[self._position] in admissible:
            return self._walkthrough[self._position]
        from agentropy.envs.alfworld.engine import Engine

        world = world_from_facts(state["_facts"], Engine.names(state))
        commands = plan(world, self._params)
        if not commands or commands[0] not in admissible:
            return None
        self._walkthrough, self._position = commands, 0
        return commands[0]

    def _engine_close(self) -> None:
        # The engine is in-process (no JVM, no subprocess); dropping it frees its game state.
        self._engine = None
        self._loaded = ""
